"""Runs over real worker processes: retry spacing, time slices, cancel while running or
queued behind others, delay and ttl, logs followed live."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.engine import tasks_for_tests as t
from tests.engine.test_proc_crash import wait_for_lines
from trigger_do import RunFailedError, RunState
from trigger_do.platform.local.runtime import LocalRuntime

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def test_retried_attempts_are_spaced_by_the_backoff(runtime: LocalRuntime) -> None:
    handle = await t.flaky.trigger({"succeed_on": 3})
    assert await handle.result(timeout=30) == 3
    status = await handle.status()
    assert status.attempt == 3
    starts = [c.at.timestamp() for c in status.checkpoints]
    assert [c.data for c in status.checkpoints] == [1, 2, 3]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    expected = t.FLAKY_RETRY.schedule()  # 0.4s, then 0.8s
    assert expected == pytest.approx([0.4, 0.8])
    for gap, delay in zip(gaps, expected, strict=True):
        assert gap >= delay, (gaps, expected)
        assert gap < delay + 10  # generous: the machine is shared


async def test_time_slices_continue_a_long_run(make_runtime: MakeRuntime, tmp_path: Path) -> None:
    """With a 1-second slice, a 5-second checkpointing run completes: it is continued
    (queued again, same attempt) at the end of each slice and resumes from its checkpoint."""
    async with make_runtime(workers=2, slice_seconds=1.0, lease_seconds=1.5) as rt:
        handle = await t.chunks.trigger({"dir": str(tmp_path), "chunks": 50, "chunk_seconds": 0.1})
        seen: set[str] = set()
        while not (status := await handle.status()).is_final:
            seen.add(status.state)
            await asyncio.sleep(0.02)
        logs = [r async for r in handle.logs(follow=False)]
        assert rt.sql.exec("SELECT continued FROM runs WHERE id = ?", handle.id) == [(0,)]
        ((dispatch,),) = rt.sql.exec("SELECT dispatch FROM runs WHERE id = ?", handle.id)
    assert status.state == RunState.COMPLETED, status.error
    assert status.attempt == 1  # continued, never failed
    assert status.output == {"chunks": 50, "attempt": 1, "download_calls": 1}
    continued = [r for r in logs if "continued after a slice" in r.message]
    assert len(continued) >= 3, [r.message for r in logs]
    assert {r.attempt for r in continued} == {1}
    # queued again between slices: each continuation is a new dispatch (the state itself
    # lasts well under a millisecond now that a worker is woken by the commit)
    assert dispatch == 1 + len(continued)
    assert seen <= {RunState.QUEUED, RunState.RUNNING}
    names = [c.name for c in status.checkpoints]
    assert names == [f"chunk-{i}" for i in range(50)]
    assert {c.attempt for c in status.checkpoints} == {1}
    # a continued slice redoes at most the chunk it was cut in
    runs_per_chunk = Counter(line.split()[2] for line in t.lines(tmp_path, "work"))
    assert len(runs_per_chunk) == 50
    assert sum(runs_per_chunk.values()) <= 50 + len(continued)
    assert t.lines(tmp_path, "download") == ["1"]


async def test_cancel_a_running_run(runtime: LocalRuntime, tmp_path: Path) -> None:
    handle = await t.sleeper.trigger({"dir": str(tmp_path), "seconds": 60})
    await wait_for_lines(tmp_path, "started", 1)
    assert (await handle.status()).state == RunState.RUNNING
    began = time.monotonic()
    assert await handle.cancel() is True
    with pytest.raises(RunFailedError) as err:
        await handle.result(timeout=10)
    assert err.value.state == "canceled"
    # the task saw CancelledError at its next await, soon after
    await wait_for_lines(tmp_path, "cancelled", 1, timeout=10)
    assert time.monotonic() - began < 10
    await asyncio.sleep(0.5)  # its consumer has written whatever it was going to
    status = await handle.status()
    assert (status.state, status.output, status.attempt) == (RunState.CANCELED, None, 1)
    assert t.lines(tmp_path, "finished") == []
    assert await handle.cancel() is False


async def test_cancel_delayed_and_waiting_for_retry_runs(runtime: LocalRuntime) -> None:
    delayed = await t.echo.trigger("never", delay="1s")
    assert (await delayed.status()).state == RunState.DELAYED
    assert await delayed.cancel() is True
    retrying = await t.flaky.trigger({"succeed_on": 3})
    deadline = time.monotonic() + 30
    while (status := await retrying.status()).state != RunState.WAITING_FOR_RETRY:
        assert time.monotonic() < deadline and not status.is_final, status
        await asyncio.sleep(0.01)
    assert await retrying.cancel() is True
    await asyncio.sleep(1.5)  # past the delay and the retry's backoff
    status = await delayed.status()
    assert (status.state, status.attempt, status.started_at) == (RunState.CANCELED, 0, None)
    status = await retrying.status()
    assert (status.state, status.output) == (RunState.CANCELED, None)
    assert [c.data for c in status.checkpoints] == list(range(1, status.attempt + 1))
    assert status.attempt < 3  # the next attempt never ran


async def test_cancel_and_ttl_of_runs_queued_behind_others(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """One worker that runs one attempt at a time: runs triggered behind a long one wait
    in the queue (backpressure); one is canceled there, one expires there."""
    async with make_runtime(workers=1, max_running=1) as rt:
        blocker = await t.sleeper.trigger({"dir": str(tmp_path), "seconds": 1.5})
        await wait_for_lines(tmp_path, "started", 1)
        queued = await t.echo.trigger("never runs")
        expiring = await t.echo.trigger("too late", ttl="500ms")
        fine = await t.echo.trigger("runs", ttl="1m")
        assert (await queued.status()).state == RunState.QUEUED
        assert await queued.cancel() is True
        assert (await blocker.result(timeout=30))["slept"] == 1.5
        assert await fine.result(timeout=30) == "runs"
        with pytest.raises(RunFailedError) as err:
            await expiring.result(timeout=30)
        assert err.value.state == "expired"
        for h in (queued, expiring):
            status = await h.status()
            assert status.started_at is None and status.attempt == 0
        assert (await queued.status()).state == RunState.CANCELED
        for _ in range(60):  # acks settle with the next claim or heartbeat
            if rt.sql.exec("SELECT count(*) FROM queue_messages")[0][0] == 0:
                break
            await asyncio.sleep(0.05)
        assert rt.sql.exec("SELECT count(*) FROM queue_messages")[0][0] == 0


async def test_delay_over_processes(runtime: LocalRuntime) -> None:
    handle = await t.echo.trigger("later", delay="1s")
    assert (await handle.status()).state == RunState.DELAYED
    await asyncio.sleep(0.5)
    assert (await handle.status()).state == RunState.DELAYED  # not before
    assert await handle.result(timeout=30) == "later"
    status = await handle.status()
    assert status.started_at is not None
    assert (status.started_at - status.created_at).total_seconds() >= 1.0


async def test_logs_are_followed_live(runtime: LocalRuntime) -> None:
    handle = await t.logs_task.trigger({"n": 5, "gap": 0.2})
    records = []
    states_at_first = None
    async for rec in handle.logs():
        if not records:
            states_at_first = (await handle.status()).state
        records.append(rec)
    # the first record arrived while the run was still running; the iterator ended with it
    assert states_at_first == RunState.RUNNING
    assert (await handle.status()).state == RunState.COMPLETED
    assert [r.message for r in records] == [f"line {i}" for i in range(5)] + ["last line"]
    assert [r.extras for r in records[:5]] == [{"i": i} for i in range(5)]
    assert records[-1].level == "warn" and records[0].level == "info"
    assert all(r.attempt == 1 for r in records)
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    spread = (records[4].at - records[0].at).total_seconds()
    assert spread >= 0.7  # logged over time, not at the end
