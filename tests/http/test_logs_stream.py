"""Live logs over Server-Sent Events and WebSocket: what was logged so far, then live
records, then an end message when the run finishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

import trigger_do
from tests.http.conftest import Server

pytestmark = pytest.mark.timeout(120)
TICKS = {"count": 6, "interval": 0.15}


async def _trigger(server: Server, payload: dict[str, Any]) -> str:
    return await _trigger_task(server, "http-ticks", payload)


async def _trigger_task(server: Server, task_id: str, payload: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
        r = await http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": payload})
        assert r.status_code == 200, r.text
        run_id: str = r.json()["id"]
        return run_id


async def _sse_events(server: Server, run_id: str, **headers: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    hdrs = {**server.headers, "Accept": "text/event-stream", **headers}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        http.stream("GET", f"/api/v1/runs/{run_id}/logs", headers=hdrs) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((str(event), json.loads(line[6:])))
    return events


async def test_sse_follows_a_live_run_to_its_end(server: Server) -> None:
    run_id = await _trigger(server, TICKS)
    events = await _sse_events(server, run_id)
    logs = [d for e, d in events if e == "log"]
    assert [d["message"] for d in logs] == [f"tick {i}" for i in range(6)]
    assert [d["seq"] for d in logs] == list(range(1, 7))
    assert logs[2]["extras"] == {"i": 2} and logs[0]["level"] == "info"
    assert events[-1] == ("end", {"event": "end", "status": "COMPLETED"})
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
        run = (await http.get(f"/api/v3/runs/{run_id}")).json()
    assert run["status"] == "COMPLETED"


async def test_sse_resumes_after_last_event_id(server: Server) -> None:
    run_id = await _trigger(server, {"count": 3, "interval": 0.01})
    events = await _sse_events(server, run_id, **{"Last-Event-ID": "2"})
    assert [d["message"] for e, d in events if e == "log"] == ["tick 2"]


async def test_json_logs(server: Server) -> None:
    run_id = await _trigger(server, {"count": 2, "interval": 0.01})
    trigger_do.configure(api_url=server.url, secret_key=server.key)
    try:
        await trigger_do.tasks.handle(run_id).result(timeout=30)
    finally:
        trigger_do.configure()
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as http:
        body = (await http.get(f"/api/v1/runs/{run_id}/logs")).json()
        assert body["isCompleted"] is True
        assert [r["message"] for r in body["data"]] == ["tick 0", "tick 1"]
        later = (await http.get(f"/api/v1/runs/{run_id}/logs", params={"after": 1})).json()
        assert [r["message"] for r in later["data"]] == ["tick 1"]
        missing = await http.get("/api/v1/runs/run_nope/logs")
        assert missing.status_code == 404 and "run_nope" in missing.json()["error"]


async def _ws_messages(url: str, **kwargs: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with connect(url, open_timeout=30, **kwargs) as ws:
        async for raw in ws:
            out.append(json.loads(raw))
    return out


async def test_websocket_follows_a_live_run_with_token_query(server: Server) -> None:
    run_id = await _trigger(server, TICKS)
    ws_url = server.url.replace("http://", "ws://") + f"/api/v1/runs/{run_id}/logs/ws"
    messages = await _ws_messages(f"{ws_url}?token={server.key}")
    logs = [m for m in messages if m["type"] == "log"]
    assert [m["message"] for m in logs] == [f"tick {i}" for i in range(6)]
    assert messages[-1] == {"type": "end", "status": "COMPLETED"}


async def test_websocket_with_bearer_header(server: Server) -> None:
    run_id = await _trigger(server, {"count": 2, "interval": 0.01})
    ws_url = server.url.replace("http://", "ws://") + f"/api/v1/runs/{run_id}/logs/ws"
    messages = await _ws_messages(ws_url, additional_headers=server.headers)
    assert [m.get("message") for m in messages] == ["tick 0", "tick 1", None]


async def test_websocket_refuses_a_wrong_token(server: Server) -> None:
    run_id = await _trigger(server, {"count": 1, "interval": 0.01})
    ws_url = server.url.replace("http://", "ws://") + f"/api/v1/runs/{run_id}/logs/ws"
    with pytest.raises(InvalidStatus) as info:
        await _ws_messages(f"{ws_url}?token=tr_dev_wrong")
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        await _ws_messages(ws_url)
    assert info.value.response.status_code == 401


async def test_websocket_unknown_run(server: Server) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/api/v1/runs/run_nope/logs/ws"
    async with connect(f"{ws_url}?token={server.key}", open_timeout=30) as ws:
        first = json.loads(await ws.recv())
        assert first["type"] == "error" and "run_nope" in first["error"]
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404


async def test_sse_is_live(server: Server, tmp_path: Path) -> None:
    """The run cannot finish before this test has read its first record from the stream."""
    gate = tmp_path / "open"
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as http:
        r = await http.post(
            "/api/v1/tasks/http-gate/trigger", json={"payload": {"path": str(gate)}}
        )
        run_id = r.json()["id"]
        seen: list[str] = []
        hdrs = {"Accept": "text/event-stream"}
        async with http.stream("GET", f"/api/v1/runs/{run_id}/logs", headers=hdrs) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    item = json.loads(line[6:])
                    seen.append(item.get("message") or item["status"])
                    if seen == ["waiting"]:
                        run = (await http.get(f"/api/v3/runs/{run_id}")).json()
                        assert run["status"] == "EXECUTING"
                        gate.touch()
    assert seen == ["waiting", "released", "COMPLETED"]


async def test_websocket_is_live(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "open"
    run_id = await _trigger_task(server, "http-gate", {"path": str(gate)})
    ws_url = server.url.replace("http://", "ws://") + f"/api/v1/runs/{run_id}/logs/ws"
    seen: list[str] = []
    async with connect(f"{ws_url}?token={server.key}", open_timeout=30) as ws:
        async for raw in ws:
            item = json.loads(raw)
            seen.append(item.get("message") or item["status"])
            if seen == ["waiting"]:
                gate.touch()
    assert seen == ["waiting", "released", "COMPLETED"]
