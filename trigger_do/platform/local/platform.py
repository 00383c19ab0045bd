"""Assemble the local platform: the ports on one SQLite file and this process."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...coordinator.coordinator import CoordinatorObject
from ...errors import MisuseError, StorageUnavailableError
from ...events.store import EventStoreObject
from ...ports import Platform, UnitRunner
from ...runs.index import RunIndexObject
from ...runs.registry import RegistryObject
from ...runs.run_object import RunObject
from ...schedules.scheduler import SchedulerObject
from ...shared import tracing
from ...shared.timers import SCHEMA as TIMERS_SCHEMA
from ...shared.timers import due_objects
from ...waitpoints.store import TokenStoreObject
from .changes import DataVersion
from .database import LocalSql, init_schema
from .doorbell import Doorbell
from .objects import LocalNamespace
from .queue import SCHEMA as QUEUE_SCHEMA
from .queue import LocalQueue

RUN_QUEUE = "runs"
OBJECT_CLASSES: dict[str, type] = {
    "run-index": RunIndexObject,
    "run": RunObject,
    "registry": RegistryObject,
    "coordinator": CoordinatorObject,
    "scheduler": SchedulerObject,  # schedules (trigger_do/schedules/)
    "events": EventStoreObject,  # events and webhook deliveries (trigger_do/events/)
    "waitpoints": TokenStoreObject,  # wait tokens (trigger_do/waitpoints/)
}
DEFAULT_DB = Path(".trigger-do") / "trigger.db"


class EnvSettings:
    """`Settings` on os.environ, with explicit overrides first."""

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})

    def get(self, name: str, default: str | None = None) -> str | None:
        if name in self.overrides:
            return self.overrides[name]
        return os.environ.get(name, default)


class SystemClock:
    def now(self) -> float:
        return time.time()


class FileBlobs:
    """Packets as files under the database's folder, readable by this user only (files
    0600 in folders 0700). A write is atomic (a unique temporary file, then a rename) and
    leaves nothing behind if it fails; a key is `/`-separated names, never `.`, `..` or
    empty, and always names a file (a key naming a folder holds no packet)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if "\0" in key or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid blob key {key[:200]!r}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or path == self.root.resolve():
            raise ValueError(f"invalid blob key {key[:200]!r}")
        return path

    def _mkdirs(self, folder: Path) -> None:
        missing: list[Path] = []
        while not folder.is_dir():
            if folder.exists():
                raise ValueError(f"{folder} is a file, not a folder for packets")
            missing.append(folder)
            folder = folder.parent
        for each in reversed(missing):
            each.mkdir(mode=0o700, exist_ok=True)

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        path = self._path(key)
        with _unavailable(path):
            if path.is_dir():
                raise ValueError(f"invalid blob key {key[:200]!r}: it names a folder")
            for attempt in range(3):  # a concurrent delete may remove an emptied folder
                self._mkdirs(path.parent)
                try:
                    fd, tmp = tempfile.mkstemp(
                        dir=path.parent, prefix=f".{path.name[:50]}.", suffix=".tmp"
                    )
                except FileNotFoundError:
                    if attempt == 2:
                        raise
                    continue
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
                return

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return
        root = self.root.resolve()
        folder = path.parent
        while folder != root and folder.is_relative_to(root):  # drop emptied folders
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


_FULL = (errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT)


@contextlib.contextmanager
def _unavailable(path: Path) -> Iterator[None]:
    """A full disk, a read-only file system, an I/O error: `StorageUnavailableError` (the
    HTTP API's 503), as for the database."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _FULL:
            raise StorageUnavailableError(f"the packet {path} cannot be written: {exc}") from exc
        raise


def default_db_path(settings: EnvSettings | None = None) -> Path:
    raw = (settings or EnvSettings()).get("TRIGGER_DO_DB")
    return Path(raw) if raw else Path.cwd() / DEFAULT_DB


def thread_runner(workers: int = 32) -> Callable[..., Any]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trigger-do-sync")

    async def run_sync(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    return run_sync


def schema_statements() -> list[str]:
    statements = list(QUEUE_SCHEMA)
    statements.append(
        """CREATE TABLE IF NOT EXISTS workers (
            pid INTEGER PRIMARY KEY, started_at REAL NOT NULL, seen_at REAL NOT NULL,
            tasks TEXT NOT NULL DEFAULT '[]'
        )"""
    )
    statements.append(  # a worker's consumer token and supervisor (processes.py)
        """CREATE TABLE IF NOT EXISTS worker_sessions (
            pid INTEGER PRIMARY KEY, token TEXT NOT NULL, supervisor INTEGER NOT NULL,
            started_at REAL NOT NULL
        )"""
    )
    for cls in OBJECT_CLASSES.values():
        statements += cls.schema()  # type: ignore[attr-defined]
    return statements + TIMERS_SCHEMA


class LocalTimers:
    """The `Timers` port on the one database: every object's timers are rows of one table."""

    def __init__(self, sql: LocalSql) -> None:
        self.sql = sql

    def due(self, now: float) -> list[tuple[str, str]]:
        return due_objects(self.sql, now)


def local_units(sql: LocalSql) -> UnitRunner:
    """`Platform.unit` on the one database file: the work runs inside one transaction,
    driven to its end at once (a local object call or queue send never suspends; should the
    work wait on anything else, it is undone and refused: it would hold the write lock
    while other coroutines ran, and their calls would join its transaction)."""

    async def run(work: Callable[[], Awaitable[Any]]) -> Any:
        steps = work().__await__()

        def drive() -> Any:
            try:
                waited = steps.send(None)
            except StopIteration as done:
                return done.value
            steps.close()
            raise MisuseError(
                f"a unit of work waited on {waited!r}: it may await only object calls and "
                "queue sends"
            )

        return await sql.transaction_async(drive)

    return run


def open_local(
    db: str | os.PathLike[str] | None = None,
    *,
    settings: EnvSettings | None = None,
    strict_json: bool = False,
) -> tuple[Platform, LocalSql]:
    """The local platform on the database file `db` (created with its schema if new)."""
    settings = settings or EnvSettings()
    path = Path(db) if db is not None else default_db_path(settings)
    settings.overrides.setdefault("TRIGGER_DO_DB", str(path.resolve()))  # files beside it
    sql = LocalSql(path)
    init_schema(sql, schema_statements())
    clock = SystemClock()
    namespaces = {
        kind: LocalNamespace(sql, cls, strict_json=strict_json)
        for kind, cls in OBJECT_CLASSES.items()
    }
    platform = Platform(
        queue=LocalQueue(sql, RUN_QUEUE, clock, Doorbell(path)),  # workers woken at once
        objects=namespaces.__getitem__,
        blobs=FileBlobs(path.parent / "packets"),
        settings=settings,
        clock=clock,
        run_sync=thread_runner(),
        index_shards=1,
        timers=LocalTimers(sql),
        units=local_units(sql),
        changes=DataVersion(path),  # Realtime subscriptions' one watcher per process
    )
    if (settings.get("TRIGGER_DO_METRICS") or "on").lower() not in ("off", "0", "false"):
        from .meter import FileMeter, metrics_dir  # prometheus-client, only when counting

        platform.meter = FileMeter(metrics_dir(path), sql)
    tracing.configure(settings)  # on only if asked (OTEL_EXPORTER_OTLP_ENDPOINT, ...)
    return platform, sql
