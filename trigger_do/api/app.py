"""The ASGI app: Trigger.dev's REST paths under `/api/...`, live logs, signed packet URLs
and `GET /healthz`. Every `/api/...` call needs `Authorization: Bearer <secret key>` (a
WebSocket may send `?token=<key>` instead, as a browser cannot set its headers)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engine import Engine
from ..errors import TriggerDoError
from ..shared.serialization import dumps
from . import logs, queues, runs, triggers
from .errors import HTTPError, handle
from .keys import key_matches

ROUTES = [
    Route("/healthz", lambda request: JSONResponse({"ok": True}), methods=["GET"]),
    Route("/api/v1/tasks/{task_id:path}/trigger", triggers.trigger, methods=["POST"]),
    Route("/api/v2/tasks/batch", triggers.batch_v2, methods=["POST"]),
    Route("/api/v3/batches", triggers.create_batch, methods=["POST"]),
    Route("/api/v3/batches/{batch_id}/items", triggers.batch_items, methods=["POST"]),
    Route("/api/v2/batches/{batch_id}", triggers.retrieve_batch, methods=["GET"]),
    Route("/api/v2/packets/{filename:path}", triggers.presign_upload, methods=["PUT"]),
    Route("/api/v1/packets/{filename:path}", triggers.presign_download, methods=["GET"]),
    Route("/packets/{path:path}", triggers.packet, methods=["GET", "PUT"], name="packet"),
    Route("/api/v1/runs", runs.list_runs, methods=["GET"]),
    Route("/api/v1/runs/_states", runs.bulk_states, methods=["POST"]),
    Route("/api/v1/runs/_retrieve", runs.bulk_retrieve, methods=["POST"]),
    Route("/api/v3/runs/{run_id}", runs.retrieve, methods=["GET"]),
    Route("/api/v2/runs/{run_id}/cancel", runs.cancel, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/replay", runs.replay, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/reschedule", runs.reschedule, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/metadata", runs.metadata, methods=["GET", "PUT"]),
    Route("/api/v1/runs/{run_id}/tags", runs.tags, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/logs", logs.logs, methods=["GET"]),
    WebSocketRoute("/api/v1/runs/{run_id}/logs/ws", logs.logs_ws),
    Route("/api/v1/queues", queues.list_queues, methods=["GET"]),
    Route("/api/v1/queues/{name:path}/pause", queues.pause, methods=["POST"]),
    Route("/api/v1/queues/{name:path}/concurrency/override", queues.override, methods=["POST"]),
    Route("/api/v1/queues/{name:path}/concurrency/reset", queues.reset, methods=["POST"]),
    Route("/api/v1/queues/{name:path}", queues.retrieve, methods=["GET"]),
]


def route_path(scope: Scope) -> str:
    """The path below where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class RequireKey:
    """Refuses `/api/...` requests without the secret key: 401 `{"error": ...}`."""

    def __init__(self, app: ASGIApp, secret_key: str) -> None:
        self.app = app
        self.secret_key = secret_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not route_path(scope).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        given = bearer(scope.get("headers", []))
        if given is None and scope["type"] == "websocket":
            given = QueryParams(scope.get("query_string", b"")).get("token")
        if key_matches(given, self.secret_key):
            await self.app(scope, receive, send)
            return
        message = (
            "missing secret key: send `Authorization: Bearer <key>`"
            if given is None
            else "invalid secret key"
        )
        body = dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"x-should-retry", b"false")]
        if scope["type"] == "http":
            await JSONResponse({"error": message}, 401, {"x-should-retry": "false"})(
                scope, receive, send
            )
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": message})


def create_app(engine: Engine, secret_key: str) -> Starlette:
    """The HTTP API on `engine`, guarded by `secret_key`."""
    if not secret_key:
        raise ValueError("the HTTP API needs a secret key")
    handlers: dict[Any, Any] = {
        HTTPError: handle,
        TriggerDoError: handle,
        HTTPException: handle,
        Exception: handle,
    }
    app = Starlette(routes=list(ROUTES), exception_handlers=handlers)
    app.state.engine = engine
    app.state.secret_key = secret_key
    app.add_middleware(RequireKey, secret_key=secret_key)
    return app
