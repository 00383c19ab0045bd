"""MCP over streamable HTTP at `/mcp` on the API's own app (stateless JSON responses: each
POST is one exchange). The tools call that same app in process with its secret key; the key
check of the `/mcp` request itself is the app's (`auth.Authenticate`)."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Receive, Scope, Send

from .backend import Api
from .server import build_server


class McpHttp:
    """The session manager of one app, started on the first request (the dev server runs
    uvicorn without lifespan events) and kept for the app's life."""

    def __init__(self, app: Any, key: str, *, readonly: bool = False) -> None:
        self.api = Api.in_process(app, key)
        self.server = build_server(self.api, readonly=readonly)
        # the secret key guards the route: a page on another origin cannot send it, so the
        # SDK's Host/Origin checks (DNS rebinding) would add nothing but refuse proxies
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.manager = StreamableHTTPSessionManager(
            app=self.server, stateless=True, json_response=True, security_settings=security
        )
        self._running: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _hold(self) -> None:
        async with self.manager.run():
            self._ready.set()
            await asyncio.Event().wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._running is None:
            self._running = asyncio.ensure_future(self._hold())
        await self._ready.wait()
        await self.manager.handle_request(scope, receive, send)
