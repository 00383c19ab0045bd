"""The runs list's filters, kept in the URL (`/runs?status=FAILED&task=send-email&tag=...`):
parsed into `Engine.list_runs` filters, and written back into links (paging, the live
fragment, a tag clicked on a run). A bad value is reported by name, never dropped."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from ..errors import InvalidDurationError, TriggerDoError
from ..shared.durations import parse_duration
from ..shared.states import RunState

# The statuses a user filters by (Trigger.dev's names), in the order the form lists them.
STATUSES = (
    "QUEUED", "DELAYED", "EXECUTING", "WAITING", "COMPLETED", "FAILED", "CANCELED",
    "TIMED_OUT", "CRASHED", "EXPIRED", "SYSTEM_FAILURE",
)  # fmt: skip
PERIODS = ("15m", "1h", "6h", "24h", "7d", "30d")
PAGE_SIZE = 50
_SEP = "~"  # cursor: "<created_at>~<run id>"


class FilterError(TriggerDoError, ValueError):
    """A filter value that cannot be applied; `name` is the URL parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


def _values(query: QueryParams, name: str) -> list[str]:
    out: list[str] = []
    for item in query.getlist(name):
        out += [p.strip() for p in item.split(",") if p.strip()]
    return list(dict.fromkeys(out))


def _time(name: str, raw: str) -> float:
    """A `datetime-local` value (read as UTC) or an ISO-8601 date-time."""
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(name, f"not a date and time: {raw[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _cursor(name: str, raw: str) -> list[Any]:
    at, sep, run_id = raw.partition(_SEP)
    try:
        return [float(at), run_id] if sep and run_id else _bad_cursor(name)
    except ValueError:
        return _bad_cursor(name)


def _bad_cursor(name: str) -> list[Any]:
    raise FilterError(name, "not a page cursor of this list")


def cursor_of(row: dict[str, Any]) -> str:
    return f"{row['created_at']!r}{_SEP}{row['id']}"


@dataclass(frozen=True)
class RunFilters:
    """What the runs list shows: each field as the URL gives it."""

    status: list[str] = field(default_factory=list)
    task: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    period: str = ""
    start: str = ""  # `from`: created at or after (UTC)
    end: str = ""  # `to`: created at or before (UTC)
    batch: str = ""
    schedule: str = ""
    key: str = ""  # idempotency key
    bulk: str = ""  # the runs a bulk action touched
    after: str = ""
    before: str = ""

    @classmethod
    def parse(cls, query: QueryParams) -> RunFilters:
        """The filters of a URL; `FilterError` names the first bad one."""
        found = cls(
            status=[s.upper() for s in _values(query, "status")],
            task=_values(query, "task"),
            tag=_values(query, "tag"),
            period=(query.get("period") or "").strip(),
            start=(query.get("from") or "").strip(),
            end=(query.get("to") or "").strip(),
            batch=(query.get("batch") or "").strip(),
            schedule=(query.get("schedule") or "").strip(),
            key=(query.get("key") or "").strip(),
            bulk=(query.get("bulk") or "").strip(),
            after=(query.get("after") or "").strip(),
            before=(query.get("before") or "").strip(),
        )
        found.engine_filters(0.0)  # check every value now
        return found

    def engine_filters(self, now: float) -> dict[str, Any]:
        """The filters `Engine.list_runs` (and a bulk action) takes, without paging."""
        out: dict[str, Any] = {}
        bad = [s for s in self.status if s not in STATUSES]
        if bad:
            raise FilterError("status", f"unknown status {bad[0]!r}")
        if self.status:
            out["states"] = [str(s) for st in self.status for s in RunState.from_api_status(st)]
        if self.task:
            out["tasks"] = list(self.task)
        if self.tag:
            out["tags"] = list(self.tag)
        for key, value in (
            ("batch_id", self.batch),
            ("schedule_id", self.schedule),
            ("idempotency_key", self.key),
            ("bulk_action", self.bulk),
        ):
            if value:
                out[key] = value
        if self.period:
            try:
                out["created_from"] = now - parse_duration(self.period, allow_zero=False)
            except (InvalidDurationError, ValueError) as exc:
                raise FilterError("period", str(exc)) from None
        if self.start:
            start = _time("from", self.start)
            out["created_from"] = max(start, out.get("created_from", start))
        if self.end:
            out["created_to"] = _time("to", self.end)
        return out

    def paging(self) -> dict[str, Any]:
        if self.after:
            return {"after": _cursor("after", self.after)}
        if self.before:
            return {"before": _cursor("before", self.before)}
        return {}

    @property
    def active(self) -> bool:
        """Whether any filter (not paging) is set."""
        return bool(self.filter_query())

    @property
    def more_open(self) -> bool:
        """Whether a filter of the form's folded part is set (it opens then)."""
        return any((self.batch, self.schedule, self.key, self.bulk, self.start, self.end))

    def filter_query(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for name, values in (("status", self.status), ("task", self.task), ("tag", self.tag)):
            pairs += [(name, v) for v in values]
        for name, value in (
            ("period", self.period), ("from", self.start), ("to", self.end),
            ("batch", self.batch), ("schedule", self.schedule), ("key", self.key),
            ("bulk", self.bulk),
        ):  # fmt: skip
            if value:
                pairs.append((name, value))
        return pairs

    def url(self, path: str, **changes: Any) -> str:
        """`path` with these filters (and paging) in its query, after `changes`."""
        f = replace(self, **changes) if changes else self
        pairs = f.filter_query()
        if f.after:
            pairs.append(("after", f.after))
        elif f.before:
            pairs.append(("before", f.before))
        return f"{path}?{urlencode(pairs)}" if pairs else path
