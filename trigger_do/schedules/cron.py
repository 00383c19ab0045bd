"""Cron expressions as trigger.do schedules them: parsed and checked once, iterated in the
schedule's IANA timezone, the next instant always computed from the previous one.

- Standard 5 fields (minute hour day-of-month month day-of-week), the aliases `@hourly`,
  `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`), `L` (the last day
  of the month; `L5` the last Friday). No seconds field, no random or hashed fields.
- The expression is matched against the local wall clock of the timezone (croniter on naive
  local times), each match then placed on the UTC timeline: a local time that does not
  exist (a spring-forward gap) fires once, at the first valid time after the gap (02:30 ->
  03:00); a local time that occurs twice (fall-back) fires once, at its first occurrence.
- Instants are epoch seconds (floats holding whole seconds).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from ..errors import InvalidScheduleError

MAX_EXPRESSION = 100  # characters of a cron expression
MAX_TIMEZONE = 64
UPCOMING = 10  # instants a scheduled run is told about (`ScheduledEvent.upcoming`)
_MAX_STEPS = 10_000  # matches examined for one next instant (a DST day skips a few at most)

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
# croniter extensions whose instants are not a plain function of the expression
_RANDOM = re.compile(r"(?<![A-Za-z])[HR](?![A-Za-z])")


@dataclass(frozen=True)
class Cron:
    """A checked cron expression in a timezone. `expression` is as the user wrote it
    (whitespace normalized); `fields` is what croniter iterates (aliases expanded)."""

    expression: str
    timezone: str = "UTC"

    @property
    def fields(self) -> str:
        return ALIASES.get(self.expression.lower(), self.expression)

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)

    def next_after(self, after: float) -> float:
        """The first instant strictly after `after`."""
        return _next_after(self.fields, self.timezone, float(after))

    def next_fire(self, nominal: float, now: float) -> float:
        """The instant to schedule after the one at `nominal` fired (or was due) at `now`:
        the next one after `nominal`; when that is already past (the scheduler was down, or
        late), the first one after `now` (the missed ones are skipped)."""
        following = self.next_after(nominal)
        return following if following > now else self.next_after(now)

    def upcoming(self, after: float, count: int = UPCOMING) -> list[float]:
        """The `count` instants after `after`."""
        return list(_upcoming(self.fields, self.timezone, float(after), count))

    @property
    def description(self) -> str:
        """A sentence for the expression ("At 03:00 AM, Monday through Friday")."""
        return describe(self.fields)


# --- checking -------------------------------------------------------------------------------


def parse_cron(expression: Any, timezone: Any = None) -> Cron:
    """A `Cron`, or `InvalidScheduleError` naming what is wrong: not a string, empty, too
    long, 6 fields (seconds), another count of fields, a field croniter refuses, an
    expression that never matches, an unknown timezone."""
    tz = check_timezone("UTC" if timezone is None else timezone)
    if not isinstance(expression, str):
        raise InvalidScheduleError(
            f"a cron expression is a string like '0 3 * * *', not {type(expression).__name__}"
        )
    text = " ".join(expression.split())
    if not text:
        raise InvalidScheduleError("the cron expression is empty (e.g. '0 3 * * *')")
    if len(text) > MAX_EXPRESSION:
        raise InvalidScheduleError(
            f"the cron expression is {len(text)} characters, over {MAX_EXPRESSION}"
        )
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            known = ", ".join(a for a in ALIASES if a not in ("@annually", "@midnight"))
            raise InvalidScheduleError(f"unknown cron alias {text!r} (one of {known})")
        return Cron(text.lower(), tz)
    fields = text.split(" ")
    if len(fields) == 6:
        raise InvalidScheduleError(
            f"cron expression {text!r} has 6 fields: seconds are not supported; use 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    if len(fields) != 5:
        raise InvalidScheduleError(
            f"cron expression {text!r} has {len(fields)} field{'s' if len(fields) != 1 else ''}"
            ", not 5 (minute hour day-of-month month day-of-week)"
        )
    if _RANDOM.search(text):
        raise InvalidScheduleError(
            f"cron expression {text!r}: random (R) and hashed (H) fields are not supported"
        )
    from croniter import CroniterBadDateError, croniter  # (imported when a cron is first read)

    if not croniter.is_valid(text):
        raise InvalidScheduleError(f"invalid cron expression {text!r}: {_which_field(fields)}")
    cron = Cron(text, tz)
    try:
        cron.next_after(0.0)
    except (CroniterBadDateError, InvalidScheduleError):
        raise InvalidScheduleError(f"cron expression {text!r} never matches a date") from None
    return cron


def _which_field(fields: list[str]) -> str:
    """Which field croniter refuses (each tried alone, the others `*`)."""
    from croniter import croniter

    for i, name in enumerate(_FIELDS):
        probe = ["*"] * 5
        probe[i] = fields[i]
        if not croniter.is_valid(" ".join(probe)):
            return f"the {name} field {fields[i]!r} is not valid"
    return "its fields do not combine"


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(name: Any) -> str:
    """An IANA timezone name this runtime knows (tzdata), or `InvalidScheduleError`."""
    if isinstance(name, str) and 0 < len(name) <= MAX_TIMEZONE:
        if name == "UTC" or name in _zones():
            return name
    raise InvalidScheduleError(
        f"unknown timezone {str(name)[:80]!r} (an IANA name like 'Europe/Paris' or "
        "'America/New_York'; GET /api/v1/timezones lists them)"
    )


@functools.cache
def zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def timezones(*, exclude_utc: bool = False) -> list[str]:
    """The timezones a schedule may use, as Trigger.dev lists them: "UTC" first (unless
    excluded), then the IANA region names."""
    regions = sorted(
        z
        for z in _zones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )
    return regions if exclude_utc else ["UTC", *regions]


# --- iterating ------------------------------------------------------------------------------


def _to_utc(local: datetime, tz: tzinfo) -> float:
    """A naive local time as an instant: its first occurrence if it occurs twice; the end
    of the gap if it does not exist (the first valid time after it)."""
    first = local.replace(tzinfo=tz, fold=0).timestamp()  # a gap: past it, on the old offset
    back = datetime.fromtimestamp(first, tz).replace(tzinfo=None, fold=0)
    if back == local:
        return first
    # in a gap: the transition is after the time read on the new offset, at or before `first`
    lo = int(local.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first)
    after = datetime.fromtimestamp(hi, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return float(hi)


@functools.lru_cache(maxsize=4096)
def _next_after(fields: str, timezone: str, after: float) -> float:
    from croniter import croniter

    tz = zone(timezone)
    if tz is UTC:
        start = datetime.fromtimestamp(after, UTC).replace(tzinfo=None)
        it = croniter(fields, start)
        return float(it.get_next(datetime).replace(tzinfo=UTC).timestamp())
    start = datetime.fromtimestamp(after, tz).replace(tzinfo=None, fold=0)
    it = croniter(fields, start)
    for _ in range(_MAX_STEPS):
        instant = _to_utc(it.get_next(datetime), tz)
        if instant > after:  # a gap's instants land on its end, a repeat's on its first time
            return instant
    raise InvalidScheduleError(f"cron expression {fields!r} has no instant after {after}")


@functools.lru_cache(maxsize=1024)
def _upcoming(fields: str, timezone: str, after: float, count: int) -> tuple[float, ...]:
    out: list[float] = []
    for _ in range(count):
        after = _next_after(fields, timezone, after)
        out.append(after)
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def describe(fields: str) -> str:
    """`cron-descriptor`'s sentence for `fields` (the expression itself if the library is
    missing or cannot describe it)."""
    expanded = ALIASES.get(fields.lower(), fields)
    try:
        from cron_descriptor import Options, get_description
    except ImportError:  # pragma: no cover - a dependency; a build without it degrades
        return expanded
    try:  # English with AM/PM, as Trigger.dev's, whatever the host's locale
        options = Options(locale_code="en_US", use_24hour_time_format=False)
    except TypeError:  # pragma: no cover - cron-descriptor 1.x takes no arguments
        options = Options()
        options.locale_code, options.use_24hour_time_format = "en_US", False
    try:
        return str(get_description(expanded, options))
    except Exception:
        return expanded


def as_cron(value: Any, timezone: str | None = None) -> Cron:
    """One declared cron: a string (UTC unless `timezone`), or `{"pattern", "timezone"?}`."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"pattern", "timezone", "environments"})
        if unknown:
            raise InvalidScheduleError(
                f"a cron object takes 'pattern' and 'timezone', not {', '.join(unknown)}"
            )
        if "pattern" not in value:
            raise InvalidScheduleError("a cron object needs a 'pattern' ('0 3 * * *')")
        return parse_cron(value["pattern"], value.get("timezone", timezone))
    return parse_cron(value, timezone)


def iso(instant: float) -> str:
    """An instant as Trigger.dev writes dates: ISO-8601 UTC with milliseconds and `Z`."""
    when = datetime.fromtimestamp(instant, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
