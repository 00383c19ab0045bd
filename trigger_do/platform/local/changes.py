"""The `Changes` port on the local database: SQLite's `PRAGMA data_version`, read on a
connection of its own that never writes, moves whenever any connection of any process
commits to the file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class DataVersion:
    """`version()`: the database file's data version as this watcher's connection sees it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def version(self) -> int:
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self.path, timeout=5.0, isolation_level=None, check_same_thread=False
                )
            (found,) = self._conn.execute("PRAGMA data_version").fetchone()
            return int(found)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
