"""Live run logs: JSON (the records so far), Server-Sent Events and a WebSocket. The
streams send what was logged so far, follow the run live, and close when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..engine import Engine
from ..errors import RunNotFoundError
from ..shared.serialization import dumps
from ..shared.states import FINAL_STATES, RunState
from .errors import HTTPError
from .fields import MAX_LOG_LIMIT, LogLimit, LogSeq
from .requests import query_value
from .shapes import iso

POLL_START, POLL_MAX = 0.02, 0.25


def record(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": rec["seq"],
        "level": rec["level"],
        "message": rec["message"],
        "attempt": rec["attempt"],
        "at": iso(rec["at"]),
        "extras": rec.get("extras") or {},
    }


async def _state(engine: Engine, run_id: str) -> str:
    found = (await engine.get_states([run_id])).get(run_id)
    if found is None:
        raise RunNotFoundError(run_id)
    return str(found[0])


def _after(raw: str | None, name: str = "after") -> int:
    """A log sequence number (`after`, `Last-Event-ID`): 0 when absent; else 400. (Also the
    Cloudflare live logs' check: the same message there.)"""
    try:
        after: int = query_value(LogSeq, name, raw, 0)
    except HTTPError as exc:
        why = exc.message.removeprefix(f"{name}: ")
        raise HTTPError(400, f"`{name}` must be a log sequence number: {why}") from None
    return after


async def follow(engine: Engine, run_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
    """Records after `after`, then new ones as they are written, until the run is final;
    then a last `{"event": "end", "status": ...}`. Polls the database with backoff."""
    delay = POLL_START
    while True:
        state = await _state(engine, run_id)  # read before the logs: none can be missed
        batch = await engine.logs(run_id, after)
        for rec in batch:
            after = rec["seq"]
            yield record(rec)
        if batch:
            delay = POLL_START
            continue
        if state in FINAL_STATES:
            yield {"event": "end", "status": RunState(state).api_status}
            return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)


async def logs(request: Request) -> Response:
    """`GET /api/v1/runs/{id}/logs`: JSON `{data, isCompleted}`, or SSE on
    `Accept: text/event-stream` (resumable with `Last-Event-ID`)."""
    engine: Engine = request.app.state.engine
    run_id = request.path_params["run_id"]
    query = request.query_params
    if query.get("after"):
        after = _after(query.get("after"))
    else:
        after = _after(request.headers.get("last-event-id"), "Last-Event-ID")
    limit: int = query_value(LogLimit, "limit", query.get("limit"), MAX_LOG_LIMIT)
    state = await _state(engine, run_id)  # 404 before a stream starts
    if "text/event-stream" not in request.headers.get("accept", ""):
        batch = await engine.logs(run_id, after, limit)
        return JSONResponse(
            {"data": [record(r) for r in batch], "isCompleted": state in FINAL_STATES}
        )

    async def events() -> AsyncIterator[str]:
        yield ": trigger.do logs\n\n"
        async for item in follow(engine, run_id, after):
            if item.get("event") == "end":
                yield f"event: end\ndata: {dumps(item)}\n\n"
            else:
                yield f"id: {item['seq']}\nevent: log\ndata: {dumps(item)}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def logs_ws(websocket: WebSocket) -> None:
    """`/api/v1/runs/{id}/logs/ws`: each record as a JSON message (`"type": "log"`), then
    `{"type": "end", "status": ...}` and a normal close."""
    engine: Engine = websocket.app.state.engine
    run_id = websocket.path_params["run_id"]
    try:
        after = _after(websocket.query_params.get("after"))
        await _state(engine, run_id)
    except (RunNotFoundError, HTTPError) as exc:
        await websocket.accept()
        await websocket.send_json({"type": "error", "error": str(exc)})
        await websocket.close(code=4404 if isinstance(exc, RunNotFoundError) else 4400)
        return
    await websocket.accept()

    async def watch_disconnect() -> None:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return

    async def send_all() -> None:
        async for item in follow(engine, run_id, after):
            if item.get("event") == "end":
                await websocket.send_text(dumps({"type": "end", "status": item["status"]}))
            else:
                await websocket.send_text(dumps({"type": "log", **item}))
        await websocket.close(code=1000)

    # whichever ends first ends both: a client that leaves stops the follower at once, even
    # while the run logs nothing (a delayed run would otherwise be polled until it ends)
    sender = asyncio.ensure_future(send_all())
    watcher = asyncio.ensure_future(watch_disconnect())
    try:
        done, _ = await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        await asyncio.gather(sender, watcher, return_exceptions=True)
    failure = None if sender.cancelled() else sender.exception()
    client_left = watcher in done or isinstance(failure, WebSocketDisconnect)
    if failure is not None and not client_left:
        raise failure
