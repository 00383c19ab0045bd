"""A task's SystemExit or KeyboardInterrupt is its run's failure, never its worker's: over
real worker processes, the workers that ran them live on and their neighbours run once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.engine.tasks_for_tests import lines
from tests.hostile import poison
from trigger_do.platform.local.runtime import LocalRuntime

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def test_system_exit_in_a_task_leaves_the_worker_alive(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    async with make_runtime(tasks="tests.hostile.poison", workers=2) as rt:
        pids = [p.pid for p in rt.procs]
        noops = await poison.noop.batch_trigger([{"dir": str(tmp_path)} for _ in range(25)])
        bad = [await t.trigger({}) for t in (poison.exits, poison.interrupts, poison.sync_exits)]
        more = await poison.noop.batch_trigger([{"dir": str(tmp_path)} for _ in range(25)])
        ids = [r.id for r in noops.runs] + [r.id for r in more.runs]
        for handle in bad:
            status = await handle.status()
            while not status.is_final:
                await asyncio.sleep(0.05)
                status = await handle.status()
            assert status.state == "failed" and status.error is not None
            assert status.error["name"] in ("SystemExit", "KeyboardInterrupt")
        await asyncio.gather(*(r.result(timeout=60) for r in [*noops.runs, *more.runs]))
        assert [p.pid for p in rt.procs] == pids and all(p.poll() is None for p in rt.procs)
    executions = Counter(line.split()[0] for line in lines(tmp_path, "executions"))
    assert executions == Counter(dict.fromkeys(ids, 1))
