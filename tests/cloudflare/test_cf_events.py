"""Events and webhooks on Cloudflare, on fakes of the bindings (cf_fakes.py): the routes in
the Worker's `fetch`, the secret a Worker var, deduplication in the Events Durable Object
(cf_events_scenario.py, also run under real Pyodide by tests/pyodide/cf_scenario.py)."""

from __future__ import annotations

from typing import Any

from cf_events_scenario import EXPECTED_WEBHOOKS, GITHUB_SECRET, run_webhooks, signed_create
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
    body, headers = signed_create("refs/heads/main", "cf-no-secret")
    status, answer = await post("/webhooks/github", headers, body)
    assert status == 401 and "GITHUB_WEBHOOK_SECRET" in answer["error"]
    assert cloud.namespaces["EVENTS"].storages == {}  # the event store was never touched


async def test_the_same_scenario_on_the_local_platform(tmp_path: Any, monkeypatch: Any) -> None:
    """The contract: the local platform (a real server on a socket, settings from the
    environment) gives what the Cloudflare adapters give."""
    import asyncio

    import httpx
    from test_cf_contract import local_results

    from tests.http.conftest import ServerThread, free_port
    from trigger_do.api.app import create_app

    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    key = "tr_dev_LocalContractKey000000000001"

    async def scenario(engine: Any, drain: Any) -> dict[str, Any]:
        port = free_port()
        thread = ServerThread(create_app(engine, key), port)
        thread.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

                async def post(path: str, headers: dict[str, str], body: bytes) -> Any:
                    res = await http.post(path, content=body, headers=headers)
                    return res.status_code, res.json()

                return await run_webhooks(engine, post, drain, key)
        finally:
            await asyncio.to_thread(thread.stop)

    assert await local_results(tmp_path, scenario) == EXPECTED_WEBHOOKS
