"""A dead process is noticed at once: a worker's death hands its runs on in well under a
lease (default 30 s), a run that kills every worker reaches the dead-letter queue in
seconds, workers die with their supervisor, a new supervisor stops the workers a dead one
left, and runs whose messages were lost are sent again when the runtime starts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.engine import tasks_for_tests as t
from trigger_do import RunState
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.processes import alive
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.producer.producer import TriggerRequest
from trigger_do.sdk.handles import RunHandle

MakeRuntime = Callable[..., AbstractAsyncContextManager[LocalRuntime]]
ROOT = Path(__file__).resolve().parents[2]


async def until(check: Callable[[], object], what: str, timeout: float = 30.0) -> float:
    """Wait until `check()` is true; return how long it took."""
    start = time.monotonic()
    while not await _call(check):
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _call(check: Callable[[], object]) -> object:
    result = check()
    return await result if asyncio.iscoroutine(result) else result


async def test_a_killed_workers_run_is_taken_over_at_once(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    async with make_runtime(workers=2, lease_seconds=30.0):  # the default lease
        handle = await t.sleeper.trigger({"dir": str(tmp_path), "seconds": 3})
        await until(lambda: t.lines(tmp_path, "started"), "the first start")
        pid = int(t.lines(tmp_path, "started")[0].split()[0])
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        await until(lambda: len(t.lines(tmp_path, "started")) == 2, "the takeover")
        assert time.monotonic() - killed < 5  # not the 30 s lease
        out = await handle.result(timeout=30)
        assert out["pid"] != pid and (await handle.status()).attempt == 2


async def test_a_run_that_kills_every_worker_is_dead_lettered_in_seconds(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    flag = tmp_path / "kill"
    flag.touch()
    async with make_runtime(workers=2, lease_seconds=30.0, max_retries=3) as rt:
        handle = await t.suicide.trigger({"dir": str(tmp_path), "flag": str(flag)})
        took = await until(lambda: _crashed(handle), "CRASHED", timeout=60)
        assert took < 30  # four deliveries, each noticed at once (was about 2 min 15 s)
        assert len(t.lines(tmp_path, "deliveries")) == 4
        assert [d["run_id"] for d in await rt.engine.dead_letters()] == [handle.id]


async def test_a_run_that_kills_its_worker_takes_no_retry_from_its_neighbours(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """A run that hard-kills its process while 20 neighbours run beside it, on every
    delivery: the neighbours' deliveries are given back and they run apart from it (in
    halves), so they complete whatever the queue's retry budget, and only the poison run,
    once alone, spends its deliveries and is dead-lettered."""
    flag = tmp_path / "kill"
    flag.touch()
    async with make_runtime(workers=1, lease_seconds=30.0, max_retries=1) as rt:
        batch = await rt.engine.batch_trigger(
            [TriggerRequest(t.sleeper.id, {"dir": str(tmp_path), "seconds": 0.5})] * 20
            + [TriggerRequest(t.suicide.id, {"dir": str(tmp_path), "flag": str(flag)})]
        )
        ids = [r.id for r in batch.runs]
        poison, neighbours = ids[-1], ids[:-1]
        await until(lambda: _all_in(rt.engine, [poison], "crashed"), "CRASHED", timeout=90)
        await until(lambda: _all_in(rt.engine, neighbours, "completed"), "done", timeout=60)
        assert [d["run_id"] for d in await rt.engine.dead_letters()] == [poison]
        # the deliveries beside others were given back; alone, it spent its two (max_retries=1)
        assert len(t.lines(tmp_path, "deliveries")) >= 3


async def _all_in(engine: Engine, ids: list[str], state: str) -> bool:
    return all(s[0] == state for s in (await engine.get_states(ids)).values())


async def _crashed(handle: RunHandle) -> bool:
    return (await handle.status()).state == RunState.CRASHED


SUPERVISOR = """
import asyncio, sys
sys.path.insert(0, {root!r})
import trigger_do

