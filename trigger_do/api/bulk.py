"""Bulk action endpoints (Trigger.dev's `runs.bulk.cancel/replay/retrieve/list/abort/poll`),
on the engine's bulk actions (`trigger_do/bulk.py`).

`POST /api/v1/bulk-actions` takes `{action: "cancel" | "replay", runIds | filter, name?,
targetRegion?}` (the filter as `runs.list` takes it: status, taskIdentifier, tag, batch,
bulkAction, from, to, period, isTest), records the action, works on it for up to
`CREATE_BUDGET` seconds and answers `{id}`. Every retrieve of an action still PENDING goes
on with it for up to `POLL_BUDGET` seconds first, so a client that polls (`runs.bulk.poll`)
drives it to the end; `Engine.resume_bulk_actions` does the same for an action nobody polls.
Responses are Trigger.dev's BulkActionObject: status PENDING (pending or running here),
COMPLETED or ABORTED; counts `{total, success, failure}`."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..bulk import MAX_NAME, MAX_RUN_IDS, BulkActionNotFoundError
from ..errors import InvalidDurationError
from ..shared.durations import parse_duration
from ..shared.states import RunState
from .errors import HTTPError
from .fields import MAX_ID_LENGTH, MAX_KEY_LENGTH, PageSize, RunId
from .jsonbody import read_json_object
from .requests import engine_of, query_value
from .shapes import iso

KIB = 1024
BODY_LIMIT = 2048 * KIB  # room for the largest id selection the engine takes
CREATE_BUDGET = 10.0  # seconds of processing within the create request
POLL_BUDGET = 2.0  # seconds of processing within a retrieve of an open action

STATUS = {  # the record's status -> BulkActionStatus
    "pending": "PENDING",
    "running": "PENDING",
    "completed": "COMPLETED",
    "aborted": "ABORTED",
}
RUN_STATUSES = (
    "PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED", "CANCELED",
    "FAILED", "CRASHED", "SYSTEM_FAILURE", "DELAYED", "EXPIRED", "TIMED_OUT",
)  # fmt: skip
# runs.list filters trigger.do has no data for: refused, never ignored (ignoring one would
# widen the selection to runs the caller did not mean)
UNSUPPORTED = ("version", "schedule", "queue", "machine", "region")
SUPPORTED = (
    "status", "taskIdentifier", "tag", "batch", "bulkAction", "from", "to", "period", "isTest",
)  # fmt: skip
FILTERS = (*SUPPORTED, *UNSUPPORTED)


def invalid(loc: str, msg: str) -> HTTPError:
    return HTTPError(422, msg, code="validation", errors=[{"loc": loc, "msg": msg}])


def shape(action: dict[str, Any]) -> dict[str, Any]:
    """A record as Trigger.dev's BulkActionObject (optional keys omitted when unset);
    `updatedAt`, `error` and `triggerDo` are trigger.do's own (the official client drops
    them)."""
    out: dict[str, Any] = {
        "id": action["id"],
        "type": str(action["kind"]).upper(),
        "status": STATUS[action["status"]],
        "counts": {
            "total": action["total"],
            "success": action["succeeded"],
            "failure": action["failed"],
        },
        "createdAt": iso(action["created_at"]),
        "updatedAt": iso(action["updated_at"]),
    }
    if action["name"] is not None:
        out["name"] = action["name"]
    if action["completed_at"] is not None:
        out["completedAt"] = iso(action["completed_at"])
    if action["error"] is not None:
        out["error"] = action["error"]
    selection = (
        {"runIds": action["run_count"]}
        if action["filters"] is None
        else {"filter": action["filters"]}
    )
    out["triggerDo"] = {"state": action["status"], "selection": selection}
    return out


# --- the request body ----------------------------------------------------------------------------


def _strings(loc: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise invalid(loc, f"{loc} must be a string or an array of strings")
    return [v.strip() for v in values if v.strip()]


def _empty(value: Any) -> bool:
    """zod's "no value" for a filter: undefined, a blank string, an array of such."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list):
        return all(_empty(v) for v in value)
    return False


