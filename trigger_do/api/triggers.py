"""Trigger endpoints: one run, the two batch APIs (v4's two phases and the older one-shot)
and batch retrieve. Every request is validated whole (`requests`) before anything is
written; an uploaded packet a trigger used is deleted once its runs hold the payload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine import Engine
from ..producer.producer import TriggerRequest
from . import auth, packets, shapes
from .errors import HTTPError
from .fields import MAX_BATCH_ITEMS
from .jsonbody import ndjson_objects, read_json_object
from .links import linked, parent_links
from .payloads import STORE, body_limit, decode_payload, trigger_options
from .requests import (
    BatchBody,
    CreateBatchBody,
    StreamItemBody,
    TriggerBody,
    engine_of,
    errors_of,
    invalid,
    validate,
)

KIB = 1024
BATCH_BODY_LIMIT = 256 * 1024 * KIB  # one NDJSON stream of batch items
STREAM_CHUNK = 2000  # NDJSON lines checked and written together while the rest arrives


async def _request_for(engine: Engine, task_id: str, body: TriggerBody) -> TriggerRequest:
    payload = await decode_payload(engine.platform.blobs, body.payload, body.options)
    return TriggerRequest(task_id, payload, trigger_options(body.options))


async def _used_uploads(request: Request, bodies: list[TriggerBody]) -> None:
    """Uploaded packets are copied into runs when triggered; the uploads go (and their
    URLs may not upload again)."""
    paths = [
        b.payload
        for b in bodies
        if b.options is not None and b.options.payloadType == STORE and isinstance(b.payload, str)
    ]
    if paths:
        packets.spend(request, paths)
        await packets.drop(engine_of(request).platform.blobs, paths)


# A public access token triggers only the tasks its scopes name (`trigger:tasks:<id>`, or
# `batchTrigger:tasks:<id>` for a batch); a one-time token is spent by its first trigger.
TRIGGER_SUPER = ("write:tasks",)


def _task_of(item: Any) -> Any:
    return item.get("task") if isinstance(item, dict) else None


def _may_batch(request: Request, tasks: list[Any]) -> auth.Caller:
    """The caller, if it may batch-trigger every one of `tasks` (else 403)."""
    caller = auth.caller_of(request)
    if not caller.is_key:
        for task in dict.fromkeys(t if isinstance(t, str) else None for t in tasks):
            auth.require(request, "batchTrigger", super_scopes=TRIGGER_SUPER, tasks=task)
    return caller


@auth.accepts_public_tokens
async def trigger(request: Request) -> Response:
    engine = engine_of(request)
    task_id = request.path_params["task_id"]
    caller = auth.require(request, "trigger", super_scopes=TRIGGER_SUPER, tasks=task_id)
    body = validate(TriggerBody, await read_json_object(request, body_limit(engine), required=True))
    req = await _request_for(engine, task_id, body)
    if body.options is not None:  # a child of `options.parentRunId`
        parent, resume = body.options.parentRunId, body.options.resumeParentOnCompletion
        req = linked(req, await parent_links(engine, parent, resume, "options.parentRunId"))
    with auth.spending(request, caller):
        done = await engine.trigger(req)
    await _used_uploads(request, [body])
    headers = auth.token_headers(request, [f"read:runs:{done.id}"])
    return JSONResponse({"id": done.id, "isCached": done.cached}, headers=headers)


@auth.accepts_public_tokens
async def batch_v2(request: Request) -> Response:
    """The one-shot batch (SDK 4.0.x), also what trigger.do's remote client uses."""
    engine = engine_of(request)
    data = await read_json_object(request, BATCH_BODY_LIMIT, required=True)
    raw = data.get("items")
    caller = _may_batch(request, [_task_of(i) for i in raw] if isinstance(raw, list) else [])
    body = validate(BatchBody, data)
    requests = [await _request_for(engine, item.task, item) for item in body.items]
    links = await parent_links(
        engine, body.parentRunId, body.resumeParentOnCompletion, "parentRunId"
    )
    requests = [linked(r, links) for r in requests]
    with auth.spending(request, caller):
        done = await engine.batch_trigger(requests, idempotency_key=body.idempotencyKey)
    await _used_uploads(request, list(body.items))
    return JSONResponse(
        {
            "id": done.id,
            "runCount": len(done.runs),
            "isCached": done.cached,
            "runs": [{"id": r.id, "isCached": r.cached} for r in done.runs],
        },
        headers=auth.token_headers(request, [f"read:batch:{done.id}"]),
    )


