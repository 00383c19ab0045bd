"""The engine scenario through the Cloudflare adapters and entry points, on fakes of the
bindings (tests/cloudflare/cf_fakes.py), compared with the same scenario on the local
platform; plus the binding rules the adapters must respect."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from cf_fakes import JsError, make_cloud
from cf_scenario import EXPECTED_LIMITS, expected, run_limits, run_scenario

from trigger_do.consumer.consumer import Consumer
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import OBJECT_CLASSES, RUN_QUEUE, open_local
from trigger_do.platform.local.queue import LocalQueueConsumer
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.shared.ids import shard_of
from trigger_do.task import registered_tasks

SLICE = "0.2"


async def cloudflare_results(shards: int) -> tuple[dict[str, Any], Any]:
    cloud = make_cloud(shards=shards, vars={"TRIGGER_DO_SLICE_SECONDS": SLICE})
    engine = cloud.engine()
    return await run_scenario(engine, cloud.drain), cloud


async def local_results(tmp_path: Path, scenario: Any = run_scenario) -> dict[str, Any]:
    platform, sql = open_local(tmp_path / "t.db")
    config = EngineConfig(slice_seconds=float(SLICE))
    engine = Engine(platform, config)
    consumer = Consumer(platform, registered_tasks(), config)
    queue = LocalQueueConsumer(sql, RUN_QUEUE, platform.clock, token=consumer.token)

    async def drain() -> None:
        for _ in range(2000):
            messages = queue.receive(100)
            if messages:
                await consumer.handle_batch(messages)
                await consumer.gate.drain()
                queue.settle(messages)
            elif not sql.exec(  # a coordinator's far safety-net wake (lease lapse) may remain
                "SELECT 1 FROM queue_messages WHERE queue = ? "
                "AND (body NOT LIKE '%\"wake\"%' OR visible_at < ?)",
                RUN_QUEUE,
                platform.clock.now() + 5,
            ):
                return
            else:
                await asyncio.sleep(0.02)
        raise AssertionError("local queue not drained")

    try:
        return dict(await scenario(engine, drain))
    finally:
        sql.close()


@pytest.mark.parametrize("shards", [1, 16])
async def test_scenario_on_cloudflare_matches_local(tmp_path: Path, shards: int) -> None:
    local = await local_results(tmp_path)
    cloud, env = await cloudflare_results(shards)
    assert local == expected()
    assert cloud == expected()
    assert env.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 0}


@pytest.mark.skipif(
    "coordinator" not in OBJECT_CLASSES,
    reason="the coordinator is not wired into the local platform yet (coordinator issue)",
)
async def test_concurrency_and_rate_limits_hold_on_cloudflare(tmp_path: Path) -> None:
    assert await local_results(tmp_path, run_limits) == EXPECTED_LIMITS
    cloud = make_cloud(shards=16)
    assert await run_limits(cloud.engine(), cloud.drain) == EXPECTED_LIMITS
    assert cloud.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 0}
    assert cloud.namespaces["COORDINATOR"].calls > 0


async def test_each_index_shard_holds_only_its_own_runs() -> None:
    _, cloud = await cloudflare_results(16)
    ns = cloud.namespaces["RUN_INDEX"]
    seen = 0
    for object_id, conn in ns.databases.items():
        shard = int(object_id.name.removeprefix("shard-"))
        ids = [r[0] for r in conn.execute("SELECT id FROM runs")]
        assert all(shard_of(i, 16) == shard for i in ids), object_id.name
        seen += len(ids)
    assert seen == 250 + 6  # every run in exactly one shard (the 7th trigger was cached)
    assert len(ns.databases) == 16


async def test_state_survives_eviction_and_batches_stay_within_queue_limits() -> None:
    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    from trigger_do.producer.producer import TriggerRequest

    batch = await engine.batch_trigger(
        [TriggerRequest("add", {"a": i, "b": 1}) for i in range(350)]
    )
    assert cloud.env.RUN_QUEUE.send_calls == 4  # 350 messages, at most 100 per sendBatch
    for ns in cloud.namespaces.values():
        ns.evict_all()  # a deploy or an eviction: instances rebuilt, storage kept
    await cloud.drain()
    runs = await engine.get_runs([r.id for r in batch.runs])
    assert [runs[r.id]["output"]["sum"] for r in batch.runs] == [i + 1 for i in range(350)]


async def test_a_consumer_that_dies_on_every_delivery_ends_the_run_crashed() -> None:
    cloud = make_cloud(shards=2, max_retries=2)
    engine = cloud.engine()
    from trigger_do.producer.producer import TriggerRequest

    run = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 2}))

    async def dies(batch: Any) -> None:  # the isolate is killed before anything settles
        raise RuntimeError("isolate killed")

    for _ in range(3):  # 1 delivery + 2 retries, then the dead-letter queue
        assert await cloud.queues.deliver("trigger-do-runs", dies) == 1
    assert cloud.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 1}
    await cloud.drain()  # the DLQ consumer is the Worker's queue() too
    row = await engine.get_run(run.id)
    assert row["state"] == "crashed"
    assert [d["run_id"] for d in await engine.dead_letters()] == [run.id]


async def test_unsettled_messages_are_retried_not_implicitly_acked() -> None:
    cloud = make_cloud(shards=1)
    engine = cloud.engine()
    from trigger_do.producer.producer import TriggerRequest

    await engine.trigger(TriggerRequest("add", {"a": 1, "b": 2}))
    cloud.env.RUN_INDEX = None  # every object call fails: the consumer settles nothing
    await cloud.queues.deliver("trigger-do-runs", cloud.worker.queue)
    stored = cloud.env.RUN_QUEUE.messages
    assert len(stored) == 1 and stored[0].attempts == 1  # retried, still there


async def test_large_payloads_go_to_r2_and_messages_carry_run_ids() -> None:
    cloud = make_cloud(shards=2)
    engine = cloud.engine()
    from trigger_do.producer.producer import TriggerRequest

    big = {"to": "a@b.c", "subject": "s", "body": "x" * 600_000}  # over the 512 KiB threshold
    run = await engine.trigger(TriggerRequest("send-email", big))
    assert list(cloud.bucket.objects) == [f"packets/{run.id}/payload.json"]
    [stored] = cloud.env.RUN_QUEUE.messages
    assert len(stored.body_text) < 200 and run.id in stored.body_text
    await cloud.drain()
    row = await engine.get_run(run.id)
    assert row["state"] == "completed" and row["output"]["message_id"].startswith("msg_")
    assert row["payload"] == big


def test_durable_sql_follows_the_storage_rules() -> None:
    import sqlite3

    from cf_fakes import FakeStorage, OffsetClock

    from trigger_do.platform.cloudflare.sql import DurableSql, SqlRuleError

    storage = FakeStorage(sqlite3.connect(":memory:", isolation_level=None), OffsetClock())
    sql = DurableSql(storage)
    sql.exec("CREATE TABLE t (a, b)")
    with pytest.raises(SqlRuleError):
        sql.exec("BEGIN")
    with pytest.raises(SqlRuleError):
        sql.exec("SELECT " + ",".join("?" * 101), *range(101))
    with pytest.raises(SqlRuleError, match="2\\*\\*53"):  # a double would round it
        sql.exec("SELECT ?", 2**53 + 1)
    # the fake refuses what the Durable Object refuses, whatever the adapter checks
    with pytest.raises(JsError, match="transactionSync"):
        storage.sql.exec("SAVEPOINT x")
    with pytest.raises(JsError, match="too many SQL variables"):
        storage.sql.exec("SELECT 1", *range(101))
    with pytest.raises(JsError, match="boolean"):
        storage.sql.exec("SELECT ?", True)
    with pytest.raises(JsError):
        storage.sql.exec("SELECT * FROM _cf_KV")
    # bools are bound as 0/1, None as NULL; integral REALs read back as ints (JS numbers)
    sql.exec("INSERT INTO t VALUES (?, ?)", True, None)
    sql.exec("INSERT INTO t VALUES (?, ?)", 2.0, 2.5)
    assert sql.exec("SELECT a, b FROM t ORDER BY rowid") == [(1, None), (2, 2.5)]

    # a transaction is all or nothing, and can't be begun by hand inside it
    def fails() -> None:
        sql.exec("INSERT INTO t VALUES (3, 3)")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        sql.transaction(fails)
    assert sql.exec("SELECT count(*) FROM t") == [(2,)]
    assert sql.transaction(lambda: sql.exec("SELECT count(*) FROM t")) == [(2,)]


async def test_a_ttl_expires_the_run_through_its_shards_alarm() -> None:
    """The Timers port on Cloudflare: the run's index shard keeps its one alarm at the
    earliest ttl, and the alarm expires the run on time (no consumer, no cron)."""
    from trigger_do.shared.ids import shard_of

    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    plain = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 1}))
    run = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 2}, {"ttl": "10s"}))
    ns = cloud.namespaces["RUN_INDEX"]
    shard = ns.idFromName(f"shard-{shard_of(run.id, 4)}")
    expires_at = (await engine.get_run(run.id))["expires_at"]
    assert ns.storages[shard].alarm_ms == math.ceil(expires_at * 1000)
    armed = [i for i, s in ns.storages.items() if s.alarm_ms is not None]
    assert armed == [shard]  # a shard with no ttl has no alarm

    cloud.clock.advance(9.5)
    assert await ns.fire_alarms() == 0
    cloud.clock.advance(1)
    assert await ns.fire_alarms() == 1
    assert (await engine.get_run(run.id))["state"] == "expired"
    assert ns.storages[shard].alarm_ms is None  # nothing left to time
    await cloud.drain()  # its message is skipped; the other run runs
    states = await engine.get_states([run.id, plain.id])
    assert (states[run.id][0], states[plain.id][0]) == ("expired", "completed")
