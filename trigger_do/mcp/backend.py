"""Where the MCP tools send their calls: trigger.do's HTTP API, over a socket (`--target`)
or in process (the embedded database's app, or the app `/mcp` is served by), so every tool
sees the API's own shapes and error messages."""

from __future__ import annotations

from typing import Any

import httpx
from mcp.server.mcpserver.exceptions import ToolError

from ..errors import TriggerDoError

IN_PROCESS = "http://trigger.do.internal"


class McpToolError(TriggerDoError, ToolError):
    """A tool call that failed as the API said (the agent reads the message)."""


class Api:
    """Calls on trigger.do's HTTP API with the secret key."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def over_http(cls, url: str, key: str) -> Api:
        """A running server at `url`."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return cls(httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=30.0))

    @classmethod
    def in_process(cls, app: Any, key: str) -> Api:
        """The ASGI `app` itself, called in this process (no socket)."""
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {key}"}
        return cls(httpx.AsyncClient(transport=transport, base_url=IN_PROCESS, headers=headers))

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON answer; `McpToolError` with the API's message on a 4xx/5xx."""
        try:
            resp = await self.client.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise McpToolError(
                f"cannot reach the trigger.do server at {self.client.base_url}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else None
            raise McpToolError(str(message or f"HTTP {resp.status_code}: {resp.text[:300]}"))
        return body

    async def aclose(self) -> None:
        await self.client.aclose()
