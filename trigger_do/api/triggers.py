"""Trigger endpoints: one run, the two batch APIs (v4's two phases and the older one-shot),
batch retrieve, and the packet upload the official client uses for large payloads."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..engine import Engine
from ..producer.producer import TriggerRequest
from ..shared.serialization import loads
from . import auth, shapes
from .errors import HTTPError
from .keys import sign, signature_ok
from .payloads import (
    STORE,
    UPLOADS,
    decode_payload,
    read_body,
    read_json_object,
    translate_options,
)

KIB = 1024
BATCH_BODY_LIMIT = 256 * 1024 * KIB  # one NDJSON stream of batch items
UPLOAD_URL_TTL = 3600.0
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._\-/]{1,200}$")


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def body_limit(engine: Engine) -> int:
    """A payload travels escaped inside a JSON string: allow for that, then let the
    producer check the payload itself against `payload_limit` (413 with its size)."""
    return 2 * engine.config.payload_limit + 64 * KIB


async def _request_for(engine: Engine, task_id: Any, body: dict[str, Any]) -> TriggerRequest:
    if not isinstance(task_id, str) or not task_id:
        raise HTTPError(400, "each item needs a task id (`task`)")
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise HTTPError(400, "options must be an object")
    payload = await decode_payload(engine.platform.blobs, body.get("payload"), options)
    return TriggerRequest(task_id, payload, translate_options(options))


async def _drop_uploads(engine: Engine, bodies: list[dict[str, Any]]) -> None:
    """Uploaded packets are copied into runs when triggered; the uploads go."""
    for body in bodies:
        opts = body.get("options")
        if isinstance(opts, dict) and opts.get("payloadType") == STORE:
            key = str(body.get("payload"))
            await engine.platform.blobs.delete(key)
            await engine.platform.blobs.delete(key + ".type")


# A public access token triggers only the tasks its scopes name (`trigger:tasks:<id>`, or
# `batchTrigger:tasks:<id>` for a batch); a one-time token is spent by its first trigger.
TRIGGER_SUPER = ("write:tasks",)


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
    body = await read_json_object(request, body_limit(engine))
    req = await _request_for(engine, task_id, body)
    with auth.spending(request, caller):
        done = await engine.trigger(req)
    await _drop_uploads(engine, [body])
    headers = auth.token_headers(request, [f"read:runs:{done.id}"])
    return JSONResponse({"id": done.id, "isCached": done.cached}, headers=headers)


@auth.accepts_public_tokens
async def batch_v2(request: Request) -> Response:
    """The one-shot batch (SDK 4.0.x), also what trigger.do's remote client uses."""
    engine = engine_of(request)
    body = await read_json_object(request, BATCH_BODY_LIMIT)
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise HTTPError(400, "`items` must be a non-empty array")
    bodies = [i if isinstance(i, dict) else {} for i in items]
    caller = _may_batch(request, [b.get("task") for b in bodies])
    requests = [await _request_for(engine, b.get("task"), b) for b in bodies]
    key = body.get("idempotencyKey")
    with auth.spending(request, caller):
        done = await engine.batch_trigger(requests, idempotency_key=key if key else None)
    await _drop_uploads(engine, bodies)
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
    body = await read_json_object(request, 64 * KIB)
    count = body.get("runCount")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise HTTPError(422, "runCount must be a positive integer", code="validation")
    tasks = body.get("taskIdentifiers")
    if not auth.caller_of(request).is_key and not (isinstance(tasks, list) and tasks):
        raise HTTPError(403, "a public access token must name the batch's taskIdentifiers")
    caller = _may_batch(request, tasks if isinstance(tasks, list) else [])
    key = body.get("idempotencyKey") or None
    with auth.spending(request, caller):
        made = await engine.create_batch(count, key)
    out: dict[str, Any] = {"id": made["id"], "runCount": made["run_count"]}
    out["isCached"] = bool(made["cached"])
    if key:
        out["idempotencyKey"] = key
    return JSONResponse(out, headers=auth.token_headers(request, [f"read:batch:{made['id']}"]))


@auth.accepts_public_tokens
async def batch_items(request: Request) -> Response:
    """Phase 2: NDJSON items `{index, task, payload, options}`; resent indexes are skipped.
    All items are validated before any is written (a public token's scopes included)."""
    engine = engine_of(request)
    batch_id = request.path_params["batch_id"]
    raw = await read_body(request, BATCH_BODY_LIMIT)
    items: list[tuple[int, TriggerRequest]] = []
    bodies: list[dict[str, Any]] = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = loads(line)
        except ValueError as exc:
            raise HTTPError(400, f"malformed JSON on line {n}: {exc}") from None
        if not isinstance(item, dict):
            raise HTTPError(400, f"line {n} is not a JSON object")
        index = item.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise HTTPError(400, f"line {n}: `index` must be an integer >= 0")
        items.append((index, await _request_for(engine, item.get("task"), item)))
        bodies.append(item)
    _may_batch(request, [b.get("task") for b in bodies])
    res = await engine.add_batch_items(batch_id, items)
    if res is None:
        raise HTTPError(404, f"no batch with id {batch_id!r}", code="batch_not_found")
    await _drop_uploads(engine, bodies)
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


# --- packets: a signed URL the client PUTs the payload to (no bearer key on that PUT) -------


def _signed_url(request: Request, key: str) -> str:
    secret: str = request.app.state.secret_key
    expires = int(time.time() + UPLOAD_URL_TTL)
    sig = sign(secret, f"{key}|{expires}")
    url = request.url_for("packet", path=key)
    return str(url.include_query_params(expires=expires, signature=sig))


@auth.accepts_public_tokens
async def presign_upload(request: Request) -> Response:
    """Where to upload a large payload before triggering with it (a public token that may
    trigger may upload)."""
    if not auth.may_trigger(auth.caller_of(request)):
        raise HTTPError(403, "this public access token may not trigger, so may not upload")
    name = request.path_params["filename"]
    if not _SAFE_NAME.match(name) or ".." in name:
        raise HTTPError(400, f"invalid packet filename {name!r}")
    key = f"{UPLOADS}{secrets.token_hex(8)}/{name}"
    return JSONResponse({"presignedUrl": _signed_url(request, key), "storagePath": key})


async def presign_download(request: Request) -> Response:
    name = request.path_params["filename"]
    if not name.startswith(UPLOADS) or ".." in name:
        raise HTTPError(404, f"no packet {name!r}")
    return JSONResponse({"presignedUrl": _signed_url(request, name)})


async def packet(request: Request) -> Response:
    """PUT (upload) or GET a packet through a signed URL."""
    engine = engine_of(request)
    key = request.path_params["path"]
    expires = request.query_params.get("expires", "")
    sig = request.query_params.get("signature", "")
    secret: str = request.app.state.secret_key
    if (
        not key.startswith(UPLOADS)
        or ".." in key
        or not expires.isdigit()
        or int(expires) < time.time()
        or not signature_ok(secret, f"{key}|{expires}", sig)
    ):
        raise HTTPError(403, "invalid or expired packet URL")
    blobs = engine.platform.blobs
    if request.method == "GET":
        data = await blobs.get(key)
        if data is None:
            raise HTTPError(404, f"no packet {key!r}")
        stored = await blobs.get(key + ".type")
        return Response(data, media_type=stored.decode() if stored else "application/json")
    data = await read_body(request, body_limit(engine))
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    await blobs.put(key, data, kind)
    await blobs.put(key + ".type", kind.encode(), "text/plain")
    return JSONResponse({"ok": True})
