"""Run endpoints: retrieve, cancel, replay, reschedule, metadata and tags; plus two bulk
reads trigger.do's remote client uses. (The list is `run_list`.)"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidDurationError
from ..shared.limits import MAX_METADATA_BYTES
from ..shared.options import MAX_TAGS
from ..shared.states import RunState
from . import auth, shapes
from .errors import HTTPError
from .fields import check_metadata
from .jsonbody import read_json_object
from .links import with_related
from .requests import (
    AppendOp,
    DeleteOp,
    IncrementOp,
    MetadataBody,
    RemoveOp,
    RescheduleBody,
    RunIdsBody,
    SetOp,
    TagsBody,
    UpdateOp,
    engine_of,
    invalid_field,
    validate,
)

KIB = 1024


@auth.accepts_public_tokens
async def retrieve(request: Request) -> Response:
    engine = engine_of(request)
    row = await engine.get_run(request.path_params["run_id"])
    auth.require(
        request,
        "read",
        super_scopes=("read:runs",),
        runs=row["id"],
        tags=row.get("tags") or [],
        batch=row.get("batch_id"),
        tasks=row["task"],
    )
    return JSONResponse(await with_related(engine, row, shapes.retrieve(row, engine.now())))


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
    body = validate(RescheduleBody, await read_json_object(request, 16 * KIB, required=True))
    delay = body.delay
    when = delay.timestamp() if isinstance(delay, datetime) else engine.now() + delay
    row = await engine.get_run(run_id)  # 404 before anything else
    try:
        moved = await engine.reschedule(run_id, when)
    except InvalidDurationError as exc:  # the 10-year bound, crossed since validation
        raise invalid_field("delay", str(exc)) from None
    if not moved:
        raise HTTPError(
            400,
            f"run {run_id} is {RunState(row['state']).api_status}: only a delayed or queued run "
            "can be rescheduled",
        )
    return JSONResponse(shapes.retrieve(await engine.get_run(run_id), engine.now()))


def apply_operations(metadata: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Trigger.dev's metadata change operations (validated by `MetadataBody`): set,
    delete, append, remove, increment, update."""
    out = dict(metadata)
    for op in ops:
        if isinstance(op, SetOp):
            out[op.key] = op.value
        elif isinstance(op, DeleteOp):
            out.pop(op.key, None)
        elif isinstance(op, AppendOp):
            cur = out.get(op.key)
            out[op.key] = [*(cur if isinstance(cur, list) else [] if cur is None else [cur])]
            out[op.key].append(op.value)
        elif isinstance(op, RemoveOp):
            cur = out.get(op.key)
            if isinstance(cur, list):
                out[op.key] = [v for v in cur if v != op.value]
        elif isinstance(op, IncrementOp):
            cur = out.get(op.key)
            start = cur if isinstance(cur, int | float) and not isinstance(cur, bool) else 0
            out[op.key] = start + op.value
        elif isinstance(op, UpdateOp):
            out.update(op.value)
    return out


async def metadata(request: Request) -> Response:
    engine = engine_of(request)
    run_id = request.path_params["run_id"]
    row = await engine.get_run(run_id, details=False)
    current: dict[str, Any] = row.get("metadata") or {}
    if request.method == "GET":
        return JSONResponse({"metadata": current})
    raw = await read_json_object(request, MAX_METADATA_BYTES + 64 * KIB)
    body = validate(MetadataBody, raw)
    base = body.metadata if body.metadata is not None else current
    result = apply_operations(base, body.operations)
    try:
        result = check_metadata(result)
    except ValueError as exc:
        raise invalid_field("metadata", f"after the operations: {exc}") from None
    await engine.update_run(run_id, metadata=result)
    return JSONResponse({"metadata": result})


async def tags(request: Request) -> Response:
    """Add tags to a run: at most MAX_TAGS in all, as a trigger allows."""
    engine = engine_of(request)
    run_id = request.path_params["run_id"]
    body = validate(TagsBody, await read_json_object(request, 16 * KIB, required=True))
    row = await engine.get_run(run_id, details=False)
    existing = list(row.get("tags") or [])
    new = [t for t in dict.fromkeys(body.tags) if t not in existing]
    if len(existing) + len(new) > MAX_TAGS:
        raise invalid_field(
            "tags",
            f"a run has at most {MAX_TAGS} tags: it has {len(existing)}, and {len(new)} new "
            f"would make {len(existing) + len(new)}",
        )
    if new:
        await engine.update_run(run_id, add_tags=new)
    return JSONResponse({"message": f"Successfully set {len(new)} new tags."})


# --- bulk reads for trigger.do's remote client ------------------------------------------------


async def _ids(request: Request) -> list[str]:
    body = validate(RunIdsBody, await read_json_object(request, 512 * KIB, required=True))
    return list(body.ids)


async def bulk_states(request: Request) -> Response:
    states = await engine_of(request).get_states(await _ids(request))
    return JSONResponse({"states": states})


async def bulk_retrieve(request: Request) -> Response:
    engine = engine_of(request)
    rows = await engine.get_runs(await _ids(request))
    now = engine.now()
    return JSONResponse({"data": [shapes.retrieve(r, now) for r in rows.values()]})
