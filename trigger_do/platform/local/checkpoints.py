"""A worker's WAL checkpoints, in a thread of their own rather than in its event loop.

SQLite copies the write-ahead log back into the database file (a checkpoint) in whichever
commit finds the log past 1,000 pages, inside that commit, fsync included: 3 to 7 ms on
the 2-core test machine, about twenty times a second under a keyed load. In a worker that
commit is its event loop's, so every run of the worker waited for it: a run holding a
concurrency slot held it that much longer (`load per-org` counted 100 to 200 such commits
in each worker, each one stopping all ten slots of the hot key).

`Checkpointer` turns that off for the process's connections and checkpoints from a thread
instead, every `EVERY` seconds while the log grows: PASSIVE, so it never waits for and never
blocks a writer (and Python's sqlite3 lets go of the GIL while SQLite copies and syncs). A
log kept busy without a pause is never restarted from its beginning by a PASSIVE checkpoint
(a writer starts it over only when it finds every frame copied back): it grew to 127 MB in
the drain of `load.million`. So past `RESTART_FRAMES` frames the thread asks for a
RESTART, with this process's units held back meanwhile (`LocalSql.writers_go`: they wait on
their loops, for the writers in progress elsewhere, at most `RESTART_WAIT`, then the copy
of what is left); another worker's checkpointer asks for its own at about the same moment,
since they look at the same log, so the writers of both make way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from .database import LocalSql

log = logging.getLogger("trigger_do.worker")

EVERY = 0.05  # seconds between looks at the log
RESTART_FRAMES = 8192  # frames (32 MiB of 4 KiB pages) past which the log starts over
RESTART_WAIT = 0.05  # seconds a RESTART waits for the writers in progress


class Checkpointer:
    def __init__(self, sql: LocalSql, every: float = EVERY) -> None:
        self.sql = sql
        self.every = every
        self.wal = Path(f"{sql.path}-wal")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.sql.auto_checkpoint(False)
        self._thread = threading.Thread(
            target=self._run, name="trigger-do-checkpoints", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, and let commits checkpoint again (as SQLite does by default)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sql.auto_checkpoint(True)

    def _run(self) -> None:
        seen: tuple[int, int] | None = None
        while not self._stop.wait(self.every):
            try:
                stat = self.wal.stat()
            except OSError:  # no log yet (or it was removed): nothing to copy
                continue
            mark = (stat.st_mtime_ns, stat.st_size)
            if mark == seen:  # nothing written since the last look
                continue
            seen = mark
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the next look tries again
                log.warning("checkpointing %s failed: %s", self.sql.path, exc)

    def checkpoint(self) -> tuple[int, int]:
        """One PASSIVE checkpoint (and a RESTART if the log has grown long): returns the
        frames in the log and how many of them are copied into the database."""
        conn = self.sql.conn
        _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames > RESTART_FRAMES:
            conn.execute(f"PRAGMA busy_timeout = {int(RESTART_WAIT * 1000)}")
            self.sql.writers_go.clear()
            try:
                _, frames, copied = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                self.sql.writers_go.set()
                conn.execute("PRAGMA busy_timeout = 0")
        return int(frames), int(copied)
