"""Realtime: what the official client's `runs.subscribeToRun`, `runs.subscribeToRunsWithTag`
and `runs.subscribeToBatch` (and the React hooks on them) call. Electric-style shape
long-polling (`realtime/protocol.py`) on `GET /realtime/v1/runs/{id}`,
`GET /realtime/v1/runs?tags=a,b&createdAt=24h` and `GET /realtime/v1/batches/{id}`.

These routes are outside `/api/`, where the `Authenticate` middleware does not reach: each
authenticates here, explicitly, with the same `auth` calls (401 without a valid credential).
The secret key reads everything; a public access token reads a run if its scopes name the run,
one of its tags, its batch or its task (or `read:runs`), a tag feed if they name one of its
tags (or `read:tags`, `read:runs`), a batch if they name it (or `read:runs`); else 403.
Responses are CORS-open (the React hooks call them from browsers)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidDurationError, RunNotFoundError
from ..realtime.feeds import Feed
from ..realtime.protocol import HOLD, ShapeRequest, ShapeResponse, ShapeServer
from ..realtime.rows import INITIAL_OFFSET, skip_columns
from ..realtime.watcher import watcher_for
from ..shared.durations import parse_duration
from ..shared.options import MAX_TAG_LENGTH
from . import auth
from .errors import HTTPError, response_for
from .requests import engine_of

MAX_AGE = 86400.0  # a tag feed looks back at most one day (`createdAt`, default 24h)
MAX_TAGS = 10
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, OPTIONS",
    "access-control-allow-headers": "*",
    "access-control-expose-headers": "*",
    "access-control-max-age": "86400",
}
MAX_PARAM = 200
STOPPING = "the server is stopping: subscribe again"


def _server(request: Request) -> ShapeServer:
    """This app's shape server, on the process's watcher for its engine (made when first
    needed, on the serving event loop). `TRIGGER_DO_REALTIME_HOLD`: seconds a live request
    is held (default 20)."""
    state = request.app.state
    found: ShapeServer | None = getattr(state, "realtime", None)
    watcher = watcher_for(engine_of(request))
    if found is None or found.watcher is not watcher:
        raw = engine_of(request).platform.settings.get("TRIGGER_DO_REALTIME_HOLD")
        found = state.realtime = ShapeServer(watcher, hold=float(raw) if raw else HOLD)
    return found


def _shape_request(request: Request) -> ShapeRequest:
    q = request.query_params
    offset = q.get("offset") or INITIAL_OFFSET
    handle = q.get("handle") or q.get("shape_id") or None
    for name, value in (("offset", offset), ("handle", handle)):
        # (a handle goes back in a response header: no control characters, and no space a
        # header value cannot start or end with)
        if value is not None and (
            len(value) > MAX_PARAM
            or not value.isascii()
            or not value.isprintable()
            or value != value.strip()
        ):
            raise HTTPError(400, f"`{name}` is not one this server gave: {value[:50]!r}")
    return ShapeRequest(offset, handle, q.get("live") == "true", skip_columns(q.get("skipColumns")))


def _respond(shape: ShapeResponse) -> Response:
    return JSONResponse(shape.messages, headers=shape.headers())


def _cors(response: Response) -> Response:
    for name, value in CORS.items():
        response.headers.setdefault(name, value)
    return response


async def _guarded(request: Request, serve: Callable[[], Awaitable[Response]]) -> Response:
    """Run `serve`; errors as JSON, every response CORS-open. A client that leaves ends its
    request at once (a held one would otherwise wait out its hold): its disconnect is the
    one event the request waits for besides the answer, no polling."""
    answer = asyncio.ensure_future(serve())
    left = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({answer, left}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # the server is stopping: a held request answers 503 (the client subscribes again
        # once it is back) rather than the server's bare 500
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return _cors(JSONResponse({"error": STOPPING}, 503, {"retry-after": "1"}))
    finally:
        left.cancel()
        if not answer.done():
            answer.cancel()
        await asyncio.gather(answer, left, return_exceptions=True)
    if answer.cancelled():  # the client left: nobody reads this
        return Response(status_code=204)
    exc = answer.exception()
    # the app's handlers would answer without the CORS headers
    response = response_for(exc) if exc is not None else answer.result()
    return _cors(response)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def preflight(request: Request) -> Response:
    return Response(status_code=204, headers=CORS)


async def run(request: Request) -> Response:
    """`GET /realtime/v1/runs/{run_id}`: one run, until the client stops (it closes when the
    run completes)."""

    async def serve() -> Response:
        run_id = request.path_params["run_id"]
        auth.caller_of(request)  # 401 before anything is read
        row = await engine_of(request).index.get(run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        auth.require_run_read(request, row)
        return _respond(await _server(request).serve(Feed.run(run_id), _shape_request(request)))

    return await _guarded(request, serve)


def _tags(raw: str | None) -> list[str]:
    tags = [t for t in (raw or "").split(",")] if raw else []
    if len(tags) > MAX_TAGS:
        raise HTTPError(400, f"`tags`: at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not 0 < len(tag) <= MAX_TAG_LENGTH:
            raise HTTPError(400, f"`tags`: invalid tag {tag[: MAX_TAG_LENGTH + 1]!r}")
    return tags


def _created_from(request: Request, handle: str | None) -> float:
    """The tag feed's lower bound on `createdAt`: pinned in its handle once given (so that
    the window never drifts between polls), never more than a day back."""
    now = engine_of(request).now()
    floor = now - MAX_AGE
    if handle and handle.startswith("tags-"):
        try:
            return max(floor, int(handle.split("-")[1]) / 1000)
        except (IndexError, ValueError):
            pass
    raw = request.query_params.get("createdAt") or "24h"
    try:
        since = max(floor, now - parse_duration(raw))
    except InvalidDurationError as exc:
        raise HTTPError(400, f"`createdAt`: {exc}") from None
    return int(since * 1000) / 1000  # what the handle pins: the same feed on every poll


async def runs_with_tags(request: Request) -> Response:
    """`GET /realtime/v1/runs?tags=a,b&createdAt=24h`: the runs with any of the tags created in
    that window (newest 1,000), live; the client stops it."""

    async def serve() -> Response:
        auth.caller_of(request)
        tags = _tags(request.query_params.get("tags"))
        auth.require(request, "read", super_scopes=("read:runs", "read:tags"), tags=tags)
        shape = _shape_request(request)
        created_from = _created_from(request, None if shape.initial else shape.handle)
        feed = Feed.tags(tags, created_from)
        return _respond(await _server(request).serve(feed, shape))

    return await _guarded(request, serve)


async def batch(request: Request) -> Response:
    """`GET /realtime/v1/batches/{batch_id}`: the batch's runs, live; the client stops it."""

    async def serve() -> Response:
        batch_id = request.path_params["batch_id"]
        auth.caller_of(request)
        auth.require(request, "read", super_scopes=("read:runs",), batch=batch_id)
        if await engine_of(request).get_batch(batch_id) is None:
            raise HTTPError(404, f"no batch {batch_id[:100]!r}", code="batch_not_found")
        return _respond(await _server(request).serve(Feed.batch(batch_id), _shape_request(request)))

    return await _guarded(request, serve)
