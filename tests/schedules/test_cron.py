"""Cron expressions as schedules use them: each form a task declares, the aliases and `L`,
iteration in a timezone across both DST transitions, and every bad input refused where it
is written, naming what is wrong. Pure: no engine, no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.schedules import tasks_sched as t
from trigger_do import TaskDefinitionError, schedules
from trigger_do.errors import InvalidScheduleError
from trigger_do.schedules.cron import Cron, parse_cron, timezones


def at(tz: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp()  # type: ignore[misc]


def local(instants: list[float], tz: str) -> list[str]:
    return [datetime.fromtimestamp(i, ZoneInfo(tz)).strftime("%m-%d %H:%M %Z") for i in instants]


def test_each_declared_form() -> None:
    assert t.daily.crons == [Cron("0 3 * * *", "UTC")]
    assert t.paris.crons == [Cron("30 2 * * *", "Europe/Paris")]
    assert t.multi.crons == [
        Cron("0 9 * * 1-5", "America/New_York"),
        Cron("30 10 * * 0,6", "America/New_York"),
    ]
    assert t.report.crons == []
    assert isinstance(t.daily, schedules.ScheduledTask)
    # the run function gets a ScheduledEvent, whatever its annotation says
    event = t.paris.parse_payload(
        {"type": "DECLARATIVE", "timestamp": "2026-01-01T01:30:00.000Z", "timezone":
         "Europe/Paris", "scheduleId": "sched_1", "upcoming": ["2026-01-02T01:30:00.000Z"]}
    )  # fmt: skip
    assert isinstance(event, schedules.ScheduledEvent)
    assert event.schedule_id == "sched_1" and event.last_timestamp is None
    assert event.upcoming == [datetime(2026, 1, 2, 1, 30, tzinfo=UTC)]
    # and its payload is Trigger.dev's, camelCase
    dumped = json.loads(t.paris.payload_json(event))
    assert dumped["scheduleId"] == "sched_1" and "schedule_id" not in dumped


def test_a_string_is_utc_and_the_next_instant_follows_the_previous_one() -> None:
    cron = parse_cron("0 3 * * *")
    start = at("UTC", 2026, 5, 1, 12, 0)
    assert local(cron.upcoming(start, 2), "UTC") == ["05-02 03:00 UTC", "05-03 03:00 UTC"]
    nominal = at("UTC", 2026, 5, 2, 3, 0)
    # fired 40 minutes late: the next one is still tomorrow at 03:00, not 03:40
    assert cron.next_fire(nominal, nominal + 2400) == at("UTC", 2026, 5, 3, 3, 0)
    # down for three days: the missed ones are skipped, the next is the first after now
    assert cron.next_fire(nominal, nominal + 3 * 86400 + 60) == at("UTC", 2026, 5, 6, 3, 0)


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        ("@hourly", (2026, 5, 1, 12, 10), ["05-01 13:00", "05-01 14:00"]),
        ("@daily", (2026, 5, 1, 12, 10), ["05-02 00:00", "05-03 00:00"]),
        ("@midnight", (2026, 5, 1, 12, 10), ["05-02 00:00", "05-03 00:00"]),
        ("@weekly", (2026, 5, 1, 12, 10), ["05-03 00:00", "05-10 00:00"]),  # Sundays
        ("@monthly", (2026, 5, 1, 12, 10), ["06-01 00:00", "07-01 00:00"]),
        ("@yearly", (2026, 5, 1, 12, 10), ["01-01 00:00", "01-01 00:00"]),
        ("@annually", (2026, 5, 1, 12, 10), ["01-01 00:00", "01-01 00:00"]),
        ("0 0 L * *", (2026, 1, 15, 0, 0), ["01-31 00:00", "02-28 00:00"]),  # last day
        ("0 12 * * L5", (2026, 1, 1, 0, 0), ["01-30 12:00", "02-27 12:00"]),  # last Friday
        ("*/20 9 * * MON-FRI", (2026, 5, 1, 9, 30), ["05-01 09:40", "05-04 09:00"]),
    ],
)
def test_aliases_and_last(expression: str, start: tuple[int, ...], expected: list[str]) -> None:
    cron = parse_cron(expression)
    got = [s.removesuffix(" UTC") for s in local(cron.upcoming(at("UTC", *start), 2), "UTC")]
    assert got == expected
    assert cron.description  # cron-descriptor's sentence


def test_descriptions_are_sentences() -> None:
    assert parse_cron("0 3 * * *").description == "At 03:00 AM"
    assert parse_cron("0 9 * * 1-5").description == "At 09:00 AM, Monday through Friday"
    assert parse_cron("@hourly").description == "At 0 minutes past the hour" or "hour" in (
        parse_cron("@hourly").description
    )


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # spring forward: 02:30 does not exist that day; it fires once, at 03:00
        ("America/New_York", (2026, 3, 7), ["03-07 02:30 EST", "03-08 03:00 EDT",
                                           "03-09 02:30 EDT"]),
        ("Europe/Paris", (2026, 3, 28), ["03-28 02:30 CET", "03-29 03:00 CEST",
                                         "03-30 02:30 CEST"]),
    ],
)  # fmt: skip
def test_spring_forward_fires_once_at_the_end_of_the_gap(
    tz: str, day: tuple[int, int, int], expected: list[str]
) -> None:
    cron = parse_cron("30 2 * * *", tz)
    assert local(cron.upcoming(at(tz, *day, 0, 0), 3), tz) == expected


def test_spring_forward_instants_in_the_gap_collapse_into_one() -> None:
    cron = parse_cron("*/30 1-3 * * *", "America/New_York")
    got = local(cron.upcoming(at("America/New_York", 2026, 3, 8, 0, 0), 5), "America/New_York")
    # 02:00 and 02:30 do not exist: one run at 03:00 (which the expression also names)
    assert got == ["03-08 01:00 EST", "03-08 01:30 EST", "03-08 03:00 EDT", "03-08 03:30 EDT",
                   "03-09 01:00 EDT"]  # fmt: skip


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # fall back: 01:30 happens twice; it fires once, at the first (summer-time) one
        ("America/New_York", (2026, 10, 31), ["10-31 01:30 EDT", "11-01 01:30 EDT",
                                             "11-02 01:30 EST"]),
        ("Europe/Paris", (2026, 10, 24), ["10-24 02:30 CEST", "10-25 02:30 CEST",
                                          "10-26 02:30 CET"]),
    ],
)  # fmt: skip
def test_fall_back_fires_once_at_the_first_occurrence(
    tz: str, day: tuple[int, int, int], expected: list[str]
) -> None:
    pattern = "30 1 * * *" if tz == "America/New_York" else "30 2 * * *"
    cron = parse_cron(pattern, tz)
    got = local(cron.upcoming(at(tz, *day, 0, 0), 3), tz)
    assert got == expected
    instants = cron.upcoming(at(tz, *day, 0, 0), 3)
    assert instants[2] - instants[1] == 86400 + 3600  # a 25-hour day between them


def test_every_half_hour_through_the_repeated_hour() -> None:
    cron = parse_cron("*/30 * * * *", "America/New_York")
    got = local(cron.upcoming(at("America/New_York", 2026, 11, 1, 0, 45), 4), "America/New_York")
    # 01:00 and 01:30 fire in summer time only; the repeated hour does not fire again
    assert got == ["11-01 01:00 EDT", "11-01 01:30 EDT", "11-01 02:00 EST", "11-01 02:30 EST"]
    # a schedule whose previous instant falls inside the repeated hour moves on, not back
    second_pass = at("UTC", 2026, 11, 1, 6, 20)  # 01:20 EST, the second 01:20 that day
    assert local([cron.next_after(second_pass)], "America/New_York") == ["11-01 02:00 EST"]


@pytest.mark.parametrize(
    ("cron", "timezone", "message"),
    [
        ("* * * * * *", None, "6 fields: seconds are not supported"),
        ("0 3 * *", None, "has 4 fields, not 5"),
        ("0 3 * * * 2026 x", None, "has 7 fields"),
        ("61 * * * *", None, "the minute field '61' is not valid"),
        ("0 25 * * *", None, "the hour field '25' is not valid"),
        ("0 0 32 * *", None, "the day of month field '32' is not valid"),
        ("0 0 * 13 *", None, "the month field '13' is not valid"),
        ("0 0 * * 8", None, "the day of week field '8' is not valid"),
        ("0 0 31 2 *", None, "never matches"),
        ("H * * * *", None, "hashed (H)"),
        ("R * * * *", None, "random (R)"),
        ("@sometimes", None, "unknown cron alias"),
        ("", None, "is empty"),
        ("   ", None, "is empty"),
        ("0 " * 60, None, "over 100"),
        (3, None, "not int"),
        (None, None, "not NoneType"),
        ("0 3 * * *", "Mars/Olympus_Mons", "unknown timezone 'Mars/Olympus_Mons'"),
        ("0 3 * * *", "europe/paris", "unknown timezone 'europe/paris'"),
        ("0 3 * * *", "../../etc/passwd", "unknown timezone"),
        ("0 3 * * *", "", "unknown timezone"),
        ("0 3 * * *", 5, "unknown timezone"),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(
    cron: object, timezone: object, message: str
) -> None:
    with pytest.raises(InvalidScheduleError, match=None) as caught:
        parse_cron(cron, timezone)
    assert message in str(caught.value), str(caught.value)
    if cron is None:
        return  # a task's cron=None declares no cron (imperative schedules only)
    # where a task is defined: a TaskDefinitionError naming the task and the problem
    with pytest.raises(TaskDefinitionError) as defined:
        schedules.task(id="bad-cron", cron=cron, timezone=timezone)  # type: ignore[arg-type]
    assert "'bad-cron'" in str(defined.value) and message in str(defined.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": {"pattern": "0 3 * * *", "tz": "UTC"}}, "not tz"),
        ({"cron": {"timezone": "UTC"}}, "needs a 'pattern'"),
        ({"cron": ["0 3 * * *", 5]}, "not int"),
        ({"cron": ["0 3 * * *", "0  3 * * *"]}, "declared twice"),
        ({"cron": "0 3 * * *", "timezone": "Nowhere"}, "unknown timezone 'Nowhere'"),
        ({"cron": "0 3 * * *", "schedule": "x"}, "unknown option 'schedule'"),
    ],
)
def test_bad_declarations(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TaskDefinitionError) as caught:
        schedules.task(id="bad-decl", **kwargs)(lambda event: None)  # type: ignore[arg-type]
    assert message in str(caught.value), str(caught.value)
    from trigger_do.task import find_task

    assert find_task("bad-decl") is None  # nothing half-registered


def test_timezones_list_utc_first() -> None:
    zones = timezones()
    assert zones[0] == "UTC" and "Europe/Paris" in zones and "America/New_York" in zones
    assert "UTC" not in timezones(exclude_utc=True)
    assert all(parse_cron("0 0 * * *", z).timezone == z for z in zones[:20])