def _time(loc: str, value: Any) -> float:
    """A date (ISO-8601) or epoch milliseconds, as epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) / 1000
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.isascii() and text.replace(".", "", 1).isdigit():
                return float(text) / 1000
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise invalid(loc, f"{loc} must be a date (ISO-8601) or epoch milliseconds, not {value!r}")


def filters_from(raw: Any, now: float) -> dict[str, Any]:
    """A Trigger.dev bulk-action filter as the engine's run-index filters."""
    if not isinstance(raw, dict):
        raise invalid("filter", "filter must be an object")
    unknown = sorted(set(raw) - set(FILTERS))
    if unknown:
        raise invalid(
            f"filter.{unknown[0]}",
            f"unknown filter {', '.join(map(repr, unknown))}: filters are {', '.join(FILTERS)}",
        )
    given = {k: v for k, v in raw.items() if not _empty(v)}
    if not given:
        raise invalid("filter", "At least one filter must be provided")
    for name in UNSUPPORTED:
        if name in given:
            raise invalid(
                f"filter.{name}",
                f"filter {name!r} is not supported by trigger.do's bulk actions "
                f"(supported: {', '.join(SUPPORTED)})",
            )
    out: dict[str, Any] = {}
    if "status" in given:
        statuses = [s.upper() for s in _strings("filter.status", given["status"])]
        bad = [s for s in statuses if s not in RUN_STATUSES]
        if bad:
            known = ", ".join(RUN_STATUSES)
            raise invalid("filter.status", f"unknown status {bad[0]!r}: statuses are {known}")
        states = [str(s) for st in statuses for s in RunState.from_api_status(st)]
        if not states:
            raise invalid(
                "filter.status",
                f"no trigger.do run is ever {' or '.join(statuses)}: this filter selects no run",
            )
        out["states"] = states
    for name, key in (("taskIdentifier", "tasks"), ("tag", "tags")):
        if name in given:
            out[key] = _strings(f"filter.{name}", given[name])
    for name, key in (("batch", "batch_id"), ("bulkAction", "bulk_action")):
        if name in given:
            if not isinstance(given[name], str):
                raise invalid(f"filter.{name}", f"filter.{name} must be a string")
            out[key] = given[name].strip()
    if "period" in given:
        if "from" in given or "to" in given:
            raise invalid("filter.period", "give filter.period or filter.from/to, not both")
        try:
            out["created_from"] = now - parse_duration(given["period"], allow_zero=False)
        except InvalidDurationError as exc:
            raise invalid("filter.period", str(exc)) from None
        out["created_to"] = now
    for name, key in (("from", "created_from"), ("to", "created_to")):
        if name in given:
            out[key] = _time(f"filter.{name}", given[name])
    if "isTest" in given:
        if not isinstance(given["isTest"], bool):
            raise invalid("filter.isTest", "filter.isTest must be true or false")
        if given["isTest"]:
            raise invalid("filter.isTest", "trigger.do has no test runs: this selects no run")
        out.setdefault("created_to", now)  # every (non-test) run created until now
    return out


async def create(request: Request) -> Response:
    engine = engine_of(request)
    body = await read_json_object(request, BODY_LIMIT, required=True)
    kind = body.get("action")
    if kind not in ("cancel", "replay"):
        raise invalid("action", f'unknown bulk action {kind!r}: action is "cancel" or "replay"')
    run_ids, raw_filter = body.get("runIds"), body.get("filter")
    if (run_ids is None) == (raw_filter is None):
        raise invalid("runIds", "Exactly one of filter or runIds must be provided")
    if run_ids is not None and (
        not isinstance(run_ids, list)
        or not run_ids
        or not all(isinstance(r, str) and 0 < len(r) <= MAX_ID_LENGTH for r in run_ids)
    ):
        raise invalid("runIds", "runIds must be a non-empty array of run ids")
    if run_ids is not None and len(run_ids) > MAX_RUN_IDS:
        raise invalid("runIds", f"at most {MAX_RUN_IDS} runIds: select more by a filter")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise invalid("name", f"name must be a string of at most {MAX_NAME} characters")
    region = body.get("targetRegion")
    if region is not None and (kind == "cancel" or not isinstance(region, str)):
        raise invalid("targetRegion", "targetRegion is a string, and only for a replay")
    filters = filters_from(raw_filter, engine.now()) if raw_filter is not None else None
    request_key = request.headers.get("x-trigger-request-idempotency-key") or None
    if request_key is not None and len(request_key) > MAX_KEY_LENGTH:
        raise HTTPError(400, f"x-trigger-request-idempotency-key: over {MAX_KEY_LENGTH} characters")
    action = await engine.create_bulk_action(
        kind,
        run_ids=run_ids,
        filters=filters,
        name=name,
        request_key=request_key,
        process_for=CREATE_BUDGET,
    )
    return JSONResponse(shape(action))


async def retrieve(request: Request) -> Response:
    bulk_id = request.path_params["bulk_id"]
    try:
        action = await engine_of(request).get_bulk_action(bulk_id, process_for=POLL_BUDGET)
    except BulkActionNotFoundError as exc:
        raise HTTPError(404, str(exc), code="bulk_action_not_found") from None
    return JSONResponse(shape(action))


async def abort(request: Request) -> Response:
    bulk_id = request.path_params["bulk_id"]
    try:
        done = await engine_of(request).abort_bulk_action(bulk_id)
    except BulkActionNotFoundError as exc:
        raise HTTPError(404, str(exc), code="bulk_action_not_found") from None
    if not done["aborted"]:
        status = STATUS[done["action"]["status"]]
        raise HTTPError(400, f"bulk action {bulk_id} is already {status}: nothing to abort")
    return JSONResponse(shape(done["action"]))


async def list_actions(request: Request) -> Response:
    query = request.query_params
    size: int = query_value(PageSize, "page[size]", query.get("page[size]"), 25)
    after = query_value(RunId, "page[after]", query.get("page[after]"))
    before = None if after else query_value(RunId, "page[before]", query.get("page[before]"))
    rows = await engine_of(request).list_bulk_actions(limit=size + 1, after=after, before=before)
    pagination: dict[str, str] = {}
    if before:
        if len(rows) > size:  # newest first: the extra one is the newest
            rows = rows[1:]
            pagination["previous"] = rows[0]["id"]
        if rows:
            pagination["next"] = rows[-1]["id"]
    else:
        if len(rows) > size:
            rows = rows[:size]
            pagination["next"] = rows[-1]["id"]
        if after and rows:
            pagination["previous"] = rows[0]["id"]
    return JSONResponse({"data": [shape(a) for a in rows], "pagination": pagination})
