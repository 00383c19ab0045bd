"""Events and webhooks on Cloudflare, on fakes of the bindings (cf_fakes.py): the routes in
the Worker's `fetch`, the secret a Worker var, deduplication in the Events Durable Object
(cf_events_scenario.py, also run under real Pyodide by tests/pyodide/cf_scenario.py)."""

from __future__ import annotations

from typing import Any

from cf_events_scenario import EXPECTED_WEBHOOKS, GITHUB_SECRET, run_webhooks, signed_push
from cf_fakes import FakeRequest, make_cloud

BASE = "https://trigger-do.example.workers.dev"


def _cloud(**vars: str) -> Any:
    cloud = make_cloud(shards=4, vars=vars)

    async def post(path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        res = await cloud.worker.fetch(FakeRequest("POST", BASE + path, headers, body))
        return res.status, res.json()

    return cloud, post


async def test_a_signed_github_delivery_through_the_worker() -> None:
    cloud, post = _cloud(GITHUB_WEBHOOK_SECRET=GITHUB_SECRET)
    got = await run_webhooks(cloud.engine(), post, cloud.drain, "tr_test_secret")
    assert got == EXPECTED_WEBHOOKS
    [storage] = cloud.namespaces["EVENTS"].storages.values()  # one object: the event store
    assert storage is not None


async def test_without_the_secret_every_delivery_is_refused() -> None:
    cloud, post = _cloud()
    body, headers = signed_push("refs/heads/main", "cf-no-secret")
    status, answer = await post("/webhooks/github", headers, body)
    assert status == 401 and "GITHUB_WEBHOOK_SECRET" in answer["error"]
    assert cloud.namespaces["EVENTS"].storages == {}  # the event store was never touched
