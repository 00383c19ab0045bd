"""The Worker's `fetch`: the HTTP API (trigger_do.api.app) through the runtime's ASGI
bridge (faked: cf_fakes.asgi_fetch), over the same bindings as the consumer."""

from __future__ import annotations

import json

from cf_fakes import FakeRequest, make_cloud

import examples.tasks  # noqa: F401  (registers the example tasks)

AUTH = {"authorization": "Bearer tr_test_secret", "content-type": "application/json"}
BASE = "https://trigger-do.example.workers.dev"



async def test_trigger_over_http_then_consume_then_retrieve() -> None:
    cloud = make_cloud(shards=16)
    body = json.dumps({"payload": {"a": 20, "b": 22}}).encode()
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/api/v1/tasks/add/trigger", AUTH, body)
    )
    assert res.status == 200, res.body
    run_id = res.json()["id"]
    assert len(cloud.env.RUN_QUEUE.messages) == 1

    await cloud.drain()
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v3/runs/{run_id}", AUTH))
    assert res.status == 200, res.body
    run = res.json()
    assert (run["status"], run["output"]) == ("COMPLETED", {"sum": 42})


async def test_fetch_refuses_a_wrong_key() -> None:
    cloud = make_cloud(shards=2)
    headers = {**AUTH, "authorization": "Bearer wrong"}
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v1/runs", headers))
    assert res.status == 401
