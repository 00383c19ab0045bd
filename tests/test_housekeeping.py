"""Housekeeping, driven one step at a time on a real database with a fake clock:
ttl expiry, re-dispatch of runs whose message was lost, purge after retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trigger_do.consumer.consumer import Consumer
from trigger_do.engine import Engine
from trigger_do.errors import RunNotFoundError
from trigger_do.platform.local.platform import RUN_QUEUE, open_local
from trigger_do.platform.local.queue import LocalQueueConsumer
from trigger_do.producer.producer import TriggerRequest
from trigger_do.runs.index import RunIndexObject
from trigger_do.shared.config import EngineConfig
from trigger_do.task import Task


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


async def _echo(payload: Any, ctx: Any) -> Any:
    ctx.logger.info("echo")
    await ctx.checkpoint("seen", payload)
    return payload


ECHO = Task(id="hk-echo", run=_echo)


@pytest.fixture
def env(tmp_path: Path) -> tuple[Engine, Consumer, LocalQueueConsumer, FakeClock]:
    platform, sql = open_local(tmp_path / "hk.db")
    clock = FakeClock()
    platform.clock = clock
    platform.queue.clock = clock  # type: ignore[attr-defined]
    config = EngineConfig(stale_after=60, retention=3600, packet_threshold=1000)
    engine = Engine(platform, config)
    consumer = Consumer(platform, {ECHO.id: ECHO}, config)
    queue = LocalQueueConsumer(sql, RUN_QUEUE, clock, token=consumer.token)
    return engine, consumer, queue, clock


async def test_ttl_expires_a_run_nobody_started(env: Any) -> None:
    engine, _, _, clock = env
    run = await engine.trigger(TriggerRequest("hk-echo", 1, {"ttl": "10s"}))
    clock.t += 11
    assert (await engine.housekeeping())["expired"] == 1
    assert (await engine.get_run(run.id))["state"] == "expired"


async def test_a_lost_message_is_dispatched_again(env: Any) -> None:
    engine, consumer, queue, clock = env
    run = await engine.trigger(TriggerRequest("hk-echo", {"n": 1}))
    queue.sql.exec("DELETE FROM queue_messages")  # the message is lost
    assert (await engine.housekeeping())["redispatched"] == 0  # not overdue yet
    clock.t += 61
    assert (await engine.housekeeping())["redispatched"] == 1
    batch = queue.receive(10)
    assert [m.body["run_id"] for m in batch] == [run.id]
    await consumer.handle_batch(batch)
    await consumer.writer.flush()
    assert (await engine.get_run(run.id))["output"] == {"n": 1}


async def test_finished_runs_are_purged_after_retention(env: Any, tmp_path: Path) -> None:
    engine, consumer, queue, clock = env
    big = {"blob": "x" * 5000}  # over packet_threshold: stored as a packet file
    run = await engine.trigger(TriggerRequest("hk-echo", big))
    await consumer.handle_batch(queue.receive(10))
    await consumer.writer.flush()
    row = await engine.get_run(run.id)
    assert row["state"] == "completed" and row["output"] == big and row["checkpoints"]
    packets = list((tmp_path / "packets").rglob("*.json"))
    assert len(packets) == 2  # payload and output
    assert await engine.logs(run.id)
    clock.t += 3601
    assert (await engine.housekeeping())["purged"] == 1
    with pytest.raises(RunNotFoundError):
        await engine.get_run(run.id)
    assert await engine.logs(run.id) == []
    assert not list((tmp_path / "packets").rglob("*.json"))


async def test_a_run_whose_consumer_vanished_is_resumed(env: Any) -> None:
    engine, consumer, queue, clock = env
    run = await engine.trigger(TriggerRequest("hk-echo", 7))
    batch = queue.receive(10)
    index = engine.index.on(run.id)
    # a consumer started it and died without a trace: running, lease long gone, no message
    await index(RunIndexObject.start_many, [[run.id, 1]], "lease_dead", clock.now(), 5.0)
    queue.sql.exec("DELETE FROM queue_messages")
    assert batch
    clock.t += 120
    assert (await engine.housekeeping())["redispatched"] == 1
    await consumer.handle_batch(queue.receive(10))
    await consumer.writer.flush()
    row = await engine.get_run(run.id)
    assert row["state"] == "completed" and row["attempt"] == 2 and row["output"] == 7