@auth.accepts_public_tokens
async def create_batch(request: Request) -> Response:
    """Phase 1 of v4's batch: an empty batch expecting `runCount` items. A public token
    must name the batch's tasks (`taskIdentifiers`, which the client sends)."""
    engine = engine_of(request)
    data = await read_json_object(request, 64 * KIB, required=True)
    tasks = data.get("taskIdentifiers")
    if not auth.caller_of(request).is_key and not (isinstance(tasks, list) and tasks):
        raise HTTPError(403, "a public access token must name the batch's taskIdentifiers")
    caller = _may_batch(request, tasks if isinstance(tasks, list) else [])
    body = validate(CreateBatchBody, data)
    key = body.idempotencyKey
    links = await parent_links(
        engine, body.parentRunId, body.resumeParentOnCompletion, "parentRunId"
    )
    with auth.spending(request, caller):
        made = await engine.create_batch(body.runCount, key)
    if links:  # its items, sent later, become the parent's children
        await engine.waits.link_batch(made["id"], links)
    out: dict[str, Any] = {"id": made["id"], "runCount": made["run_count"]}
    out["isCached"] = bool(made["cached"])
    if key:
        out["idempotencyKey"] = key
    return JSONResponse(out, headers=auth.token_headers(request, [f"read:batch:{made['id']}"]))


@auth.accepts_public_tokens
async def batch_items(request: Request) -> Response:
    """Phase 2: NDJSON items `{index, task, payload, options}`; resent indexes are skipped.
    Read as a stream: every `STREAM_CHUNK` lines are checked (a public token's scopes
    included) and written while the client still sends the rest; they stay invisible until
    the batch is complete. A bad line answers 400/422 naming it: nothing of its chunk is
    written, the chunks before it wait for a resend (which skips them)."""
    engine = engine_of(request)
    batch_id = request.path_params["batch_id"]
    links = await engine.waits.batch_links(batch_id)  # a parent named when it was created

    async def chunks() -> AsyncIterator[list[tuple[int, TriggerRequest]]]:
        async for lines in ndjson_objects(request, BATCH_BODY_LIMIT, MAX_BATCH_ITEMS, STREAM_CHUNK):
            _may_batch(request, [_task_of(item) for _, item in lines])
            bodies: list[StreamItemBody] = []
            errors: list[dict[str, Any]] = []
            for n, item in lines:
                try:
                    bodies.append(StreamItemBody.model_validate(item))
                except ValidationError as exc:
                    errors += [{**e, "loc": f"line {n}: {e['loc']}"} for e in errors_of(exc)]
            if errors:
                raise invalid(
                    errors, f"invalid batch items, nothing from line {lines[0][0]} on was written"
                )
            yield [(b.index, linked(await _request_for(engine, b.task, b), links)) for b in bodies]
            await _used_uploads(request, list(bodies))  # written: the uploads go

    res = await engine.add_batch_stream(batch_id, chunks())
    if res is None:
        raise HTTPError(404, f"no batch with id {batch_id!r}", code="batch_not_found")
    sealed = res["present"] >= res["run_count"]
    out: dict[str, Any] = {
        "id": batch_id,
        "itemsAccepted": res["accepted"],
        "itemsDeduplicated": res["deduplicated"],
        "sealed": sealed,
    }
    if not sealed:
        out.update(enqueuedCount=res["present"], expectedCount=res["run_count"])
    return JSONResponse(out)


@auth.accepts_public_tokens
async def retrieve_batch(request: Request) -> Response:
    batch_id = request.path_params["batch_id"]
    auth.require(request, "read", super_scopes=("read:runs",), batch=batch_id)
    found = await engine_of(request).get_batch(batch_id)
    if found is None:
        raise HTTPError(404, f"no batch with id {batch_id!r}", code="batch_not_found")
    return JSONResponse(shapes.batch(found))
