"""Live-log WebSockets on Cloudflare: `GET /api/v1/runs/{id}/logs/ws` through the Worker's
`fetch`, forwarded to the run's Durable Object, accepted with the Hibernation API, fed by
the consumer's writes, ended by the writer (or the safety-net alarm). Fakes: cf_fakes.py
(WebSocketPair, acceptWebSocket/getWebSockets, attachments, eviction between events)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from cf_fakes import Cloud, FakeRequest, FakeWebSocket, make_cloud

from trigger_do import RunContext, task
from trigger_do.api.logs import record
from trigger_do.producer.producer import TriggerRequest
from trigger_do.runs.index import WATCHED

BASE = "https://trigger-do.example.workers.dev"
KEY = "tr_test_secret"
GATES: dict[str, asyncio.Event] = {}


@task(id="cf-live-logs")
async def live_logs_task(payload: dict[str, Any], ctx: RunContext) -> str:
    """Logs `before` lines, waits for the test's gate (if any), then logs `after` lines."""
    for i in range(payload["before"]):
        ctx.logger.info(f"before {i}", i=i)
    gate = GATES.get(payload.get("gate", ""))
    if gate is not None:
        await gate.wait()
    for i in range(payload["after"]):
        ctx.logger.warn(f"after {i}")
    return "done"



async def connect(
    cloud: Cloud, run_id: str, query: str = f"token={KEY}", headers: dict[str, str] | None = None
) -> Any:
    url = f"{BASE}/api/v1/runs/{run_id}/logs/ws" + (f"?{query}" if query else "")
    request = FakeRequest("GET", url, {"upgrade": "websocket", **(headers or {})})
    return await cloud.worker.fetch(request)


async def until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait (event-driven, on the loop) until `check()` holds; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def expected(cloud: Cloud, run_id: str, status: str) -> list[dict[str, Any]]:
    """What the local API sends for the run: its records as `record()` shapes them, then
    the end."""
    rows = await cloud.engine().logs(run_id)
    return [{"type": "log", **record(r)} for r in rows] + [{"type": "end", "status": status}]


async def trigger(cloud: Cloud, payload: dict[str, Any]) -> str:
    return (await cloud.engine().trigger(TriggerRequest("cf-live-logs", payload))).id


async def test_live_subscriber_gets_records_in_order_then_the_end() -> None:
    cloud = make_cloud(shards=4)
    GATES["live"] = gate = asyncio.Event()
    run_id = await trigger(cloud, {"before": 3, "after": 2, "gate": "live"})

    res = await connect(cloud, run_id)
    assert res.status == 101
    client: FakeWebSocket = res.webSocket
    assert client.received == [] and client.closed is None  # queued: nothing logged yet

    draining = asyncio.ensure_future(cloud.drain())
    try:  # the run is parked at its gate: what it logged so far has arrived, live
        await until(lambda: len(client.received) >= 3, "the first three records")
        live = client.messages()
        assert [m["type"] for m in live] == ["log"] * 3
        assert [m["seq"] for m in live] == [1, 2, 3]
        assert [m["message"] for m in live] == ["before 0", "before 1", "before 2"]
        assert live[0]["extras"] == {"i": 0} and live[0]["level"] == "info"
        assert client.closed is None and not draining.done()
    finally:
        gate.set()
        await draining

    got = client.messages()
    assert got == await expected(cloud, run_id, "COMPLETED")
    assert [m.get("seq") for m in got] == [1, 2, 3, 4, 5, None]
    assert client.closed == (1000, "")
    # the socket is gone from the object; it was accepted with the "logs" tag
    run_ns = cloud.namespaces["RUN"]
    hub = run_ns.hubs[run_ns.idFromName(run_id)]
    assert hub.live() == [] and hub.sockets[0][1] == ["logs"]


async def test_late_subscriber_gets_the_backlog_then_the_end() -> None:
    cloud = make_cloud(shards=4)
    run_id = await trigger(cloud, {"before": 2, "after": 1})
    await cloud.drain()

    client = (await connect(cloud, run_id)).webSocket
    assert client.messages() == await expected(cloud, run_id, "COMPLETED")
    assert client.closed == (1000, "")

    # `after` resumes past what was seen; a bearer header works as well as `?token=`
    res = await connect(cloud, run_id, "after=2", {"authorization": f"Bearer {KEY}"})
    assert [m.get("seq") for m in res.webSocket.messages()] == [3, None]


