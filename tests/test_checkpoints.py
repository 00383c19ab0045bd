"""A worker's WAL checkpoints (`platform/local/checkpoints.py`): its commits no longer copy
the log back into the database, a thread of its own does, and a log that grew long starts
over."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from trigger_do.platform.local import checkpoints
from trigger_do.platform.local.checkpoints import Checkpointer
from trigger_do.platform.local.database import LocalSql

ROW = "x" * 3000  # about a page a row


def sql_at(path: Path) -> LocalSql:
    sql = LocalSql(path)
    sql.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    return sql


def write(sql: LocalSql, rows: int) -> None:
    for _ in range(rows):
        sql.transaction(lambda: sql.exec("INSERT INTO t (v) VALUES (?)", ROW))


def autocheckpoint(sql: LocalSql) -> int:
    return int(sql.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_commits_leave_the_log_to_the_thread_until_it_stops(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    sql = sql_at(db)
    write(sql, 1)
    checkpointer = Checkpointer(sql, every=0.01)
    checkpointer.start()
    try:
        assert autocheckpoint(sql) == 0  # this thread's connection, made before
        size = db.stat().st_size
        write(sql, 300)  # (under SQLite's 1,000 pages: only the thread copies them back)
        deadline = time.monotonic() + 10
        while db.stat().st_size < size + 300 * 3000 and time.monotonic() < deadline:
            time.sleep(0.01)  # (only a checkpoint writes the database file itself)
        assert db.stat().st_size >= size + 300 * 3000
    finally:
        checkpointer.stop()
    assert autocheckpoint(sql) == 1000
    assert autocheckpoint(LocalSql(db)) == 1000  # (a new connection: SQLite's default)


def test_new_connections_of_the_process_leave_it_too(tmp_path: Path) -> None:
    sql = sql_at(tmp_path / "w.db")
    checkpointer = Checkpointer(sql)
    checkpointer.start()
    try:
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.append(autocheckpoint(sql)))
        thread.start()
        thread.join()
        assert got == [0]
    finally:
        checkpointer.stop()


def test_a_long_log_is_restarted_a_short_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PASSIVE checkpoint never restarts a log that writers keep busy; past
    `RESTART_FRAMES` the checkpointer asks for a RESTART (which makes the next writer start
    the log over), and only then."""
    monkeypatch.setattr(checkpoints, "RESTART_FRAMES", 200)
    sql = sql_at(tmp_path / "w.db")
    sql.auto_checkpoint(False)
    checkpointer = Checkpointer(sql)  # (not started: checkpoints called here)
    said: list[str] = []
    sql.conn.set_trace_callback(said.append)
    write(sql, 30)
    assert checkpointer.checkpoint()[0] >= 30
    assert "PRAGMA wal_checkpoint(RESTART)" not in said
    write(sql, 150)
    frames, copied = checkpointer.checkpoint()
    assert "PRAGMA wal_checkpoint(RESTART)" in said
    assert frames == copied  # all of it copied back
    said.clear()
    write(sql, 1)  # the next writer started the log over
    assert 0 < checkpointer.checkpoint()[0] < 10
