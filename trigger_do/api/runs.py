"""Run endpoints: retrieve, cancel, replay, reschedule, metadata and tags; plus two bulk
reads trigger.do's remote client uses. (The list is `run_list`.)"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..shared.durations import parse_duration
from ..shared.states import RunState
from . import auth, shapes
from .errors import HTTPError
from .payloads import read_json_object
from .triggers import engine_of

KIB = 1024
BULK_MAX = 1000


@auth.accepts_public_tokens
async def retrieve(request: Request) -> Response:
    row = await engine_of(request).get_run(request.path_params["run_id"])
    auth.require(
        request,
        "read",
        super_scopes=("read:runs",),
        runs=row["id"],
        tags=row.get("tags") or [],
        batch=row.get("batch_id"),
        tasks=row["task"],
    )
    return JSONResponse(shapes.retrieve(row))


async def cancel(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    res = await engine_of(request).cancel(run_id)
    return JSONResponse({"id": run_id, "canceled": bool(res["canceled"])})


async def replay(request: Request) -> Response:
    done = await engine_of(request).replay(request.path_params["run_id"])
    return JSONResponse({"id": done.id})


async def reschedule(request: Request) -> Response:
    engine = engine_of(request)
    run_id = request.path_params["run_id"]
    body = await read_json_object(request, 16 * KIB)
    delay = body.get("delay")
    try:
        if isinstance(delay, str) and ("T" in delay or "-" in delay):
            when = datetime.fromisoformat(delay.replace("Z", "+00:00")).timestamp()
        elif isinstance(delay, str | int | float) and not isinstance(delay, bool):
            when = engine.now() + parse_duration(delay)
        else:
            raise HTTPError(422, "`delay` must be a duration like 1h or a date", code="validation")
    except ValueError as exc:
        raise HTTPError(422, f"invalid delay: {exc}", code="validation") from None
    row = await engine.get_run(run_id)  # 404 first
    if not await engine.reschedule(run_id, when):
        raise HTTPError(
            400,
            f"run {run_id} is {RunState(row['state']).api_status}: only a delayed or queued run "
            "can be rescheduled",
        )
    return JSONResponse(shapes.retrieve(await engine.get_run(run_id)))


def _apply_operations(metadata: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Trigger.dev's metadata change operations: set, delete, append, remove, increment,
    update."""
    out = dict(metadata)
    for op in ops:
        if not isinstance(op, dict):
            continue
        kind, key = op.get("type"), str(op.get("key"))
        if kind == "set":
            out[key] = op.get("value")
        elif kind == "delete":
            out.pop(key, None)
        elif kind == "append":
            cur = out.get(key)
            out[key] = [*(cur if isinstance(cur, list) else [] if cur is None else [cur])]
            out[key].append(op.get("value"))
        elif kind == "remove":
            cur = out.get(key)
            if isinstance(cur, list):
                out[key] = [v for v in cur if v != op.get("value")]
        elif kind == "increment":
            cur = out.get(key)
            out[key] = (cur if isinstance(cur, int | float) else 0) + (op.get("value") or 0)
        elif kind == "update" and isinstance(op.get("value"), dict):
            out.update(op["value"])
    return out


async def metadata(request: Request) -> Response:
    engine = engine_of(request)
    run_id = request.path_params["run_id"]
    row = await engine.get_run(run_id, details=False)
    current: dict[str, Any] = row.get("metadata") or {}
    if request.method == "GET":
        return JSONResponse({"metadata": current})
    body = await read_json_object(request, 256 * KIB)
    new = body.get("metadata")
    if new is not None and not isinstance(new, dict):
        raise HTTPError(422, "metadata must be an object", code="validation")
    result = dict(new) if new is not None else current
    result = _apply_operations(result, body.get("operations") or [])
    await engine.update_run(run_id, metadata=result)
    return JSONResponse({"metadata": result})


async def tags(request: Request) -> Response:
    engine = engine_of(request)
    run_id = request.path_params["run_id"]
    body = await read_json_object(request, 16 * KIB)
    raw = body.get("tags")
    new = [raw] if isinstance(raw, str) else raw
    if not isinstance(new, list) or not all(isinstance(t, str) and t for t in new):
        raise HTTPError(422, "tags must be a string or an array of strings", code="validation")
    await engine.update_run(run_id, add_tags=new)
    return JSONResponse({"message": f"Successfully set {len(new)} new tags."})


# --- bulk reads for trigger.do's remote client ------------------------------------------------


async def _ids(request: Request) -> list[str]:
    body = await read_json_object(request, 256 * KIB)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise HTTPError(400, "`ids` must be an array of run ids")
    if len(ids) > BULK_MAX:
        raise HTTPError(400, f"at most {BULK_MAX} ids per call")
    return ids


async def bulk_states(request: Request) -> Response:
    states = await engine_of(request).get_states(await _ids(request))
    return JSONResponse({"states": states})


async def bulk_retrieve(request: Request) -> Response:
    rows = await engine_of(request).get_runs(await _ids(request))
    now = time.time()
    return JSONResponse({"data": [shapes.retrieve(r, now) for r in rows.values()]})
