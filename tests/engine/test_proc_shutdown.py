"""Graceful shutdown of real worker processes (SIGTERM): running attempts finish within
the grace period; past it they are continued from their checkpoints; nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.engine import tasks_for_tests as t
from tests.engine.test_proc_crash import wait_for_lines
from trigger_do import RunState
from trigger_do.platform.local.runtime import LocalRuntime

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def _exited(proc: object, timeout: float) -> float:
    began = time.monotonic()
    while proc.poll() is None:  # type: ignore[attr-defined]
        assert time.monotonic() - began < timeout, "the worker did not exit"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_sigterm_lets_running_attempts_finish(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    async with make_runtime(workers=2, shutdown_grace=10.0) as rt:
        handle = await t.sleeper.trigger({"dir": str(tmp_path), "seconds": 1.5})
        (started,) = await wait_for_lines(tmp_path, "started", 1)
        pid = int(started.split()[0])
        index = [p.pid for p in rt.procs].index(pid)
        proc = rt.procs[index]
        rt.kill_worker(index, signal.SIGTERM)
        # the stopping worker takes no new batches: a run triggered now runs elsewhere
        other = await t.sleeper.trigger({"dir": str(tmp_path), "seconds": 0})
        took = await _exited(proc, timeout=15)
        assert proc.returncode == 0
        assert took < 10  # it left once its attempt finished, well within the grace
        out = await handle.result(timeout=10)
        assert out == {"slept": 1.5, "pid": pid}
        status = await handle.status()
        assert (status.state, status.attempt) == (RunState.COMPLETED, 1)
        assert (await other.result(timeout=20))["pid"] != pid
    assert t.lines(tmp_path, "cancelled") == []
    assert f"{pid} 1" in t.lines(tmp_path, "finished")


async def test_sigterm_past_the_grace_continues_runs_elsewhere(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    async with make_runtime(workers=2, shutdown_grace=0.5) as rt:
        handle = await t.chunks.trigger({"dir": str(tmp_path), "chunks": 60, "chunk_seconds": 0.05})
        work = await wait_for_lines(tmp_path, "work", 10)
        pid = int(work[-1].split()[0])
        index = [p.pid for p in rt.procs].index(pid)
        proc = rt.procs[index]
        rt.kill_worker(index, signal.SIGTERM)
        await _exited(proc, timeout=15)
        assert proc.returncode == 0
        out = await handle.result(timeout=60)
        status = await handle.status()
        logs = [r.message async for r in handle.logs(follow=False)]
    assert out == {"chunks": 60, "attempt": 1, "download_calls": 1}
    assert (status.state, status.attempt) == (RunState.COMPLETED, 1)  # continued, not failed
    assert any("continued after a shutdown" in m for m in logs), logs
    records = [line.split() for line in t.lines(tmp_path, "work")]
    assert {int(p) for p, _, _ in records} - {pid}  # another worker finished it
    per_chunk = Counter(i for _, _, i in records)
    assert len(per_chunk) == 60 and max(per_chunk.values()) <= 2
    assert sum(per_chunk.values()) <= 61  # at most the chunk in flight was redone
    assert [c.name for c in status.checkpoints] == [f"chunk-{i}" for i in range(60)]


async def test_stopping_the_runtime_loses_nothing(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """Leaving `local()` mid-run continues in-flight runs; the next runtime on the same
    database resumes them from their checkpoints."""
    for d in "ab":
        (tmp_path / d).mkdir()
    async with make_runtime(workers=2, shutdown_grace=0.3) as rt:
        batch = await t.chunks.batch_trigger(
            [{"dir": str(tmp_path / d), "chunks": 40, "chunk_seconds": 0.05} for d in "ab"]
        )
        for d in "ab":
            await wait_for_lines(tmp_path / d, "work", 5)
    states = [(await r.status()).state for r in batch.runs]
    assert states == [RunState.QUEUED, RunState.QUEUED], states
    async with make_runtime(workers=1):
        outs = await batch.results(timeout=60)
    assert outs == [{"chunks": 40, "attempt": 1, "download_calls": 1}] * 2
    for d in "ab":
        per_chunk = Counter(line.split()[2] for line in t.lines(tmp_path / d, "work"))
        assert len(per_chunk) == 40 and sum(per_chunk.values()) <= 41
    assert rt.sql.exec("SELECT count(*) FROM queue_messages")[0][0] == 0
