"""Queue endpoints (Trigger.dev's `queues.list/retrieve/pause/resume`, concurrency override
and reset). A task's own queue is named `task/<id>` (id `queue_task/<id>`); a shared queue
keeps its name.

The official client escapes `/` in a queue's id or name as `%2F` and then URL-encodes the
whole value, so `queue_task/add` arrives as `queue_task%252Fadd`: the server (which has
decoded the path once) decodes the name once more, as Trigger.dev does."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import HTTPError
from .fields import PageNumber, PageSize
from .jsonbody import read_json_object
from .requests import OverrideBody, QueueBody, engine_of, query_value, validate

ID_PREFIX = "queue_"


def queue_name(request: Request, name: str | None = None, kind: str | None = None) -> str:
    """Our queue name for the client's `(type, name)` or queue id."""
    name = unquote(name if name is not None else request.path_params["name"])
    kind = kind or request.query_params.get("type") or "id"
    if kind == "task":
        return f"task/{name}"
    if kind == "custom":
        return name
    if kind == "id":
        return name.removeprefix(ID_PREFIX)
    raise HTTPError(400, f"queue type must be task, custom or id, not {kind!r}")


def item(q: dict[str, Any]) -> dict[str, Any]:
    """A QueueItem as the official client validates it (V1: own limit and override)."""
    task = q["name"].startswith("task/")
    base = q["concurrency_limit"] if q["limit_override"] is None else None
    return {
        "id": ID_PREFIX + q["name"],
        "name": q["name"].removeprefix("task/") if task else q["name"],
        "type": "task" if task else "custom",
        "running": q["running"],
        "queued": q["queued"],
        "paused": q["paused"],
        "concurrencyLimit": q["concurrency_limit"],
        "version": "V1",
        "concurrency": {
            "current": q["concurrency_limit"],
            "base": base,
            "override": q["limit_override"],
            "overriddenAt": None,
            "overriddenBy": None,
        },
    }


async def list_queues(request: Request) -> Response:
    query = request.query_params
    page: int = query_value(PageNumber, "page", query.get("page"), 1)
    per_page: int = query_value(PageSize, "perPage", query.get("perPage"), 25)
    queues = await engine_of(request).list_queues()
    start = (page - 1) * per_page
    return JSONResponse(
        {
            "data": [item(q) for q in queues[start : start + per_page]],
            "pagination": {
                "currentPage": page,
                "totalPages": max(1, math.ceil(len(queues) / per_page)),
                "count": len(queues),
            },
        }
    )


async def retrieve(request: Request) -> Response:
    return JSONResponse(item(await engine_of(request).get_queue(queue_name(request))))


async def pause(request: Request) -> Response:
    body = validate(QueueBody, await read_json_object(request, 64 * 1024))
    name = queue_name(request, kind=body.type)
    engine = engine_of(request)
    if body.action == "pause":
        q = await engine.pause_queue(name)
    else:
        q = await engine.resume_queue(name)
    return JSONResponse(item(q))


async def override(request: Request) -> Response:
    body = validate(OverrideBody, await read_json_object(request, 64 * 1024, required=True))
    name = queue_name(request, kind=body.type)
    limit = body.concurrencyLimit
    return JSONResponse(item(await engine_of(request).set_queue_limit(name, limit)))


async def reset(request: Request) -> Response:
    body = validate(QueueBody, await read_json_object(request, 64 * 1024))
    name = queue_name(request, kind=body.type)
    return JSONResponse(item(await engine_of(request).set_queue_limit(name, None)))
