"""Other processes triggering into a running engine through its database file
(`TRIGGER_DO_DB`): concurrent idempotent triggers, sync twins, triggers by task id."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from typing import Any

import trigger_do
from tests.conftest import ROOT
from tests.engine import tasks_for_tests as t
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.shared.options import scoped_key


async def _python(script: str, runtime: LocalRuntime, *args: str) -> str:
    env = {**os.environ, "TRIGGER_DO_DB": str(runtime.db_path), "PYTHONPATH": str(ROOT)}
    env.pop("TRIGGER_API_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(script),
        *args,
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


CONCURRENT = """
    import sys, time
    import trigger_do
    start = float(sys.argv[1])
    time.sleep(max(0.0, start - time.time() - 0.02))
    while time.time() < start:
        pass
    handle = trigger_do.tasks.trigger_sync(
        "t-echo", {"from": sys.argv[2]}, idempotency_key="same-key"
    )
    print(handle.id, handle.is_cached)
"""


async def test_concurrent_triggers_from_processes_make_one_run(runtime: LocalRuntime) -> None:
    start = time.time() + 2.5  # every process triggers at this instant
    outs = await asyncio.gather(
        *(_python(CONCURRENT, runtime, repr(start), str(i)) for i in range(6)),
        *(asyncio.to_thread(_trigger_at, start, i) for i in range(4)),
    )
    pairs = [line.split() for out in outs for line in out.splitlines()]
    assert len(pairs) == 10
    assert len({run_id for run_id, _ in pairs}) == 1
    assert sorted(cached for _, cached in pairs) == ["False"] + ["True"] * 9
    run_id = pairs[0][0]
    rows = runtime.sql.exec(
        "SELECT id FROM runs WHERE idempotency_key = ?", scoped_key("t-echo", "same-key")
    )
    assert rows == [(run_id,)]
    result = await trigger_do.tasks.handle(run_id).result(timeout=30)
    assert set(result) == {"from"}
    assert runtime.sql.exec("SELECT count(*) FROM runs")[0][0] == 1


def _trigger_at(start: float, i: int) -> str:
    """A thread of this process joining the same race (sync twin outside the loop)."""
    time.sleep(max(0.0, start - time.time()))
    handle = t.echo.trigger_sync({"from": f"thread-{i}"}, idempotency_key="same-key")
    return f"{handle.id} {handle.is_cached}"


BY_ID = """
    import json, sys
    import trigger_do
    handle = trigger_do.tasks.trigger_sync("t-sync", {"n": 5}, tags=["from-script"])
    out = {
        "result": handle.result_sync(timeout=60),
        "state": str(handle.status_sync().state),
        "and_wait": trigger_do.tasks.trigger_and_wait_sync("t-echo", [1, 2], timeout=60),
        "batch": trigger_do.tasks.batch_trigger_sync("t-echo", ["a", "b"]).results_sync(60),
        "imported": any(m.startswith("tests") for m in sys.modules),
    }
    try:
        trigger_do.tasks.trigger_sync("not-served", {})
    except trigger_do.UnknownTaskError as exc:
        out["unknown"] = str(exc)
    print(json.dumps(out))
"""


async def test_trigger_by_id_from_a_process_that_never_imported_the_task(
    runtime: LocalRuntime,
) -> None:
    out: dict[str, Any] = json.loads(await _python(BY_ID, runtime))
    assert out["imported"] is False
    assert out["result"]["double"] == 10 and out["state"] == "completed"
    assert out["and_wait"] == [1, 2]
    assert out["batch"] == ["a", "b"]
    assert "'not-served'" in out["unknown"] and "t-echo" in out["unknown"]
    tagged = await runtime.engine.list_runs(tags=["from-script"])
    assert [r["task"] for r in tagged] == ["t-sync"]


TWINS = """
    import json
    from tests.engine import tasks_for_tests as t
    out = {
        "and_wait": t.sync_double.trigger_and_wait_sync({"n": 4}, timeout=60)["double"],
        "batch": t.echo.batch_trigger_and_wait_sync([3, 2, 1], timeout=60),
        "model": t.model_task.trigger_and_wait_sync(t.Order(order_id="x", quantity=2), timeout=60),
    }
    handle = t.echo.trigger_sync("twin")
    out["status"] = str(handle.status_sync().state)
    out["result"] = handle.result_sync(timeout=60)
    out["cancel"] = handle.cancel_sync()
    print(json.dumps(out))
"""


async def test_sync_twins_from_a_script(runtime: LocalRuntime) -> None:
    out = json.loads(await _python(TWINS, runtime))
    assert out["and_wait"] == 8
    assert out["batch"] == [3, 2, 1]
    assert out["model"] == {"order_id": "x", "total": 5.0, "payload_type": "Order"}
    assert out["status"] in ("queued", "running", "completed")
    assert out["result"] == "twin" and out["cancel"] is False
