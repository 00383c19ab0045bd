"""Object calls of methods marked `reads` (`ports.reads`) on the local platform: a read
transaction on a snapshot, beside the writes rather than in line with them: a poll of runs'
states answers while a worker holds the write lock, and a marked method that writes fails
loudly, having written nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from trigger_do.errors import MisuseError
from trigger_do.platform.local.database import LocalSql
from trigger_do.platform.local.objects import LocalNamespace
from trigger_do.platform.local.platform import open_local
from trigger_do.ports import READS, Sql, reads
from trigger_do.runs.index import RunIndexObject


class Counter:
    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.name = name

    def add(self, n: int) -> int:
        self.sql.exec(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET n = n + ?",
            self.name,
            n,
            n,
        )
        return self.value_now()

    def value_now(self) -> int:
        rows = self.sql.exec("SELECT n FROM counters WHERE name = ?", self.name)
        return int(rows[0][0]) if rows else 0

    @reads
    def value(self) -> int:
        return self.value_now()

    @reads
    def sneaky(self) -> int:
        return self.add(1)  # (marked wrongly: it writes)


def counters(path: Path) -> LocalNamespace:
    sql = LocalSql(path)
    sql.exec("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER)")
    return LocalNamespace(sql, Counter)


def held_write_lock(path: Path, seconds: float, ready: threading.Event) -> threading.Thread:
    """Another connection holding the write lock (a worker's long unit) for `seconds`."""

    def hold() -> None:
        sql = LocalSql(path)
        sql.transaction(lambda: (sql.exec("UPDATE counters SET n = n + 100"), ready.set(),
                                 time.sleep(seconds)))  # fmt: skip

    thread = threading.Thread(target=hold)
    thread.start()
    return thread


def test_a_read_answers_from_its_snapshot_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ns = counters(path)
    assert asyncio.run(ns.get("c").call("add", 5)) == 5
    ready = threading.Event()
    writer = held_write_lock(path, 1.0, ready)
    assert ready.wait(10)
    started = time.monotonic()
    assert asyncio.run(ns.get("c").call("value")) == 5  # what was committed: not the +100
    assert time.monotonic() - started < 0.5  # (it did not wait for the writer's second)
    writer.join()
    assert asyncio.run(ns.get("c").call("value")) == 105


def test_a_call_of_a_method_not_marked_waits_for_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ns = counters(path)
    asyncio.run(ns.get("c").call("add", 5))
    ready = threading.Event()
    writer = held_write_lock(path, 0.3, ready)
    assert ready.wait(10)
    assert asyncio.run(ns.get("c").call("add", 1)) == 106  # in line: after the writer's +100
    writer.join()


def test_a_method_marked_reads_that_writes_fails_and_writes_nothing(tmp_path: Path) -> None:
    ns = counters(tmp_path / "r.db")
    asyncio.run(ns.get("c").call("add", 5))
    with pytest.raises(MisuseError, match="marked `reads`"):
        asyncio.run(ns.get("c").call("sneaky"))
    assert asyncio.run(ns.get("c").call("value")) == 5
    assert asyncio.run(ns.get("c").call("add", 1)) == 6  # (the connection writes again)


def test_inside_a_unit_a_read_is_part_of_it(tmp_path: Path) -> None:
    """A read call within a unit of work sees the unit's own writes so far."""
    counters(tmp_path / "r.db")
    platform, sql = open_local(tmp_path / "r.db")
    ns = LocalNamespace(sql, Counter)

    async def unit() -> Any:
        await ns.get("c").call("add", 2)
        return await ns.get("c").call("value")

    assert platform.units is not None
    assert asyncio.run(platform.units(unit)) == 2


def test_run_state_polls_are_reads() -> None:
    for method in ("get", "get_many", "get_states", "list_runs", "get_batch"):
        assert getattr(getattr(RunIndexObject, method), READS, False), method
    assert not getattr(RunIndexObject.insert_runs, READS, False)
