"""Queue controls over HTTP, in the shapes Trigger.dev's `queues` client validates."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

from .conftest import Server


def _get(server: Server, path: str, **params: Any) -> Any:
    r = httpx.get(server.url + path, headers=server.headers, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _post(server: Server, path: str, body: dict[str, Any], status: int = 200) -> Any:
    r = httpx.post(server.url + path, headers=server.headers, json=body, timeout=30)
    assert r.status_code == status, r.text
    return r.json()


def _state(server: Server, run_id: str) -> str:
    return str(_get(server, f"/api/v3/runs/{run_id}")["status"])


def test_list_pause_resume_override_reset(server: Server) -> None:
    page = _get(server, "/api/v1/queues", perPage=100)
    assert page["pagination"]["count"] >= 1 and page["pagination"]["currentPage"] == 1
    limited = next(q for q in page["data"] if q["name"] == "http-limited")
    assert limited["type"] == "task" and limited["id"] == "queue_task/http-limited"
    assert limited["concurrencyLimit"] == 2 and limited["paused"] is False
    for key in ("running", "queued", "version", "concurrency"):
        assert key in limited

    paused = _post(server, "/api/v1/queues/http-limited/pause", {"type": "task", "action": "pause"})
    assert paused["paused"] is True
    run = _post(server, "/api/v1/tasks/http-limited/trigger", {"payload": {}})["id"]
    time.sleep(1.0)
    assert _state(server, run) == "QUEUED"  # a paused queue starts nothing
    queue = _get(server, "/api/v1/queues/queue_task%2Fhttp-limited", type="id")
    assert queue["queued"] + queue["running"] >= 0 and queue["paused"] is True

    resumed = _post(server, "/api/v1/queues/http-limited/pause",
                    {"type": "task", "action": "resume"})
    assert resumed["paused"] is False
    deadline = time.monotonic() + 30
    while _state(server, run) != "COMPLETED":
        assert time.monotonic() < deadline, "the run did not start after resume"
        time.sleep(0.05)

    over = _post(server, "/api/v1/queues/http-limited/concurrency/override",
                 {"type": "task", "concurrencyLimit": 5})
    assert over["concurrencyLimit"] == 5 and over["concurrency"]["override"] == 5
    reset = _post(server, "/api/v1/queues/http-limited/concurrency/reset", {"type": "task"})
    assert reset["concurrencyLimit"] == 2 and reset["concurrency"]["override"] is None


def test_bad_queue_requests(server: Server) -> None:
    _post(server, "/api/v1/queues/http-limited/pause", {"type": "task", "action": "nap"}, 422)
    _post(server, "/api/v1/queues/http-limited/concurrency/override",
          {"type": "task", "concurrencyLimit": 0}, 422)
    r = httpx.get(server.url + "/api/v1/queues/x", params={"type": "weird"},
                  headers=server.headers)
    assert r.status_code == 400
    r = httpx.get(server.url + "/api/v1/queues")
    assert r.status_code == 401
    r = httpx.get(server.url + "/api/v1/queues/nope", params={"type": "task"},
                  headers=server.headers)
    assert r.status_code == 404 and "nope" in r.json()["error"]
    _post(server, "/api/v1/queues/nope/pause", {"type": "task", "action": "pause"}, 404)


def client_path(value: str) -> str:
    """A queue id or name as the official client puts it in a path: `/` escaped as `%2F`,
    then the whole URL-encoded (`encodeURIComponent`), so `/` arrives as `%252F`."""
    return quote(value.replace("/", "%2F"), safe="")


def test_every_listed_queue_id_works_in_every_call(server: Server) -> None:
    listed = _get(server, "/api/v1/queues", perPage=100)["data"]
    assert any(q["id"] == "queue_task/http-limited" for q in listed)
    for q in listed:
        got = _get(server, f"/api/v1/queues/{client_path(q['id'])}", type="id")
        assert got["id"] == q["id"] and got["name"] == q["name"]
    for ref, kind in [("queue_task/http-limited", "id"), ("http-limited", "task")]:
        path = f"/api/v1/queues/{client_path(ref)}"
        assert _get(server, path, type=kind)["id"] == "queue_task/http-limited"
        assert _post(server, f"{path}/pause", {"type": kind, "action": "pause"})["paused"]
        assert not _post(server, f"{path}/pause", {"type": kind, "action": "resume"})["paused"]
        over = _post(server, f"{path}/concurrency/override", {"type": kind, "concurrencyLimit": 4})
        assert over["concurrencyLimit"] == 4
        reset = _post(server, f"{path}/concurrency/reset", {"type": kind})
        assert reset["concurrencyLimit"] == 2 and reset["concurrency"]["override"] is None
    # a custom queue's name may hold a slash too
    r = httpx.get(
        server.url + f"/api/v1/queues/{client_path('no/such')}",
        params={"type": "custom"},
        headers=server.headers,
    )
    assert r.status_code == 404 and "'no/such'" in r.json()["error"]
