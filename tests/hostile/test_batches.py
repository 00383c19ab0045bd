"""A batch is all or nothing: its runs become visible, and are sent, only once every item is
written; a producer that dies midway leaves nothing anyone sees, and a retry with the same
idempotency key completes it. On many shards the batch row is the commit point, and
housekeeping releases what a dead sealer left hidden."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.driver import Driver
from tests.engine.tasks_for_tests import lines
from tests.hostile import poison
from trigger_do.platform.local.platform import open_local
from trigger_do.producer import producer as producer_module
from trigger_do.producer.producer import Producer, TriggerRequest
from trigger_do.runs.index import RunIndexObject
from trigger_do.sdk.client import pop_client, push_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    d = Driver(tmp_path / "b.db", lease_seconds=5.0, flush_interval=0.002)
    push_client(d.client)
    yield d
    pop_client(d.client)


class Died(BaseException):
    """The producer's process ends here (nothing after it runs)."""


def die_after_chunks(monkeypatch: pytest.MonkeyPatch, chunks: int) -> None:
    real = Producer._insert
    done = [0]

    async def insert(self: Producer, rows: list[dict[str, Any]], now: float) -> Any:
        if done[0] == chunks:
            raise Died()
        done[0] += 1
        return await real(self, rows, now)

    monkeypatch.setattr(Producer, "_insert", insert)


async def test_a_producer_dying_midway_leaves_nothing_visible_and_a_retry_completes_it(
    driver: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producer_module, "CHUNK_RUNS", 100)
    items = [{"dir": str(tmp_path)} for _ in range(1_000)]
    with monkeypatch.context() as m:
        die_after_chunks(m, 4)
        with pytest.raises(Died):
            await poison.noop.batch_trigger(items, idempotency_key="nightly")
    assert driver.count("runs") == 400  # written, but:
    assert await driver.engine.list_runs(limit=10) == []  # nobody sees them
    assert driver.count("queue_messages") == 0  # nothing was sent
    assert (await driver.engine.housekeeping())["redispatched"] == 0

    batch = await poison.noop.batch_trigger(items, idempotency_key="nightly")  # the retry
    assert not batch.is_cached and len(batch.runs) == 1_000
    found = await driver.engine.get_batch(batch.id)
    assert found is not None and found["sealed"] and found["run_count"] == 1_000
    assert driver.count("runs") == 1_000 and driver.count("queue_messages") == 1_000
    ids = [r.id for r in batch.runs]
    await driver.run_until_final(ids)
    executions = Counter(line.split()[0] for line in lines(tmp_path, "executions"))
    assert executions == Counter(dict.fromkeys(ids, 1))
    again = await poison.noop.batch_trigger(items, idempotency_key="nightly")
    assert again.is_cached and [r.id for r in again.runs] == ids  # sealed: the same batch


async def test_a_retry_of_another_size_is_refused(
    driver: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producer_module, "CHUNK_RUNS", 10)
    with monkeypatch.context() as m:
        die_after_chunks(m, 1)
        with pytest.raises(Died):
            await poison.noop.batch_trigger([{"dir": "x"}] * 30, idempotency_key="k")
    with pytest.raises(Exception, match="unfinished batch of 30 items, not 20"):
        await poison.noop.batch_trigger([{"dir": "x"}] * 20, idempotency_key="k")


async def test_a_sealer_dying_before_releasing_every_shard_is_repaired_by_housekeeping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "cloudflare"))
    from cf_fakes import make_cloud

    import examples.tasks  # noqa: F401  (registers "add")

    cloud = make_cloud(shards=8)
    engine = cloud.engine()
    async def seal_then_die(self: Producer, batch_id: str, *args: Any) -> Any:
        await self.index.on(batch_id)(RunIndexObject.seal_batch, batch_id)  # commit, then death
        raise Died()

    monkeypatch.setattr(Producer, "seal", seal_then_die)
    with pytest.raises(Died):
        await engine.batch_trigger([TriggerRequest("add", {"a": i, "b": 1}) for i in range(200)])
    monkeypatch.undo()
    assert await engine.list_runs(limit=500) == []  # sealed, not yet released anywhere
    assert (await engine.housekeeping())["batches_released"] == 0  # not stale yet
    cloud.clock.advance(31)
    totals = await engine.housekeeping()
    assert totals["batches_released"] == 200
    await cloud.drain()
    rows = await engine.list_runs(limit=500)
    assert len(rows) == 200 and {r["state"] for r in rows} == {"completed"}


async def test_a_two_phase_batch_is_invisible_until_its_last_item(driver: Driver) -> None:
    made = await driver.engine.create_batch(3)
    first = [(0, TriggerRequest("t-echo", "a")), (1, TriggerRequest("t-echo", "b"))]
    res = await driver.engine.add_batch_items(made["id"], first)
    assert res is not None and res["present"] == 2
    assert await driver.engine.list_runs(limit=10) == [] and driver.count("queue_messages") == 0
    found = await driver.engine.get_batch(made["id"])
    assert found is not None and not found["sealed"]
    await driver.engine.add_batch_items(made["id"], [(2, TriggerRequest("t-echo", "c"))])
    found = await driver.engine.get_batch(made["id"])
    assert found is not None and found["sealed"] and driver.count("queue_messages") == 3
    await driver.run_until_final(found["runs"])
    rows = await driver.engine.get_runs(found["runs"])
    assert sorted(r["output"] for r in rows.values()) == ["a", "b", "c"]


PRODUCER = """
import asyncio, sys
sys.path.insert(0, {root!r})
import trigger_do
from tests.hostile import poison

async def main():
    trigger_do.configure(db={db!r})
    await poison.noop.batch_trigger([{{"dir": {dir!r}}}] * 20_000, idempotency_key="big")

asyncio.run(main())
"""


async def test_sigkill_of_the_producer_mid_batch(driver: Driver, tmp_path: Path) -> None:
    """A real process writing a 20,000-item batch is SIGKILLed once some chunks are in."""
    db = tmp_path / "b.db"
    script = PRODUCER.format(root=str(ROOT), db=str(db), dir=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    _, sql = open_local(db)
    deadline = time.monotonic() + 60
    while sql.exec("SELECT count(*) FROM runs")[0][0] < 2_000:
        assert proc.poll() is None, "the producer ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = sql.exec("SELECT count(*) FROM runs")[0][0]
    assert written < 20_000, "killed too late to prove anything"
    assert await driver.engine.list_runs(limit=5) == []
    assert driver.count("queue_messages") == 0

    items = [{"dir": str(tmp_path)}] * 20_000
    batch = await poison.noop.batch_trigger(items, idempotency_key="big")  # the retry
    assert len({r.id for r in batch.runs}) == 20_000 and driver.count("runs") == 20_000
    assert driver.count("queue_messages") == 20_000
