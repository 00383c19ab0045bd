"""`runs.list`: `GET /api/v1/runs` (and `/api/v1/projects/{ref}/runs`, the same list: one
project here). Every filter the official client can send is applied or refused with a
400 naming it, never dropped; newest first, in cursor pages both ways.

A public access token lists only runs it may read: without `read:runs` it must filter by
tags, tasks or a batch that its scopes name (then every run listed is one it can read)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine import Engine
from ..errors import InvalidDurationError
from ..shared.durations import parse_duration
from ..shared.states import RunState
from . import auth, shapes
from .errors import HTTPError
from .fields import PageSize, as_date
from .requests import engine_of, query_value

SCAN = 500  # rows read per engine call when a filter is applied here (filter[queue])
SCAN_BUDGET = 5000  # rows read per request; past it, a short page and a cursor to go on
STATUSES = (
    "PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED", "CANCELED",
    "FAILED", "CRASHED", "SYSTEM_FAILURE", "DELAYED", "EXPIRED", "TIMED_OUT",
)  # fmt: skip
# Filters the client can send that trigger.do has nothing to match against.
UNSUPPORTED = {
    "version": "trigger.do has no deployment versions",
    "machine": "trigger.do has no machine presets",
    "region": "trigger.do has no regions",
}
APPLIED = {
    "status", "taskIdentifier", "tag", "batch", "bulkAction", "queue", "isTest", "env",
    "createdAt][period", "createdAt][from", "createdAt][to",
    "schedule",
}  # fmt: skip

Row = dict[str, Any]


@dataclass
class RunQuery:
    """A list request's filters: what the run index applies (`index`), what is applied
    here (`queues`), and whether nothing can match (`none`)."""

    index: dict[str, Any] = field(default_factory=dict)
    queues: set[str] | None = None
    none: bool = False

    def keep(self) -> Callable[[Row], bool] | None:
        if self.queues is None:
            return None
        queues = self.queues
        return lambda row: row.get("queue") in queues


def _csv(request: Request, name: str) -> list[str]:
    raw = request.query_params.getlist(name)
    return [p.strip() for item in raw for p in item.split(",") if p.strip()]


def _when(raw: str) -> float:
    if raw.isascii() and raw.replace(".", "", 1).isdigit() and len(raw) <= 20:
        return float(raw) / 1000  # epoch ms, as the client sends a Date
    when = as_date(raw)
    if when is None:
        raise ValueError(f"not a date (ISO-8601) or epoch milliseconds: {raw[:40]!r}")
    return when.timestamp()


def parse_query(request: Request) -> RunQuery:
    """`filter[...]` query parameters -> a `RunQuery`; 400 for any filter not applied (an
    empty value filters nothing)."""
    for name in request.query_params:
        if name.startswith("filter[") and name.endswith("]"):
            inner = name[len("filter[") : -1]
            given = any(v.strip() for v in request.query_params.getlist(name))
            if inner in UNSUPPORTED and given:
                raise HTTPError(400, f"filter[{inner}] is not supported: {UNSUPPORTED[inner]}")
            if inner not in APPLIED and inner not in UNSUPPORTED:
                raise HTTPError(400, f"unknown filter {name!r}")
    q = RunQuery()
    statuses = _csv(request, "filter[status]")
    if statuses:
        bad = [s for s in statuses if s.upper() not in STATUSES]
        if bad:
            raise HTTPError(400, f"filter[status]: unknown status {bad[0]!r}")
        states = [str(s) for st in statuses for s in RunState.from_api_status(st)]
        q.none |= not states  # statuses trigger.do never uses (PENDING_VERSION, DEQUEUED)
        q.index["states"] = states
    for name, key in (("taskIdentifier", "tasks"), ("tag", "tags")):
        values = _csv(request, f"filter[{name}]")
        if values:
            q.index[key] = values
    for name, key in (
        ("batch", "batch_id"),
        ("bulkAction", "bulk_action"),
        ("schedule", "schedule_id"),  # the runs a schedule started
    ):
        value = request.query_params.get(f"filter[{name}]")
        if value:
            q.index[key] = value
    queues = _csv(request, "filter[queue]")
    if queues:
        q.queues = set(queues)
    is_test = request.query_params.get("filter[isTest]")
    if is_test not in (None, "true", "false"):
        raise HTTPError(400, f"filter[isTest] must be true or false, not {is_test!r}")
    q.none |= is_test == "true"  # no test runs here
    envs = _csv(request, "filter[env]")
    q.none |= bool(envs) and not {shapes.ENV["name"], shapes.ENV["id"]} & set(envs)
    now = engine_of(request).now()
    for name, key, parse in (
        ("period", "created_from", lambda raw: now - parse_duration(raw)),
        ("from", "created_from", _when),
        ("to", "created_to", _when),
    ):
        raw = request.query_params.get(f"filter[createdAt][{name}]")
        try:
            when = parse(raw) if raw else None
        except (ValueError, InvalidDurationError) as exc:
            raise HTTPError(400, f"filter[createdAt][{name}]: {exc}") from None
        if when is not None:  # `period` and `from` together: the later bound
            both = [w for w in (q.index.get(key), when) if w is not None]
            q.index[key] = max(both) if key == "created_from" else min(both)
    return q


def check_token(request: Request, q: RunQuery) -> None:
    """403 unless the caller may read every run this query can list."""
    caller = auth.caller_of(request)
    if caller.allows("read", super_scopes=("read:runs",)):
        return
    narrowing = (
        ("tags", q.index.get("tags") or []),
        ("tasks", q.index.get("tasks") or []),
        ("batch", [q.index["batch_id"]] if q.index.get("batch_id") else []),
    )
    for kind, values in narrowing:
        if values and all(caller.allows("read", **{kind: v}) for v in values):
            return
    raise HTTPError(
        403,
        "this public access token lists only runs it can read: filter by tags, tasks or a "
        f"batch its scopes name (its scopes: {caller.describe()})",
    )


async def scan(
    engine: Engine,
    q: RunQuery,
    size: int,
    after: list[Any] | None,
    before: list[Any] | None,
) -> tuple[list[Row], dict[str, str]]:
    """One page (newest first) and its cursors. Going `before` a cursor reads newer rows.
    A filter applied here may leave a page short; its cursor then carries on from the last
    row read, so every match is still reached."""
    keep = q.keep()
    limit = size + 1 if keep is None else SCAN
    backward = before is not None and after is None
    pos = before if backward else after
    kept: list[Row] = []
    last: Row | None = None
    exhausted, read = False, 0
    while True:
        cursor = {"before": pos} if backward else {"after": pos} if pos else {}
        batch = await engine.list_runs(limit=limit, **q.index, **cursor)
        read += len(batch)
        matched = batch if keep is None else [r for r in batch if keep(r)]
        if batch:
            last = batch[0] if backward else batch[-1]
        kept = matched + kept if backward else kept + matched
        if len(batch) < limit:
            exhausted = True
            break
        if len(kept) > size or read >= SCAN_BUDGET or last is None:
            break
        pos = [last["created_at"], last["id"]]
    more = "previous" if backward else "next"
    pagination: dict[str, str] = {}
    if len(kept) > size:
        rows = kept[-size:] if backward else kept[:size]
        pagination[more] = shapes.cursor(rows[0] if backward else rows[-1])
    else:
        rows = kept
        if not exhausted and last is not None:
            pagination[more] = shapes.cursor(last)
    if rows and (backward or after):
        pagination["next" if backward else "previous"] = shapes.cursor(
            rows[-1] if backward else rows[0]
        )
    return rows, pagination


@auth.accepts_public_tokens
async def list_runs(request: Request) -> Response:
    size: int = query_value(PageSize, "page[size]", request.query_params.get("page[size]"), 25)
    q = parse_query(request)
    check_token(request, q)
    after = request.query_params.get("page[after]")
    before = request.query_params.get("page[before]")
    if after and before:  # both: the newer cursor is the caller's latest move
        if shapes.parse_cursor(before)[1] > shapes.parse_cursor(after)[1]:
            after = None
        else:
            before = None
    if q.none:
        return JSONResponse({"data": [], "pagination": {}})
    rows, pagination = await scan(
        engine_of(request),
        q,
        size,
        shapes.parse_cursor(after)[0] if after else None,
        shapes.parse_cursor(before)[0] if before else None,
    )
    data = [shapes.list_item(r, engine_of(request).now()) for r in rows]
    return JSONResponse({"data": data, "pagination": pagination})
