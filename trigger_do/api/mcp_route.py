"""`/mcp`: the MCP tools over streamable HTTP (`trigger_do.mcp.http`), behind the secret key
like `/api/...` (`auth.GUARDED_PATHS`). Needs the `mcp` extra; without it, 501 saying so."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from .errors import error_response


class McpEndpoint:
    """An ASGI endpoint; the MCP server is made for the app on its first request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["app"]
        handler: Any = getattr(app.state, "mcp_handler", None)
        if handler is None:
            try:
                from ..mcp.http import McpHttp
            except ImportError:
                why = "MCP needs the mcp extra on the server: pip install 'trigger-do[mcp]'"
                await error_response(501, why)(scope, receive, send)
                return
            readonly = bool(getattr(app.state, "mcp_readonly", False))
            handler = app.state.mcp_handler = McpHttp(app, app.state.secret_key, readonly=readonly)
        await handler(scope, receive, send)
