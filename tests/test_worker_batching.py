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
