"""`runs.list` filters (each applied or refused, never dropped), the per-project list path,
`null` payloads and outputs in `runs.retrieve`, and `idempotencyKeys.reset`, over a real
socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.http.conftest import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c


async def _trigger(http: httpx.AsyncClient, task: str, payload: Any, **options: Any) -> str:
    body = {"payload": payload, "options": options}
    r = await http.post(f"/api/v1/tasks/{task}/trigger", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def _wait(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        run: dict[str, Any] = (await http.get(f"/api/v3/runs/{run_id}")).json()
        if run["isCompleted"]:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def _all_pages(http: httpx.AsyncClient, path: str, **params: str) -> list[str]:
    """Every id, following `next`; then back again with `previous` to the first page."""
    ids: list[str] = []
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        extra = {"page[after]": cursor} if cursor else {}
        page = (await http.get(path, params={**params, **extra})).json()
        pages.append([r["id"] for r in page["data"]])
        ids += pages[-1]
        cursor = page["pagination"].get("next")
        if not cursor:
            break
    back: list[str] = []
    prev = page["pagination"].get("previous")
    while prev:
        page = (await http.get(path, params={**params, "page[before]": prev})).json()
        back = [r["id"] for r in page["data"]] + back
        prev = page["pagination"].get("previous")
    assert back + pages[-1] == ids or len(pages) == 1
    return ids


async def test_queue_filter_is_applied(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"q-{time.time_ns()}"
    made = []
    for i in range(9):
        task = "http-limited" if i % 3 == 0 else "add"
        made.append((task, await _trigger(http, task, {"a": i, "b": 0}, tags=[tag])))
    limited = [rid for task, rid in reversed(made) if task == "http-limited"]
    adds = [rid for task, rid in reversed(made) if task == "add"]
    params = {"filter[tag]": tag, "page[size]": "2"}
    got = await _all_pages(http, "/api/v1/runs", **params, **{"filter[queue]": "task/http-limited"})
    assert got == limited
    got = await _all_pages(http, "/api/v1/runs", **params, **{"filter[queue]": "task/add"})
    assert got == adds
    both = "task/add,task/http-limited"
    assert await _all_pages(http, "/api/v1/runs", **params, **{"filter[queue]": both}) == [
        rid for _, rid in reversed(made)
    ]
    # a scan cut short (a budget of 2 rows a request) leaves short pages, never a gap
    from trigger_do.api import run_list

    monkeypatch.setattr(run_list, "SCAN", 2)
    monkeypatch.setattr(run_list, "SCAN_BUDGET", 2)
    got = await _all_pages(http, "/api/v1/runs", **params, **{"filter[queue]": "task/http-limited"})
    assert got == limited


async def test_every_client_filter_is_applied_or_refused(http: httpx.AsyncClient) -> None:
    tag = f"f-{time.time_ns()}"
    rid = await _trigger(http, "add", {"a": 1, "b": 1}, tags=[tag])
    for name, value in [
        ("version", "20250101.1"),
        ("machine", "small-1x"),
        ("region", "eu"),
        ("nonsense", "x"),
        ("status", "SLEEPING"),
        ("isTest", "maybe"),
        ("createdAt][period", "a while"),
    ]:
        r = await http.get("/api/v1/runs", params={f"filter[{name}]": value})
        assert r.status_code == 400, (name, r.text)
        assert f"filter[{name}]" in r.json()["error"] or name in r.json()["error"], r.text

    async def ids(path: str = "/api/v1/runs", **filters: str) -> list[str]:
        params = {"filter[tag]": tag, **{f"filter[{k}]": v for k, v in filters.items()}}
        r = await http.get(path, params=params)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["data"]]

    assert await ids() == [rid]
    assert await ids(isTest="false") == [rid] and await ids(isTest="true") == []
    assert await ids(status="PENDING_VERSION") == []  # a status trigger.do never uses
    assert await ids(taskIdentifier="add", version="") == [rid]  # empty: not a filter
    assert await ids(bulkAction="bulk_none") == []
    project = "/api/v1/projects/proj_anything/runs"
    assert await ids(project) == [rid]
    assert await ids(project, env="dev") == [rid] and await ids(project, env="prod") == []
    now_ms = int(time.time() * 1000)
    assert await ids(**{"createdAt][from": str(now_ms + 60_000)}) == []
    assert await ids(**{"createdAt][to": str(now_ms + 60_000), "createdAt][period": "1h"}) == [rid]
    day_ago = str(now_ms - 86_400_000)  # with a period too, the later bound counts
    assert await ids(**{"createdAt][from": day_ago, "createdAt][period": "1h"}) == [rid]
    assert await ids(**{"createdAt][from": day_ago, "createdAt][period": "1ms"}) == []


async def test_null_payload_and_output_are_sent_as_null(http: httpx.AsyncClient) -> None:
    done = await _wait(http, await _trigger(http, "http-echo", None))
    assert done["status"] == "COMPLETED"
    assert "payload" in done and done["payload"] is None
    assert "output" in done and done["output"] is None
    noop = await _wait(http, await _trigger(http, "noop", {"x": 1}))
    assert noop["payload"] == {"x": 1} and "output" in noop and noop["output"] is None
    waiting = await http.get(f"/api/v3/runs/{await _trigger(http, 'noop', None, delay='1h')}")
    assert waiting.json()["payload"] is None and "output" not in waiting.json()  # none yet
    await http.post(f"/api/v2/runs/{waiting.json()['id']}/cancel")


async def test_idempotency_key_reset(http: httpx.AsyncClient) -> None:
    key = f"reset/{time.time_ns()}"  # a slash, URL-encoded as the client does
    first = await _trigger(http, "add", {"a": 1, "b": 1}, idempotencyKey=key)
    assert await _trigger(http, "add", {"a": 1, "b": 1}, idempotencyKey=key) == first
    path = f"/api/v1/idempotencyKeys/{quote(key, safe='')}/reset"
    r = await http.post(path, json={"taskIdentifier": "http-echo"})  # another task's key
    assert r.status_code == 404 and key in r.json()["error"]
    assert await _trigger(http, "add", {"a": 1, "b": 1}, idempotencyKey=key) == first
    r = await http.post(path, json={"taskIdentifier": "add"})
    assert r.status_code == 200 and r.json() == {"id": key}
    second = await _trigger(http, "add", {"a": 1, "b": 1}, idempotencyKey=key)
    assert second != first
    assert await _trigger(http, "add", {"a": 1, "b": 1}, idempotencyKey=key) == second
    assert "idempotencyKey" not in (await http.get(f"/api/v3/runs/{first}")).json()
    r = await http.post("/api/v1/idempotencyKeys/never-used/reset", json={"taskIdentifier": "add"})
    assert r.status_code == 404
    r = await http.post(path, json={})
    assert r.status_code == 422 and "taskIdentifier" in r.json()["error"]
