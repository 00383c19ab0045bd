"""MCP over streamable HTTP at `/mcp` on the API's server, behind the secret key."""

from __future__ import annotations

import time
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from trigger_do.api.auth import sign

from .test_mcp_stdio import READS, WRITES, call, error, said

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def test_mcp_needs_the_secret_key(http_server: Any) -> None:
    url = f"{http_server.url}/mcp"
    missing = httpx.post(url, json=INIT, headers=ACCEPT)
    assert missing.status_code == 401
    assert missing.json() == {"error": "missing secret key: send `Authorization: Bearer <key>`"}
    wrong = httpx.post(url, json=INIT, headers={**ACCEPT, "authorization": "Bearer tr_dev_x"})
    assert wrong.status_code == 401
    # a public access token (even one allowed everything on runs) is not the key
    token = sign(http_server.key, {"scopes": ["read:runs", "admin"]}, time.time() + 60)
    refused = httpx.post(url, json=INIT, headers={**ACCEPT, "authorization": f"Bearer {token}"})
    assert refused.status_code == 403
    ok = httpx.post(
        url, json=INIT, headers={**ACCEPT, "authorization": f"Bearer {http_server.key}"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "trigger.do"


async def test_the_tools_over_http(http_server: Any) -> None:
    headers = {"authorization": f"Bearer {http_server.key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{http_server.url}/mcp", http_client=http)
        async with Client(transport) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == READS | WRITES
            done = await call(
                client, "trigger_task", {"taskId": "mcp-add", "payload": {"a": 20, "b": 22}}
            )
            run_id = done.structured_content["id"]  # type: ignore[index]
            waited = await call(client, "wait_for_run_to_complete", {"runId": run_id})
            assert 'output: {"sum": 42}' in said(waited)
            assert await error(client, "get_run_details", {"runId": "run_nope"}) == (
                "no run with id 'run_nope'"
            )
