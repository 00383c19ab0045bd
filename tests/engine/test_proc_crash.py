"""Crash safety over real worker processes: SIGKILL mid-run, and dead letters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.engine import tasks_for_tests as t
from trigger_do import RunState
from trigger_do.platform.local.runtime import LocalRuntime

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def wait_for_lines(directory: Path, name: str, n: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(found := t.lines(directory, name)) < n:
        assert time.monotonic() < deadline, f"{name}: {len(found)} of {n} lines"
        await asyncio.sleep(0.01)
    return found


async def test_sigkill_mid_run_resumes_from_checkpoints(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """A 1,000-chunk run whose worker is SIGKILLed mid-run is picked up by another
    consumer once its lease lapses, resumes after its last checkpoint with attempt + 1,
    redoes at most the chunk in flight and completes exactly once."""
    async with make_runtime(workers=2, lease_seconds=2.0) as rt:
        handle = await t.chunks.trigger(
            {"dir": str(tmp_path), "chunks": 1000, "chunk_seconds": 0.002}
        )
        work = await wait_for_lines(tmp_path, "work", 300)
        pid = int(work[-1].split()[0])
        assert (await handle.status()).state == RunState.RUNNING
        killed = rt.kill_worker([p.pid for p in rt.procs].index(pid))
        assert killed == pid
        out = await handle.result(timeout=90)
        status = await handle.status()
        # acks are settled with a worker's next claim or heartbeat (within a second)
        for _ in range(100):
            depth = rt.sql.exec("SELECT count(*) FROM queue_messages")[0][0]
            if depth == 0:
                break
            await asyncio.sleep(0.05)

    assert out == {"chunks": 1000, "attempt": 2, "download_calls": 1}
    assert (status.state, status.attempt) == (RunState.COMPLETED, 2)
    assert t.lines(tmp_path, "completed") == [f"{handle.id} 2"]  # one COMPLETED, once
    assert t.lines(tmp_path, "download") == ["1"]  # the step was not re-run
    # every chunk ran; at most the one in flight at the kill ran twice
    records = [line.split() for line in t.lines(tmp_path, "work")]
    runs_per_chunk = Counter(int(i) for _, _, i in records)
    assert sorted(runs_per_chunk) == list(range(1000))
    redone = [i for i, n in runs_per_chunk.items() if n > 1]
    assert len(redone) <= 1 and all(runs_per_chunk[i] == 2 for i in redone)
    first_attempt = [int(i) for p, a, i in records if a == "1"]
    second = [(int(p), int(i)) for p, a, i in records if a == "2"]
    assert first_attempt and second and all(int(p) == pid for p, a, _ in records if a == "1")
    assert all(p != pid for p, _ in second)  # another process resumed it
    assert second[0][1] in (first_attempt[-1], first_attempt[-1] + 1)  # from the checkpoint
    # each chunk's checkpoint was written exactly once
    names = [c.name for c in status.checkpoints]
    assert Counter(names) == {f"chunk-{i}": 1 for i in range(1000)}
    assert names == [f"chunk-{i}" for i in range(1000)]
    assert {c.attempt for c in status.checkpoints} == {1, 2}
    assert depth == 0  # nothing left in the queue


async def test_dead_letters_after_max_deliveries(make_runtime: MakeRuntime, tmp_path: Path) -> None:
    """A run whose consumer dies on every delivery ends CRASHED after the queue's max
    deliveries and lands in the dead-letter table; requeue revives it."""
    flag = tmp_path / "kill"
    flag.touch()
    async with make_runtime(workers=1, lease_seconds=1.0, max_retries=1) as rt:
        handle = await t.suicide.trigger({"dir": str(tmp_path), "flag": str(flag)})
        deadline = time.monotonic() + 60
        while (status := await handle.status()).state != RunState.CRASHED:
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        assert status.api_status == "CRASHED" and status.is_final
        assert status.error is not None and status.error["name"] == "Crashed"
        deliveries = t.lines(tmp_path, "deliveries")
        # max_retries=1: at most two deliveries, each of which killed its worker. (A
        # redelivery that lands a few ms before the dead holder's lease lapses is put
        # back as "busy", which also counts as a delivery: then only one ran the task.)
        assert 1 <= len(deliveries) <= 2, deliveries
        assert len({line.split()[0] for line in deliveries}) == len(deliveries)
        letters = await rt.engine.dead_letters()
        assert [d["run_id"] for d in letters] == [handle.id]
        assert letters[0]["task"] == "t-suicide" and letters[0]["deliveries"] >= 1
        # revive it: it resumes (attempt + 1) and, no longer crashing, completes
        flag.unlink()
        assert await rt.engine.requeue_dead() == [handle.id]
        assert (await handle.status()).state in (RunState.QUEUED, RunState.RUNNING)
        out = await handle.result(timeout=30)
        assert out["attempt"] == status.attempt + 1
        assert await rt.engine.dead_letters() == []
        assert await rt.engine.requeue_dead([handle.id]) == []  # not dead any more
