"""Schedules in the engine, on a fake clock (`fake_driver`: the engine in this process on a
real SQLite file; `Engine.fire_due_timers` does what the runtime's supervisor does 5 times a
second): firing through the producer, the next instant from the previous one, the downtime
rule, exactly one run per instant, declarative sync, CRUD and every bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.engine.driver import Driver, FakeClock
from tests.schedules import tasks_sched as t
from trigger_do import RunState, schedules
from trigger_do.api import shapes
from trigger_do.errors import InvalidScheduleError, ScheduleNotFoundError
from trigger_do.schedules.scheduler import SchedulerObject
from trigger_do.schedules.service import run_key
from trigger_do.task import registered_tasks

T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC).timestamp()  # a Monday


@pytest.fixture
def driver(fake_driver: Driver, clock: FakeClock) -> Driver:
    clock.t = T0
    return fake_driver


async def fire(d: Driver) -> int:
    """One supervisor tick: fire what is due, then run what it triggered."""
    fired = await d.engine.fire_due_timers()
    while await d.step():
        pass
    return fired


async def runs_of(d: Driver, schedule_id: str) -> list[dict[str, Any]]:
    rows = await d.engine.list_runs(limit=100, schedule_id=schedule_id)
    return [await d.engine.get_run(r["id"]) for r in reversed(rows)]  # oldest first


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_an_imperative_schedule_fires_through_the_producer(driver: Driver) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    sched = await driver.engine.schedules.create(
        "sched-report", "*/15 * * * *", "user-1", external_id="user-1"
    )
    assert sched["next_at"] == T0 + 900 and sched["type"] == "IMPERATIVE"
    assert await driver.engine.schedules.object(SchedulerObject.next_due) == T0 + 900
    clock.advance(899)
    assert await fire(driver) == 0 and await runs_of(driver, sched["id"]) == []
    clock.advance(1.5)  # the supervisor's tick, a moment after the instant
    assert await fire(driver) == 1
    [run] = await runs_of(driver, sched["id"])
    assert run["state"] == "completed"
    assert run["output"] == {
        "external_id": "user-1",
        "timestamp": iso(T0 + 900),  # the nominal instant, not the late start
        "last": None,
        "upcoming": 10,
    }
    assert run["payload"]["scheduleId"] == sched["id"] and run["payload"]["type"] == "IMPERATIVE"
    assert run["payload"]["externalId"] == "user-1" and "lastTimestamp" not in run["payload"]
    assert run["payload"]["upcoming"][0] == "2026-05-04T08:30:00.000Z"
    assert run["idempotency_key"].endswith(run_key(sched["id"], T0 + 900))
    [event] = t.EVENTS
    assert event.timestamp == datetime.fromtimestamp(T0 + 900, UTC)
    # the run carries its schedule: on the Python status and in the API's shape
    status = await schedules_status(driver, run["id"])
    assert status.schedule == schedules.RunSchedule(
        id=sched["id"], cron="*/15 * * * *", external_id="user-1", deduplication_key="user-1"
    )
    api = shapes.retrieve(run, driver.engine.now())
    assert api["schedule"]["id"] == sched["id"]
    assert api["schedule"]["externalId"] == "user-1" and api["schedule"]["deduplicationKey"]
    assert api["schedule"]["generator"] == {
        "type": "CRON", "expression": "*/15 * * * *", "description": "Every 15 minutes",
    }  # fmt: skip

    # fired 1.5 s late: the next is 08:30 (from the nominal 08:15), and it says so
    again = await driver.engine.schedules.get(sched["id"])
    assert again["next_at"] == T0 + 1800 and again["last_at"] == T0 + 900
    clock.t = T0 + 1800 + 0.2
    assert await fire(driver) == 1
    second = (await runs_of(driver, sched["id"]))[1]
    assert second["output"]["last"] == iso(T0 + 900)
    assert second["payload"]["lastTimestamp"] == "2026-05-04T08:15:00.000Z"


async def schedules_status(d: Driver, run_id: str) -> Any:
    from trigger_do.sdk.handles import RunStatus

    return RunStatus.from_row(await d.engine.get_run(run_id))


async def test_after_downtime_the_overdue_instant_fires_once_late(driver: Driver) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    sched = await driver.engine.schedules.create("sched-report", "*/10 * * * *", "down")
    clock.t = T0 + 600 + 5 * 3600 + 7  # down from 08:10 to 13:10:07: 31 instants missed
    assert await fire(driver) == 1
    runs = await runs_of(driver, sched["id"])
    assert len(runs) == 1
    assert runs[0]["payload"]["timestamp"] == "2026-05-04T08:10:00.000Z"  # the overdue one
    state = await driver.engine.schedules.get(sched["id"])
    assert state["next_at"] == T0 + 600 + 5 * 3600 + 600  # 13:20: the next future instant
    assert runs[0]["payload"]["upcoming"][0] == "2026-05-04T13:20:00.000Z"
    assert await fire(driver) == 0  # the missed ones are skipped, not fired one by one
    clock.t = T0 + 600 + 5 * 3600 + 600
    assert await fire(driver) == 1
    assert [r["payload"]["timestamp"] for r in await runs_of(driver, sched["id"])] == [
        "2026-05-04T08:10:00.000Z",
        "2026-05-04T13:20:00.000Z",
    ]


async def test_one_run_per_instant_whoever_fires_and_whenever_a_firer_dies(
    driver: Driver,
) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    ids = [
        (await driver.engine.schedules.create("sched-report", "* * * * *", f"k{i}"))["id"]
        for i in range(30)
    ]
    clock.t = T0 + 60
    # two firers at once (two supervisors on one database): each instant is claimed once
    fired = await asyncio.gather(
        driver.engine.schedules.fire_due(), driver.engine.schedules.fire_due()
    )
    assert sum(fired) == 30
    # a firer that claims and triggers, then dies before it completes its claims
    clock.t = T0 + 120
    svc = driver.engine.schedules
    due = await svc.object(SchedulerObject.claim_due, clock.now(), 20.0, 10)  # a 20 s lease
    assert len(due) == 10
    await svc._fire(due[:4], clock.now())  # the first 4 complete: these instants are done
    # the rest of the claim is held: nobody else takes those 6 until it lapses
    assert await svc.fire_due() == 20
    assert await svc.fire_due() == 0
    clock.advance(21)  # the dead firer's claim lapsed: the instant is taken again
    assert await svc.fire_due() == 6
    while await driver.step():
        pass
    for sid in ids:
        stamps = [r["payload"]["timestamp"] for r in await runs_of(driver, sid)]
        assert stamps == ["2026-05-04T08:01:00.000Z", "2026-05-04T08:02:00.000Z"], sid
    # a firer that triggered the runs and died before completing: the runs are not doubled
    clock.t = T0 + 180
    due = await svc.object(SchedulerObject.claim_due, clock.now(), 20.0, 100)
    from trigger_do.producer.producer import TriggerRequest
    from trigger_do.schedules.service import run_ref

    for d in due[:5]:  # it triggered five runs, then died
        await driver.engine.trigger(
            TriggerRequest(d["task"], None, {"idempotency_key": run_key(d["id"], d["instant"])},
                           payload_text='{"type":"IMPERATIVE","timestamp":"x"}',
                           schedule=run_ref(d))
        )  # fmt: skip
    clock.advance(21)
    assert await svc.fire_due() == 30
    counts = [driver.count("runs", "options->>'$.schedule.id' = ?", sid) for sid in ids]
    assert counts == [3] * 30
    # (the late firer's runs are the ones it made: each instant has exactly one run)
    assert driver.count("runs") == 90


async def test_a_spring_forward_day_in_paris(driver: Driver) -> None:
    """The declarative `30 2 * * *` in Europe/Paris across 2026-03-29 (02:00 -> 03:00)."""
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    paris = ZoneInfo("Europe/Paris")
    clock.t = datetime(2026, 3, 27, 12, 0, tzinfo=paris).timestamp()
    await driver.engine.schedules.sync_declarative([t.paris])
    [sched] = [s for s in (await driver.engine.schedules.page(1, 100))[0]
               if s["task"] == "sched-paris"]  # fmt: skip
    seen = []
    for _ in range(4):
        clock.t = sched_next(await driver.engine.schedules.get(sched["id"])) + 0.3
        assert await fire(driver) == 1
        seen.append(datetime.fromtimestamp(clock.t - 0.3, paris).strftime("%d %H:%M %Z"))
    assert seen == ["28 02:30 CET", "29 03:00 CEST", "30 02:30 CEST", "31 02:30 CEST"]
    runs = await runs_of(driver, sched["id"])
    assert [r["output"]["type"] for r in runs] == ["DECLARATIVE"] * 4
    assert runs[1]["payload"]["timestamp"] == "2026-03-29T01:00:00.000Z"  # 03:00 CEST


async def test_a_fall_back_day_in_new_york(driver: Driver) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    ny = ZoneInfo("America/New_York")
    clock.t = datetime(2026, 10, 31, 23, 0, tzinfo=ny).timestamp()
    sched = await driver.engine.schedules.create(
        "sched-report", "*/30 1-2 * * *", "ny", timezone="America/New_York"
    )
    seen = []
    for _ in range(5):
        clock.t = sched_next(await driver.engine.schedules.get(sched["id"])) + 0.2
        assert await fire(driver) == 1
        seen.append(datetime.fromtimestamp(clock.t - 0.2, ny).strftime("%H:%M %Z"))
    # 01:00 and 01:30 happen twice that night: each fires once, at its first occurrence
    assert seen == ["01:00 EDT", "01:30 EDT", "02:00 EST", "02:30 EST", "01:00 EST"]


def sched_next(rec: dict[str, Any]) -> float:
    assert rec["next_at"] is not None
    return float(rec["next_at"])


async def test_declarative_schedules_follow_the_tasks_as_registered(driver: Driver) -> None:
    svc = driver.engine.schedules

    async def declarative() -> dict[str, tuple[str, str, str]]:
        rows, _ = await svc.page(1, 100)
        return {r["id"]: (r["task"], r["cron"], r["timezone"])
                for r in rows if r["type"] == "DECLARATIVE"}  # fmt: skip

    counts = await svc.sync_declarative(registered_tasks().values())
    assert counts["created"] == 4  # daily, paris, and multi's two; report declares none
    first = await declarative()
    assert sorted(first.values()) == [
        ("sched-daily", "0 3 * * *", "UTC"),
        ("sched-multi", "0 9 * * 1-5", "America/New_York"),
        ("sched-multi", "30 10 * * 0,6", "America/New_York"),
        ("sched-paris", "30 2 * * *", "Europe/Paris"),
    ]
    # registering the same tasks again changes nothing
    again = await svc.sync_declarative(registered_tasks().values())
    assert again == {"created": 0, "updated": 0, "removed": 0, "unchanged": 4}
    assert await declarative() == first
    # the cron changed: the same schedule (its id kept), the new cron, the next instant anew
    changed = schedules.task(id="sched-daily", cron="0 4 * * *")(t.daily.fn)
    others = [x for x in registered_tasks().values() if x.id != "sched-daily"]
    res = await svc.sync_declarative([changed, *others])
    assert res["updated"] == 1 and res["created"] == 0
    now = await declarative()
    daily_id = next(i for i, v in first.items() if v[0] == "sched-daily")
    assert now[daily_id] == ("sched-daily", "0 4 * * *", "UTC")
    assert (await svc.get(daily_id))["next_at"] == T0 - 8 * 3600 + 86400 + 4 * 3600
    # a task removed (or its cron removed): its schedules go
    res = await svc.sync_declarative([x for x in others if x.id != "sched-multi"])
    assert res["removed"] == 1 + 2
    assert sorted(v[0] for v in (await declarative()).values()) == ["sched-paris"]
    # put the registry back as the module declares it
    schedules.task(id="sched-daily", cron="0 3 * * *")(t.daily.fn)


async def test_a_declarative_schedule_cannot_be_changed_through_the_api(driver: Driver) -> None:
    svc = driver.engine.schedules
    await svc.sync_declarative([t.daily])
    [rec] = (await svc.page(1, 10))[0]
    with pytest.raises(InvalidScheduleError, match="Cannot update a declarative schedule"):
        await svc.update(rec["id"], "sched-daily", "0 5 * * *")
    for verb, call in (
        ("delete", svc.delete),
        ("deactivate", svc.deactivate),
        ("activate", svc.activate),
    ):
        with pytest.raises(InvalidScheduleError, match=f"Cannot {verb} a declarative schedule"):
            await call(rec["id"])
    assert await svc.get(rec["id"]) == rec


async def test_crud_deactivate_activate_update_delete(driver: Driver) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    svc = driver.engine.schedules
    made = await svc.create("sched-report", "0 * * * *", "crud", timezone="Asia/Tokyo")
    assert made["timezone"] == "Asia/Tokyo" and made["active"] is True
    # the same deduplication key again updates it (same id)
    same = await svc.create("sched-report", "30 * * * *", "crud", external_id="u7")
    assert same["id"] == made["id"] and same["cron"] == "30 * * * *"
    assert same["timezone"] == "UTC" and same["external_id"] == "u7"
    assert same["next_at"] == T0 + 1800
    off = await svc.deactivate(made["id"])
    assert off["active"] is False and off["next_at"] is None
    clock.t = T0 + 7200
    assert await fire(driver) == 0  # a deactivated schedule does not fire
    on = await svc.activate(made["id"])
    assert on["active"] is True and on["next_at"] == T0 + 7200 + 1800  # from now
    updated = await svc.update(made["id"], "sched-report", "45 * * * *", timezone="UTC")
    assert updated["next_at"] == T0 + 7200 + 2700 and updated["external_id"] is None
    listed, count = await svc.page(1, 10)
    assert count == 1 and listed[0]["id"] == made["id"]
    gone = await svc.delete(made["id"])
    assert gone["id"] == made["id"]
    for call in (svc.get, svc.delete, svc.activate, svc.deactivate):
        with pytest.raises(ScheduleNotFoundError):
            await call(made["id"])
    with pytest.raises(ScheduleNotFoundError):
        await svc.update(made["id"], "sched-report", "0 * * * *")
    assert await driver.engine.schedules.object(SchedulerObject.next_due) is None


async def test_list_pages(driver: Driver) -> None:
    svc = driver.engine.schedules
    for i in range(7):
        driver.clock.advance(1)  # type: ignore[attr-defined]
        await svc.create("sched-report", "0 0 * * *", f"page-{i}")
    first, count = await svc.page(1, 3)
    last, _ = await svc.page(3, 3)
    assert count == 7 and len(first) == 3 and len(last) == 1
    assert [r["dedup_key"] for r in first] == ["page-6", "page-5", "page-4"]  # newest first
    assert (await svc.page(4, 3))[0] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sched-report", "* * * * * *", "k"), "seconds are not supported"),
        (("sched-report", "not a cron", "k"), "has 3 fields"),
        (("sched-report", "0 3 * * *", "k", None, "Nowhere/City"), "unknown timezone"),
        (("sched-plain", "0 3 * * *", "k"), "'sched-plain' is not a scheduled task"),
        (("no-such-task", "0 3 * * *", "k"), "no task 'no-such-task'"),
        (("sched-report", "0 3 * * *", ""), "deduplicationKey must be a string"),
        (("sched-report", "0 3 * * *", "k" * 513), "deduplicationKey must be a string"),
        (("sched-report", "0 3 * * *", "k", "x" * 513), "externalId must be a string"),
        ((5, "0 3 * * *", "k"), "task must be a task id"),
    ],
)
async def test_every_bad_input_is_refused_and_nothing_written(
    driver: Driver, args: tuple[Any, ...], message: str
) -> None:
    task, cron, key, *rest = args
    external_id = rest[0] if rest else None
    timezone = rest[1] if len(rest) > 1 else None
    with pytest.raises(InvalidScheduleError) as caught:
        await driver.engine.schedules.create(
            task, cron, key, external_id=external_id, timezone=timezone
        )
    assert message in str(caught.value), str(caught.value)
    assert driver.count("schedules") == 0
    if "deduplicationKey" in message:
        return  # (an update takes no deduplication key)
    made = await driver.engine.schedules.create("sched-report", "0 3 * * *", "ok")
    with pytest.raises(InvalidScheduleError):
        await driver.engine.schedules.update(
            made["id"], task, cron, external_id=external_id, timezone=timezone
        )
    assert await driver.engine.schedules.get(made["id"]) == made


async def test_a_scheduled_task_whose_code_is_gone_does_not_stop_the_others(
    driver: Driver,
) -> None:
    """A schedule's task no longer registered anywhere: its instant is skipped (logged),
    the other schedules due with it still fire, and it does not fire again and again."""
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    svc = driver.engine.schedules
    good = await svc.create("sched-report", "* * * * *", "good")
    gone = await svc.create("sched-report", "* * * * *", "gone")
    driver.sql.exec("UPDATE schedules SET task = 'deleted-task' WHERE id = ?", gone["id"])
    clock.t = T0 + 60
    assert await svc.fire_due() == 2
    assert len(await runs_of(driver, good["id"])) == 1
    assert await runs_of(driver, gone["id"]) == []
    assert (await svc.get(gone["id"]))["next_at"] == T0 + 120
    assert await svc.fire_due() == 0


async def test_runs_list_filters_by_schedule(driver: Driver) -> None:
    clock = driver.clock
    assert isinstance(clock, FakeClock)
    a = await driver.engine.schedules.create("sched-report", "*/5 * * * *", "a")
    b = await driver.engine.schedules.create("sched-report", "*/5 * * * *", "b")
    await t.plain.trigger({"x": 1})
    for minute in (5, 10):
        clock.t = T0 + minute * 60
        await fire(driver)
    assert len(await driver.engine.list_runs(limit=10)) == 5
    only_a = await driver.engine.list_runs(limit=10, schedule_id=a["id"])
    assert len(only_a) == 2 and all(r["options"]["schedule"]["id"] == a["id"] for r in only_a)
    assert await driver.engine.list_runs(limit=10, schedule_id="sched_none") == []
    assert {r["state"] for r in await runs_of(driver, b["id"])} == {RunState.COMPLETED}
