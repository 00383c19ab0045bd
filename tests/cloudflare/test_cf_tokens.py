"""Wait tokens on Cloudflare, on fakes of the bindings (cf_fakes.py): tokens spread over the
`Waitpoints` Durable Objects (one per shard), each keeping its one alarm at its earliest
timeout; the alarm times tokens out and tells their waiters through the engine's hook; the
waitpoint API and the key-less callback URL through the Worker's `fetch`."""

from __future__ import annotations

import json
import math

from cf_fakes import FakeRequest, make_cloud

from tests.tokens import tasks_tokens  # the tasks that wait on tokens and events
from trigger_do.shared.ids import shard_of
from trigger_do.waitpoints import TokenStoreObject, callback_hash

AUTH = {"authorization": "Bearer tr_test_secret", "content-type": "application/json"}
BASE = "https://trigger-do.example.workers.dev"


async def test_tokens_on_their_shards_and_timeouts_by_alarm() -> None:
    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    ns = cloud.namespaces["WAITPOINTS"]
    made = [(await engine.tokens.create(timeout=f"{n + 1}m"))[0] for n in range(8)]
    assert {shard_of(t["id"], 4) for t in made} != {0}  # spread over the shards
    assert len(ns.storages) == len({shard_of(t["id"], 4) for t in made})
    keyed, _ = await engine.tokens.create(idempotency_key="cf-key", timeout="1h")
    again, cached = await engine.tokens.create(idempotency_key="cf-key")
    assert cached and again["id"] == keyed["id"]
    first = made[0]
    for storage in ns.storages.values():
        assert storage.alarm_ms is not None  # each shard's alarm at its earliest timeout
    earliest = min(s.alarm_ms for s in ns.storages.values() if s.alarm_ms is not None)
    assert earliest == math.ceil(first["timeout_at"] * 1000)
    await engine.tokens.wait_on(first["id"], "run_a:1")
    await engine.tokens.complete(made[1]["id"], {"done": True})
    cloud.clock.advance(61)
    assert await ns.fire_alarms() >= 1
    got = await engine.tokens.get(first["id"])
    assert got["status"] == "TIMED_OUT" and got["output_is_error"]
    assert (await engine.tokens.get(made[1]["id"]))["status"] == "COMPLETED"
    assert (await engine.tokens.get(made[2]["id"]))["status"] == "WAITING"
    # the alarm's own engine told the waiter (its resume hook): nothing left to redeliver
    waiters = await engine.tokens.on(first["id"])(TokenStoreObject.waiters, first["id"])
    assert waiters == []
    cloud.clock.advance(120)
    assert await engine.tokens.redeliver() == 0
    cloud.clock.advance(600)
    await ns.fire_alarms()
    statuses = [(await engine.tokens.get(t["id"]))["status"] for t in made]
    assert statuses == ["TIMED_OUT", "COMPLETED"] + ["TIMED_OUT"] * 6
    listed = await engine.tokens.list(limit=100)
    assert len(listed) == 9


async def test_the_waitpoint_api_through_the_workers_fetch() -> None:
    cloud = make_cloud(shards=2)
    body = json.dumps({"timeout": "1h", "tags": ["cf"]}).encode()
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/api/v1/waitpoints/tokens", AUTH, body)
    )
    assert res.status == 200, res.body
    made = res.json()
    assert made["url"] == (
        f"{BASE}/api/v1/waitpoints/tokens/{made['id']}/callback/"
        + callback_hash("tr_test_secret", made["id"])
    )
    bad = made["url"][:-2] + "zz"
    res = await cloud.worker.fetch(FakeRequest("POST", bad, {}, b"{}"))
    assert res.status == 401
    res = await cloud.worker.fetch(FakeRequest("POST", made["url"], {}, b'{"ok": 1}'))
    assert res.status == 200 and res.json() == {"success": True}
    res = await cloud.worker.fetch(
        FakeRequest("GET", f"{BASE}/api/v1/waitpoints/tokens/{made['id']}", AUTH)
    )
    got = res.json()
    assert got["status"] == "COMPLETED" and json.loads(got["output"]) == {"ok": 1}
    res = await cloud.worker.fetch(
        FakeRequest("GET", f"{BASE}/api/v1/waitpoints/tokens?filter[tags]=cf", AUTH)
    )
    assert [t["id"] for t in res.json()["data"]] == [made["id"]]


async def test_runs_waiting_on_tokens_and_an_event_on_cloudflare() -> None:
    """A run suspends on its token (WAITING, no message held) and resumes when the token is
    completed; another when its token's Waitpoints alarm times it out; a third when the event
    it waits for is sent through the Events object."""
    from trigger_do.producer.producer import TriggerRequest

    tasks_tokens.TOKENS.clear()
    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    approved = await engine.trigger(TriggerRequest("tok-approve", {}))
    timed = await engine.trigger(TriggerRequest("tok-approve", {"timeout": "10m"}))
    paid = await engine.trigger(TriggerRequest("tok-paid", {"account": "cf"}))
    await cloud.drain()
    for run in (approved, timed, paid):
        assert (await engine.get_run(run.id))["state"] == "waiting"
    assert cloud.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 0}
    await engine.tokens.complete(tasks_tokens.TOKENS[approved.id], {"approved": True})
    await engine.events.send("invoice.paid", {"account": "cf"}, id="cf-inv")
    await cloud.drain()
    one = await engine.get_run(approved.id)
    assert one["state"] == "completed" and one["output"]["output"] == {"approved": True}
    three = await engine.get_run(paid.id)
    assert three["state"] == "completed" and three["output"]["output"]["id"] == "cf-inv"
    cloud.clock.advance(601)
    assert await cloud.namespaces["WAITPOINTS"].fire_alarms() >= 1
    await cloud.drain()
    two = await engine.get_run(timed.id)
    assert two["state"] == "completed" and two["output"]["ok"] is False
    assert two["output"]["error"]["code"] == "TRIGGER_WAITPOINT_TIMEOUT"
