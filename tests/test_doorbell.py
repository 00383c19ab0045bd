"""Workers are woken by the commit of work they can take (platform/local/doorbell.py), not
only by their polling: the doorbell, and the commit hook it rides on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from trigger_do.engine import Engine
from trigger_do.platform.local.database import LocalSql
from trigger_do.platform.local.doorbell import Doorbell, Listener, doorbell_dir
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.worker import Worker
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.task import Task

started = asyncio.Event()


async def _note(payload: object) -> None:
    started.set()


NOTE = Task(id="doorbell-note", run=_note)


async def test_a_worker_that_polls_once_a_minute_starts_a_run_at_once(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    platform, _ = open_local(db)
    worker = Worker(str(db), EngineConfig(), poll_interval=60.0)
    started.clear()
    running = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.3)  # it found nothing: it waits (up to a minute)
        assert not started.is_set()
        await Engine(platform).trigger(TriggerRequest(NOTE.id, {}))
        await asyncio.wait_for(started.wait(), 20)  # rung: long before its next poll
    finally:
        worker.stop_event.set()
        await asyncio.wait_for(running, 120)
    assert not worker.doorbell.path.exists()  # its socket is gone with it


def test_commit_hooks_run_after_the_commit_once_and_never_after_a_rollback(
    tmp_path: Path,
) -> None:
    sql = LocalSql(tmp_path / "h.db")
    sql.exec("CREATE TABLE t (x INTEGER)")
    seen: list[int] = []

    def hook() -> None:  # what it sees is committed: another connection reads it
        seen.append(LocalSql(tmp_path / "h.db").exec("SELECT count(*) FROM t")[0][0])

    def write() -> None:
        sql.exec("INSERT INTO t VALUES (1)")
        sql.after_commit(hook)
        sql.after_commit(hook)  # asked twice: once
        assert seen == []

    sql.transaction(write)
    assert seen == [1]

    def fail() -> None:
        sql.exec("INSERT INTO t VALUES (2)")
        sql.after_commit(hook)
        raise RuntimeError("undone")

    with pytest.raises(RuntimeError):
        sql.transaction(fail)
    sql.transaction(lambda: None)
    assert seen == [1]
    sql.after_commit(hook)  # outside a transaction: at once
    assert seen == [1, 1]


async def test_a_ring_wakes_a_listener_and_a_gone_listener_is_forgotten(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    loop = asyncio.get_running_loop()
    listener = Listener(db)
    listener.start(loop)
    bell = Doorbell(db)
    waiting = asyncio.ensure_future(listener.wait(60.0, asyncio.Event()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    bell.ring()
    await asyncio.wait_for(waiting, 20)
    # a socket left by a process that is gone: the next ring drops it
    stale = doorbell_dir(db) / "999999999"
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(stale))
    bell._scanned = float("-inf")  # rescan now
    bell.ring()
    assert not stale.exists()
    listener.stop(loop)
    assert not listener.path.exists()
    bell.close()