async def main():
    async with trigger_do.local(tasks={tasks!r}, db={db!r}, workers=2, lease_seconds=5.0):
        print("ready", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def start_supervisor_for(db: Path, tasks: str) -> subprocess.Popen[str]:
    """A supervisor (`trigger_do.local`) of 2 workers in a process of its own."""
    script = SUPERVISOR.format(root=str(ROOT), db=str(db), tasks=tasks)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def start_supervisor(db: Path) -> subprocess.Popen[str]:
    return start_supervisor_for(db, "tests.engine.tasks_for_tests")


def worker_pids(db: Path) -> list[int]:
    _, sql = open_local(db)
    return [int(r[0]) for r in sql.exec("SELECT pid FROM worker_sessions")]


async def test_workers_die_with_their_supervisor(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = start_supervisor(db)
    pids = worker_pids(db)
    assert len(pids) == 2 and all(alive(p) for p in pids)
    os.kill(proc.pid, signal.SIGKILL)  # no chance to stop them
    proc.wait()
    took = await until(lambda: not any(alive(p) for p in pids), "the workers to exit", 15)
    assert took < 5


async def test_a_new_supervisor_stops_the_workers_a_dead_one_left(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    """An orphan that does not notice (here: its session names a supervisor that is gone,
    while its real parent lives on) is stopped before the new workers start."""
    db = tmp_path / "t.db"
    proc = start_supervisor(db)
    pids = worker_pids(db)
    _, sql = open_local(db)
    os.kill(proc.pid, signal.SIGSTOP)  # it neither reaps nor restarts them any more ...
    sql.exec("UPDATE worker_sessions SET supervisor = 999999999")  # ... and counts as dead
    try:
        async with make_runtime(db=db, workers=1) as rt:
            assert not any(alive(p) for p in pids)  # stopped before ours started
            assert [int(r[0]) for r in sql.exec("SELECT pid FROM worker_sessions")] == [
                rt.procs[0].pid
            ]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait()
    # whatever the woken supervisor started before it stopped ends with it
    await until(lambda: not _workers_of(db), "the last workers of the old supervisor", 15)


def _workers_of(db: Path) -> list[int]:
    """Live processes serving `db` (read from /proc, whatever started them)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(db).encode() in cmd and b"trigger_do.platform.local.worker" in cmd:
            found.append(int(entry.name))
    return found


async def test_runs_whose_messages_were_lost_are_sent_at_start(
    make_runtime: MakeRuntime, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    platform, sql = open_local(db)
    engine = Engine(platform)
    runs = [await engine.trigger(TriggerRequest("t-echo", i)) for i in range(20)]
    sql.exec("DELETE FROM queue_messages")  # lost with the process that wrote them
    async with make_runtime(db=db, workers=1):  # housekeeping would wait 5 min (stale_after)
        took = await until(
            lambda: _all_final(engine, [r.id for r in runs]), "the runs", timeout=20
        )  # fmt: skip
    assert took < 10
    rows = await engine.get_runs([r.id for r in runs])
    assert [rows[r.id]["output"] for r in runs] == list(range(20))


async def _all_final(engine: Engine, ids: list[str]) -> bool:
    states = await engine.get_states(ids)
    return all(states[i][0] == "completed" for i in ids)


async def test_a_worker_whose_supervisor_died_before_it_started_stops(tmp_path: Path) -> None:
    """The race: a supervisor starts a worker and dies before the worker has looked at its
    parent (which is then already another process). The worker knows its supervisor by the
    pid it was given, not by its parent at the time it looks."""
    env = {**os.environ, "TRIGGER_DO_SUPERVISOR": "999999999", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trigger_do.platform.local.worker",
         "--tasks", "tests.engine.tasks_for_tests", "--db", str(tmp_path / "t.db")],
        env=env,
    )  # fmt: skip
    took = await until(lambda: proc.poll() is not None, "the worker to stop", 30)
    assert took < 10 and proc.returncode == 0
