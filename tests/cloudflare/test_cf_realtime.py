"""Realtime run subscriptions on Cloudflare: `GET /realtime/v1/runs/{id}` through the
Worker's `fetch`, forwarded to the run's Durable Object, which answers it with the API's
own routes and holds live requests on its own watcher (woken by the consumer's log appends,
and reading the run's row once a second while anyone waits). Fakes: cf_fakes.py."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest
from cf_fakes import Cloud, FakeRequest, make_cloud

from trigger_do import RunContext, task
from trigger_do.producer.producer import TriggerRequest

BASE = "https://trigger-do.example.workers.dev"
KEY = "tr_test_secret"
HOLD = 3.0
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
GATES: dict[str, asyncio.Event] = {}


@task(id="cf-realtime")
async def realtime_task(payload: dict[str, Any], ctx: RunContext) -> str:
    """Logs a line, waits for the test's gate, returns."""
    ctx.logger.info("started")
    await GATES[payload["gate"]].wait()
    return "done"


def cloud_() -> Cloud:
    return make_cloud(shards=4, vars={"TRIGGER_DO_REALTIME_HOLD": str(HOLD)})


async def get(cloud: Cloud, path: str, key: str = KEY, **params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"{BASE}{path}" + (f"?{query}" if query else "")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await cloud.worker.fetch(FakeRequest("GET", url, headers))


def header(res: Any, name: str) -> str:
    return next(v for k, v in res.headers if k == name)


def follow(res: Any, **params: str) -> dict[str, str]:
    return {
        "offset": header(res, "electric-offset"),
        "handle": header(res, "electric-handle"),
        **params,
    }


def token(scopes: list[str]) -> str:
    now = int(time.time())
    claims = {"iss": "https://id.trigger.dev", "aud": "https://api.trigger.dev"}
    return jwt.encode({**claims, "scopes": scopes, "iat": now, "exp": now + 600}, KEY, "HS256")


async def trigger(cloud: Cloud, gate: str) -> str:
    GATES[gate] = asyncio.Event()
    return (await cloud.engine().trigger(TriggerRequest("cf-realtime", {"gate": gate}))).id


async def test_the_run_object_answers_a_subscription() -> None:
    cloud = cloud_()
    run_id = await trigger(cloud, "answer")
    run_ns = cloud.namespaces["RUN"]

    first = await get(cloud, f"/realtime/v1/runs/{run_id}", offset="-1")
    assert first.status == 200, first.body
    assert ("fetch", (f"{BASE}/realtime/v1/runs/{run_id}?offset=-1",)) in run_ns.rpc_log
    [row, done] = first.json()
    assert done == {"headers": {"control": "up-to-date"}}
    assert row["value"]["id"] == run_id and row["value"]["status"] == "PENDING"
    assert json.loads(header(first, "electric-schema"))["runTags"]["dims"] == 1

    # held in the object until the run starts and logs (the consumer's append wakes it)
    live = asyncio.ensure_future(
        get(cloud, f"/realtime/v1/runs/{run_id}", **follow(first, live="true"))
    )
    await asyncio.sleep(0.2)
    assert not live.done()
    draining = asyncio.ensure_future(cloud.drain())
    try:
        started = time.monotonic()
        res = await asyncio.wait_for(live, HOLD)
        assert time.monotonic() - started < HOLD * 0.8
        [row, _] = res.json()
        assert row["headers"] == {"operation": "update"}
        assert row["value"]["status"] == "EXECUTING"
        live = asyncio.ensure_future(
            get(cloud, f"/realtime/v1/runs/{run_id}", **follow(res, live="true"))
        )
        await asyncio.sleep(0.2)
    finally:
        GATES["answer"].set()
        await draining
    [row, _] = (await asyncio.wait_for(live, HOLD * 2)).json()
    assert row["value"]["status"] == "COMPLETED_SUCCESSFULLY"
    assert row["value"]["output"] == '"done"' and row["value"]["completedAt"]


async def test_many_subscribers_share_the_objects_one_watcher() -> None:
    cloud = cloud_()
    run_id = await trigger(cloud, "many")
    first = await get(cloud, f"/realtime/v1/runs/{run_id}")
    path = f"/realtime/v1/runs/{run_id}"
    held = [asyncio.ensure_future(get(cloud, path, **follow(first, live="true"))) for _ in range(5)]
    await asyncio.sleep(HOLD * 0.5)
    run_ns = cloud.namespaces["RUN"]
    instance = run_ns.instances[run_ns.idFromName(run_id)]
    stats = instance.realtime._app.state.realtime.watcher.stats
    assert stats.waiting == 5
    # the object reads the run once a second for all five, not once per request
    assert stats.reads <= 1 + HOLD * 0.5 + 1
    results = await asyncio.gather(*held)
    assert all(r.json() == [{"headers": {"control": "up-to-date"}}] for r in results)
    GATES["many"].set()


async def test_credentials_and_scopes_are_checked_in_the_object() -> None:
    cloud = cloud_()
    mine, other = await trigger(cloud, "mine"), await trigger(cloud, "other")
    assert (await get(cloud, f"/realtime/v1/runs/{mine}", key="")).status == 401
    assert (await get(cloud, f"/realtime/v1/runs/{mine}", key="wrong")).status == 401
    scoped = token([f"read:runs:{mine}"])
    assert (await get(cloud, f"/realtime/v1/runs/{mine}", key=scoped)).status == 200
    assert (await get(cloud, f"/realtime/v1/runs/{other}", key=scoped)).status == 403
    missing = await get(cloud, "/realtime/v1/runs/run_missing")
    assert missing.status == 404 and missing.json()["error"]
    for gate in ("mine", "other"):
        GATES[gate].set()


async def test_a_batch_feed_is_answered_by_one_object_for_all_its_subscribers() -> None:
    cloud = cloud_()
    GATES["batch"] = asyncio.Event()
    done = await cloud.engine().batch_trigger(
        [TriggerRequest("cf-realtime", {"gate": "batch"}) for _ in range(2)]
    )
    path = f"/realtime/v1/batches/{done.id}"
    first = await get(cloud, path)
    assert first.status == 200, first.body
    assert {m["value"]["id"] for m in first.json()[:-1]} == {r.id for r in done.runs}
    held = [asyncio.ensure_future(get(cloud, path, **follow(first, live="true"))) for _ in range(3)]
    await asyncio.sleep(0.3)
    run_ns = cloud.namespaces["RUN"]
    feed = run_ns.instances[run_ns.idFromName(f"realtime-batch:{done.id}")]
    assert feed.realtime._app.state.realtime.watcher.stats.waiting == 3
    draining = asyncio.ensure_future(cloud.drain())
    try:
        answers = await asyncio.wait_for(asyncio.gather(*held), HOLD * 2)
    finally:
        GATES["batch"].set()
        await draining
    for res in answers:  # each saw the runs start (read by the object within a second)
        assert {m["value"]["status"] for m in res.json()[:-1]} == {"EXECUTING"}

    tagged = await get(cloud, "/realtime/v1/runs", tags="b,a")
    assert tagged.status == 200 and tagged.json() == [{"headers": {"control": "up-to-date"}}]
    assert run_ns.idFromName("realtime-tags:a,b") in run_ns.instances
