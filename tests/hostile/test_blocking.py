"""A task that blocks its worker's event loop (`time.sleep` inside `async def`) costs no run
its lease: the worker's watchdog keeps them from its own thread and names the blocker. Over
real worker processes, with 2-second leases and a 6-second block."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from tests.engine.tasks_for_tests import lines
from tests.hostile import poison
from trigger_do.platform.local.runtime import LocalRuntime

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def test_a_blocked_loop_loses_no_lease_and_is_named(
    make_runtime: MakeRuntime, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with make_runtime(tasks="tests.hostile.poison", workers=2, lease_seconds=2.0) as rt:
        blocker = await poison.blocks.trigger({"dir": str(tmp_path), "seconds": 6})
        noops = await poison.noop.batch_trigger([{"dir": str(tmp_path)} for _ in range(30)])
        assert await blocker.result(timeout=60) == "unblocked"
        await asyncio.gather(*(r.result(timeout=60) for r in noops.runs))
        assert (await blocker.status()).attempt == 1
        states = await rt.engine.get_states([r.id for r in noops.runs])
        assert {tuple(s) for s in states.values()} == {("completed", 1)}
    assert len(lines(tmp_path, "blocker")) == 1  # it ran once
    executions = Counter(line.split()[0] for line in lines(tmp_path, "executions"))
    assert executions == Counter({r.id: 1 for r in noops.runs})
    err = capfd.readouterr().err
    assert "event loop is blocked (task 'h-block', run " in err, err[-2000:]
    assert "tests/hostile/poison.py:" in err  # where it blocks
