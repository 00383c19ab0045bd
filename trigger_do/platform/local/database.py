"""The `Sql` port on one SQLite file (WAL), shared by every object and process.

It enforces the Durable Object rules, so what passes here passes there: no
BEGIN/COMMIT/SAVEPOINT in engine SQL, at most 100 bound parameters, bound strings under
2 MB. `transaction(fn)` is `BEGIN IMMEDIATE`, so decisions stay serialized across processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ...errors import (
    MisuseError,
    SchemaVersionError,
    SqlRuleError,  # noqa: F401  (re-exported: raised by check_query, check_params)
    StorageUnavailableError,
)
from ...ports import check_params, check_query

T = TypeVar("T")
SCHEMA_VERSION = 1
# SQLite's words for a database that cannot be written now (nothing was written)
_UNAVAILABLE = ("disk is full", "readonly database", "disk i/o error", "unable to open")
CACHED_STATEMENTS = 512  # prepared statements kept per connection (a keyed load: ~115)
_CHECKED_MAX = 4096  # distinct statements whose text was checked, remembered
# a unit waiting on the loop for the write lock tries again at least this often: its
# pauses cost the loop nothing, and a long one is lock time nobody uses (0.1 ms: no gain)
ASYNC_LONGEST_PAUSE = 0.0002


class _BusyWaits:
    """The pauses between tries of a write that found the write lock taken: `after(exc)`
    gives the next one, or raises `exc` when it is not about the lock or the timeout has
    passed."""

    def __init__(self, timeout: float, longest: float = 0.001) -> None:
        self.deadline = time.monotonic() + timeout
        self.pause = 0.0002
        self.longest = longest

    def after(self, exc: sqlite3.OperationalError) -> float:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise exc
        if time.monotonic() > self.deadline:
            raise exc
        pause = self.pause * (0.5 + random.random())
        self.pause = min(self.pause * 1.5, self.longest)
        return pause


class LocalSql:
    """One connection per thread to the database file. `writes` counts the write
    transactions this process committed through it (a statement outside `transaction`
    that changed rows is one): the budget a batch of runs may spend is tested."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self.writes = 0
        self._checked: set[str] = set()  # statements whose text passed `check_query`
        self._auto_checkpoint = True
        # cleared while this process's checkpointer restarts the log: its units wait on
        # their loops meanwhile, rather than keep the write lock from it (checkpoints.py)
        self.writers_go = threading.Event()
        self.writers_go.set()

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            _create_private(self.path)
            conn = sqlite3.connect(
                self.path,
                timeout=0,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=CACHED_STATEMENTS,
            )
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            # sorts and groupings in memory: on disk each one created a file (and unlinked it)
            conn.execute("PRAGMA temp_store=MEMORY")
            if not self._auto_checkpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
            self._local.depth = 0
            self._local.hooks = []
        return conn

    def auto_checkpoint(self, on: bool) -> None:
        """Whether this process's commits checkpoint the log when it grows past 1,000 pages
        (SQLite's default) or leave it to a `checkpoints.Checkpointer`: this thread's
        connection now, the others' as they connect."""
        self._auto_checkpoint = on
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.execute(f"PRAGMA wal_autocheckpoint={1000 if on else 0}")

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call `hook` once what was just written is committed: now, outside a transaction;
        else when the outermost one commits (once however often it is asked for; never
        should it roll back). A hook must not raise."""
        self.conn  # noqa: B018  (this thread's state)
        if not self._local.depth:
            hook()
        elif hook not in self._local.hooks:
            self._local.hooks.append(hook)

    def exec(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        # (the hot path of every object call: each distinct statement's text is checked
        # once, and the error translation is `_unavailable`'s, inline)
        if query not in self._checked:
            check_query(query)
            if len(self._checked) < _CHECKED_MAX:
                self._checked.add(query)
        if params:
            check_params(params)
        conn = self.conn
        try:
            if self._local.depth:
                return conn.execute(query, params).fetchall()
            before = conn.total_changes
            rows = self._retry(lambda: conn.execute(query, params).fetchall())
            if conn.total_changes != before:
                self.writes += 1
            return rows
        except sqlite3.OperationalError as exc:
            unavailable = self._unavailable_error(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        """A full disk, a read-only file, an I/O error: `StorageUnavailableError`, saying
        which database and why (the caller's write did not happen)."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            unavailable = self._unavailable_error(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    def _unavailable_error(self, exc: sqlite3.OperationalError) -> StorageUnavailableError | None:
        if any(word in str(exc).lower() for word in _UNAVAILABLE):
            return StorageUnavailableError(f"the database {self.path} cannot be written: {exc}")
        return None

    def _retry(self, fn: Callable[[], T]) -> T:
        """Retry while another process holds the write lock. SQLite's own busy handler
        sleeps in steps that grow to 100 ms, which starves short writers under load;
        this polls every fraction of a millisecond instead."""
        waits = _BusyWaits(self.timeout)
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                pause = waits.after(exc)
            time.sleep(pause)

    def transaction(self, fn: Callable[[], T]) -> T:
        conn = self.conn
        if self._local.depth:  # already inside: a savepoint in the outer transaction
            return self._nested(conn, fn)
        with self._unavailable():
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        return self._within(conn, fn)

    def read(self, fn: Callable[[], T]) -> T:
        """Run the read-only `fn` on a snapshot: a deferred transaction, which in WAL mode
        neither waits for the write lock nor holds it (`BEGIN IMMEDIATE` did both), with
        writes refused (`query_only`: a write fails, nothing written). Inside a transaction
        already, part of it. Tried again while SQLite says busy (a reader rarely is)."""
        conn = self.conn
        if self._local.depth:
            return self._nested(conn, fn)
        with self._unavailable():
            return self._retry(lambda: self._read_once(conn, fn))

    def _read_once(self, conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
        conn.execute("BEGIN")
        conn.execute("PRAGMA query_only = 1")
        self._local.depth = 1
        try:
            return fn()
        except (sqlite3.OperationalError, StorageUnavailableError) as exc:
            if "readonly" in str(exc):  # (query_only's refusal, not the file's)
                raise MisuseError(f"a call marked `reads` tried to write: {exc}") from exc
            raise
        finally:
            self._local.depth = 0
            self._local.hooks = []
            conn.execute("PRAGMA query_only = 0")
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # (it wrote nothing: ending it is all)

    async def transaction_async(self, fn: Callable[[], T]) -> T:
        """`transaction(fn)` for a caller on an event loop: while another process holds the
        write lock, it waits on the loop (a worker's runs, which need no lock, go on) and
        tries again every fraction of a millisecond."""
        conn = self.conn
        if self._local.depth:
            return self._nested(conn, fn)
        waits = _BusyWaits(self.timeout, ASYNC_LONGEST_PAUSE)
        while True:
            if not self.writers_go.is_set():  # (a restart of the log, a few ms)
                await asyncio.sleep(ASYNC_LONGEST_PAUSE)
                continue
            with self._unavailable():
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    pause = waits.after(exc)
            # the wait is the loop's: its other work (runs, their timers) goes on meanwhile
            # (a worker's loop times it to the microsecond: platform/local/loop.py)
            await asyncio.sleep(pause)
        # (no other coroutine's transaction can be open here: each runs to its end without
        # yielding; the wait above is before BEGIN)
        return self._within(conn, fn)

    def _within(self, conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
        """Run `fn` in the transaction just begun, and commit it (or roll it back)."""
        self._local.depth = 1
        before = conn.total_changes
        try:
            result = fn()
        except BaseException:
            self._local.depth = 0
            self._local.hooks = []
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                conn.execute("ROLLBACK")
            raise
        self._local.depth = 0
        hooks, self._local.hooks = self._local.hooks, []
        with self._unavailable():
            try:
                conn.execute("COMMIT")
            except sqlite3.OperationalError:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        if conn.total_changes != before:
            self.writes += 1
        for hook in hooks:
            hook()
        return result

    def _nested(self, conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
        """A transaction inside another (an object call in a unit of work): a savepoint, so
        that it is all or nothing by itself should its caller go on after it failed."""
        depth = self._local.depth
        conn.execute(f"SAVEPOINT nested{depth}")
        self._local.depth = depth + 1
        try:
            result = fn()
        except BaseException:
            self._local.depth = depth
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO nested{depth}")
                conn.execute(f"RELEASE nested{depth}")
            raise
        self._local.depth = depth
        conn.execute(f"RELEASE nested{depth}")
        return result

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _create_private(path: Path) -> None:
    """Create the database file readable by this user only (0600) if it is new; SQLite
    gives its WAL and shared-memory files the database file's permissions."""
    if str(path) == ":memory:" or path.exists():
        return
    with contextlib.suppress(OSError):  # exists already, or cannot be: SQLite will say
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def init_schema(sql: LocalSql, statements: list[str]) -> None:
    """Create every table once; refuse a database written by a newer trigger.do."""
    sql.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    (version,) = sql.conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{sql.path} has schema version {version}, newer than this trigger.do "
            f"({SCHEMA_VERSION}): upgrade trigger-do or use another --db"
        )

    def create() -> None:
        for stmt in statements:
            sql.exec(stmt)

    sql.transaction(create)
    if version < SCHEMA_VERSION:
        sql.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
