"""Assemble the local platform: the ports on one SQLite file and this process."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...coordinator.coordinator import CoordinatorObject
from ...ports import Platform
from ...runs.index import RunIndexObject
from ...runs.registry import RegistryObject
from ...runs.run_object import RunObject
from ...shared.timers import SCHEMA as TIMERS_SCHEMA
from ...shared.timers import due_objects
from .database import LocalSql, init_schema
from .objects import LocalNamespace
from .queue import SCHEMA as QUEUE_SCHEMA
from .queue import LocalQueue

RUN_QUEUE = "runs"
OBJECT_CLASSES: dict[str, type] = {
    "run-index": RunIndexObject,
    "run": RunObject,
    "registry": RegistryObject,
    "coordinator": CoordinatorObject,
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
    """Packets as files under the database's folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"invalid blob key {key!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.exists() else None

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


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


def open_local(
    db: str | os.PathLike[str] | None = None,
    *,
    settings: EnvSettings | None = None,
    strict_json: bool = False,
) -> tuple[Platform, LocalSql]:
    """The local platform on the database file `db` (created with its schema if new)."""
    settings = settings or EnvSettings()
    path = Path(db) if db is not None else default_db_path(settings)
    sql = LocalSql(path)
    init_schema(sql, schema_statements())
    clock = SystemClock()
    namespaces = {
        kind: LocalNamespace(sql, cls, strict_json=strict_json)
        for kind, cls in OBJECT_CLASSES.items()
    }
    platform = Platform(
        queue=LocalQueue(sql, RUN_QUEUE, clock),
        objects=namespaces.__getitem__,
        blobs=FileBlobs(path.parent / "packets"),
        settings=settings,
        clock=clock,
        run_sync=thread_runner(),
        index_shards=1,
        timers=LocalTimers(sql),
    )
    return platform, sql
