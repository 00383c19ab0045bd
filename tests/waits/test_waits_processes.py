"""Waits with real worker processes on a real database file: a wait outlives the runtime
that started it, and a child triggered inside a task lands in the runtime's own database
(`local(db=...)`), never `./.trigger-do/trigger.db`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.waits import tasks_waits as w
from trigger_do import RunState
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.sdk.handles import RunHandle

TASKS = "tests.waits.tasks_waits"
Make = Callable[..., AbstractAsyncContextManager[LocalRuntime]]


async def _until(handle: RunHandle, state: RunState, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (await handle.status()).state != state:
        assert time.monotonic() < deadline, f"{handle.id} never reached {state}"
        await asyncio.sleep(0.05)


async def test_a_wait_resumes_on_time_after_the_runtime_restarts(
    make_runtime: Make, tmp_path: Path
) -> None:
    db = tmp_path / "data" / "t.db"  # not the default path: children must find it too
    db.parent.mkdir()
    async with make_runtime(tasks=TASKS, db=db, workers=1) as rt:
        sleeper = await w.sleeper.trigger({"wait": 6, "dir": str(tmp_path)})
        parent = await w.parent.trigger({"value": "from a child"})
        await _until(RunHandle(rt.client, sleeper.id), RunState.WAITING)
        assert await RunHandle(rt.client, parent.id).result(timeout=20) == {"child": "from a child"}
        # a parent and its child on one queue with a limit of 1: the parent gives its slot up
        shared = await w.shared_parent.trigger("one slot")
        assert await RunHandle(rt.client, shared.id).result(timeout=20) == {"child": "one slot"}
        # while it waits, the worker holds nothing of it
        held = rt.sql.exec(
            "SELECT count(*) FROM queue_messages WHERE body->>'run_id' = ?", sleeper.id
        )
        assert held[0][0] == 0
    async with make_runtime(tasks=TASKS, db=db, workers=1) as rt:
        handle = RunHandle(rt.client, sleeper.id)
        assert (await handle.status()).state == RunState.WAITING
        out = await handle.result(timeout=30)
        status = await handle.status()
    assert out == {"made": 1, "attempt": 1}
    assert status.finished_at is not None
    late = status.finished_at.timestamp() - (status.created_at.timestamp() + 6)
    assert 0 <= late < 2.0, late  # the supervisor fires due timers 5 times a second
    assert (tmp_path / "before").read_text().count("x") == 1  # its step ran once
