"""Live logs let go of a client that left: a WebSocket or SSE follower of a run that logs
nothing (a delayed run) ends when its client disconnects, instead of polling the database
until the run ends (an hour, for a run delayed by one)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.http.conftest import QuietServer

pytestmark = pytest.mark.timeout(60)


def _delayed(quiet: QuietServer) -> str:
    with httpx.Client(base_url=quiet.url, headers=quiet.headers) as api:
        body = {"payload": {"a": 1, "b": 2}, "options": {"delay": "1h"}}
        run: str = api.post("/api/v1/tasks/add/trigger", json=body).json()["id"]
        return run


async def _settled(quiet: QuietServer, target: int) -> int:
    for _ in range(100):
        now = quiet.tasks()
        if now <= target:
            return now
        await asyncio.sleep(0.05)
    return quiet.tasks()


async def test_a_websocket_follower_ends_when_its_client_leaves(quiet_server: QuietServer) -> None:
    run = _delayed(quiet_server)
    idle = await _settled(quiet_server, 0)
    url = quiet_server.url.replace("http", "ws") + f"/api/v1/runs/{run}/logs/ws"
    for _ in range(3):
        async with connect(f"{url}?token={quiet_server.key}"):
            await asyncio.sleep(0.2)  # following: nothing logged yet
    assert await _settled(quiet_server, idle) <= idle


async def test_an_sse_follower_ends_when_its_client_leaves(quiet_server: QuietServer) -> None:
    run = _delayed(quiet_server)
    idle = await _settled(quiet_server, 0)
    headers = {**quiet_server.headers, "accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=quiet_server.url, headers=headers) as c:
        for _ in range(3):
            async with c.stream("GET", f"/api/v1/runs/{run}/logs") as r:
                assert r.status_code == 200
                await asyncio.sleep(0.2)
    assert await _settled(quiet_server, idle) <= idle
