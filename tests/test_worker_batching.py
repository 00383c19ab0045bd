"""The local queue's batching: a short batch waits up to `batch_wait` to fill up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.worker import Worker
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.task import Task


async def _noop(payload: object) -> None:
    return None


NOOP = Task(id="batching-noop", run=_noop)


async def _trigger(engine: Engine, n: int) -> None:
    await engine.batch_trigger([TriggerRequest(NOOP.id, i) for i in range(n)])


async def test_a_short_batch_waits_to_fill_up(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    platform, _ = open_local(db)
    engine = Engine(platform)
    await _trigger(engine, 3)
    worker = Worker(str(db), EngineConfig(), batch_size=10, batch_wait=2.0, poll_interval=0.01)

    async def more_later() -> None:
        await asyncio.sleep(0.2)
        await _trigger(engine, 7)

    (got, launch), _ = await asyncio.gather(worker._receive(10), more_later())
    assert len(got) == 10  # 3 at once, 7 more that arrived while it waited
    assert launch is None  # (a batch filled up while waiting starts as handle_batch does)


async def test_without_batch_wait_a_batch_goes_at_once(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    platform, _ = open_local(db)
    engine = Engine(platform)
    await _trigger(engine, 3)
    worker = Worker(str(db), EngineConfig(), batch_size=10)
    assert len((await worker._receive(10))[0]) == 3
    assert await worker._receive(10) == ([], None)


async def test_quick_full_batches_grow_the_claim_and_a_slow_one_takes_it_back(
    tmp_path: Path,
) -> None:
    from trigger_do.platform.local.queue import LocalMessage
    from trigger_do.platform.local.worker import QUICK_BATCH

    db = tmp_path / "b.db"
    open_local(db)
    worker = Worker(str(db), EngineConfig(), batch_size=10, max_batch_size=35)

    def batch(n: int) -> list[LocalMessage]:
        return [LocalMessage(str(i), 1, 0.0, {}) for i in range(n)]

    async def quick() -> None:
        return None

    async def slow() -> None:
        await asyncio.sleep(QUICK_BATCH * 2)

    sizes = []
    for _ in range(4):
        await worker._batch(batch(worker.claim_size), quick)
        sizes.append(worker.claim_size)
    assert sizes == [20, 35, 35, 35]  # doubled while full and quick, up to the maximum
    await worker._batch(batch(3), quick)  # a short batch (the queue ran dry): as it was
    assert worker.claim_size == 35
    await worker._batch(batch(35), slow)  # runs that take time: back to batch_size
    assert worker.claim_size == 10
    await worker._batch(batch(10), slow)
    assert worker.claim_size == 10
