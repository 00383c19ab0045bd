"""MCP over streamable HTTP at `/mcp` on the API's server, behind the secret key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.http.conftest import free_port
from trigger_do.api.auth import sign

from .test_mcp_stdio import READS, WRITES, call, error, said

ROOT = Path(__file__).resolve().parents[2]
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


def test_serve_flags_mcp_readonly_and_metrics_public(tmp_path: Path) -> None:
    """`trigger-do serve --mcp-readonly --metrics-public`, as a user starts it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "trigger_do.cli", "serve", "--tasks", "tests.mcp.mcp_tasks"]
    args = ["--port", str(port), "--db", str(tmp_path / "s.db"), "--workers", "1"]
    proc = subprocess.Popen(
        [*cmd, *args, "--mcp-readonly", "--metrics-public"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        key = ""
        for line in proc.stdout:
            if "secret key: " in line:
                key = line.split("secret key: ")[1].rstrip(")\n")
                break
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                metrics = httpx.get(f"{url}/metrics")  # no key: --metrics-public
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert metrics.status_code == 200 and "trigger_do_queue_depth" in metrics.text
        listed = httpx.post(
            f"{url}/mcp",
            json={**INIT, "method": "tools/list", "params": {}},
            headers={**ACCEPT, "authorization": f"Bearer {key}"},
        )
        assert listed.status_code == 200, listed.text
        assert {t["name"] for t in listed.json()["result"]["tools"]} == READS
        assert httpx.post(f"{url}/mcp", json=INIT, headers=ACCEPT).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=60)