async def test_eviction_between_every_event_loses_nothing() -> None:
    cloud = make_cloud(shards=4)
    run_ns = cloud.namespaces["RUN"]
    run_ns.evict_between_events = True  # hibernation at every opportunity
    GATES["evict"] = gate = asyncio.Event()
    run_id = await trigger(cloud, {"before": 2, "after": 2, "gate": "evict"})
    early = (await connect(cloud, run_id)).webSocket
    assert run_ns.instances == {}  # nothing of the object stays in memory

    draining = asyncio.ensure_future(cloud.drain())
    try:
        await until(lambda: len(early.received) >= 2, "the first two records")
        late = (await connect(cloud, run_id)).webSocket  # joins mid-run
        assert [m["seq"] for m in late.messages()] == [1, 2]
        assert run_ns.instances == {}
    finally:
        gate.set()
        await draining

    want = await expected(cloud, run_id, "COMPLETED")
    assert early.messages() == want  # each record exactly once, in order, then the end
    assert late.messages() == want
    assert early.closed == late.closed == (1000, "")
    # more than one instance served the sockets: each event built a new one
    assert sum(1 for m, _ in run_ns.rpc_log if m in ("call", "fetch")) >= 4


async def test_unwatched_runs_cost_no_extra_call() -> None:
    cloud = make_cloud(shards=4)
    watched = await trigger(cloud, {"before": 1, "after": 0})
    unwatched = await trigger(cloud, {"before": 1, "after": 0})
    client = (await connect(cloud, watched)).webSocket
    await cloud.drain()

    log = cloud.namespaces["RUN"].rpc_log
    finished = [a[0] for m, a in log if m == "call" and a[1] == "finished"]
    assert finished == [watched]
    engine = cloud.engine()
    rows = {r["id"]: r for r in await engine.list_runs(limit=10)}
    assert rows[watched]["has_object"] == WATCHED and rows[unwatched]["has_object"] == 1
    assert client.messages()[-1] == {"type": "end", "status": "COMPLETED"}


async def test_a_run_canceled_over_the_api_ends_through_the_safety_net_alarm() -> None:
    cloud = make_cloud(shards=4)
    run_id = await trigger(cloud, {"before": 1, "after": 0})
    client = (await connect(cloud, run_id)).webSocket
    run_ns = cloud.namespaces["RUN"]
    assert await run_ns.fire_alarms() == 0  # armed, not yet due

    await cloud.engine().cancel(run_id)  # no consumer write: nobody tells the object
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 1
    assert client.messages() == [{"type": "end", "status": "CANCELED"}]
    assert client.closed == (1000, "")
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 0  # no subscribers left: no more alarms


async def test_the_alarm_rearms_while_the_run_is_live() -> None:
    cloud = make_cloud(shards=2)
    run_id = await trigger(cloud, {"before": 0, "after": 0})
    client = (await connect(cloud, run_id)).webSocket
    run_ns = cloud.namespaces["RUN"]
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 1 and client.closed is None  # still queued
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 1
    client.close(1000, "bye")  # the subscriber leaves: the object hears of it
    assert await run_ns.deliver_socket_events() == 1
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 1  # one last check finds no subscriber...
    cloud.clock.advance(31)
    assert await run_ns.fire_alarms() == 0  # ...and does not re-arm


async def test_errors_match_the_local_api() -> None:
    cloud = make_cloud(shards=2)
    res = await connect(cloud, "run_missing")
    assert res.status == 101
    assert res.webSocket.messages() == [{"type": "error", "error": "no run with id 'run_missing'"}]
    assert res.webSocket.closed == (4404, "")

    run_id = await trigger(cloud, {"before": 0, "after": 0})
    bad = (await connect(cloud, run_id, f"token={KEY}&after=x")).webSocket
    assert bad.closed is not None and bad.closed[0] == 4400
    assert "`after` must be a log sequence number" in bad.messages()[0]["error"]

    # without the key the request never reaches the object: the app answers 401
    calls = len(cloud.namespaces["RUN"].rpc_log)
    for query in ("", "token=wrong"):
        res = await connect(cloud, run_id, query)
        assert res.status == 401
    assert len(cloud.namespaces["RUN"].rpc_log) == calls


async def test_client_messages_are_ignored_and_closes_answered() -> None:
    cloud = make_cloud(shards=2)
    run_id = await trigger(cloud, {"before": 0, "after": 0})
    client = (await connect(cloud, run_id)).webSocket
    client.send("hello")
    cloud.namespaces["RUN"].evict_all()
    assert await cloud.namespaces["RUN"].deliver_socket_events() == 1  # wakes, ignores it
    assert client.received == []
    client.close(1001, "going away")
    assert await cloud.namespaces["RUN"].deliver_socket_events() == 1
    await cloud.drain()  # the run ends with nobody listening: no error anywhere
    assert client.received == []
