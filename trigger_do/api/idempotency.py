"""`idempotencyKeys.reset`: forget a task's idempotency key, so that the next trigger with
it makes a new run. The key is the one the trigger sent (the official client sends the
SHA-256 of the caller's key, and reset sends the same hash)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import HTTPError
from .jsonbody import read_json_object
from .requests import ResetKeyBody, engine_of, validate


async def reset(request: Request) -> Response:
    key = request.path_params["key"]
    body = validate(ResetKeyBody, await read_json_object(request, 16 * 1024, required=True))
    task = body.taskIdentifier
    if await engine_of(request).reset_idempotency_key(task, key) is None:
        raise HTTPError(
            404,
            f"no run of task {task!r} holds the idempotency key {key!r}",
            code="idempotency_key_not_found",
        )
    return JSONResponse({"id": key})
