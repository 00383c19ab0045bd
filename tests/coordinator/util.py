"""Measurements taken from the database: the runs' own timestamps, queue deliveries."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from trigger_do.platform.local.platform import open_local


def prepare_db(db: Path) -> None:
    """Create the schema, plus triggers that record every delivery of a run message and
    every run parked by a coordinator."""
    _, sql = open_local(db)
    sql.exec("CREATE TABLE IF NOT EXISTS test_deliveries (run_id TEXT, body TEXT)")
    sql.exec(
        "CREATE TRIGGER IF NOT EXISTS test_count_deliveries AFTER UPDATE OF attempts "
        "ON queue_messages WHEN json_extract(NEW.body, '$.run_id') IS NOT NULL BEGIN "
        "INSERT INTO test_deliveries (run_id, body) VALUES "
        "(json_extract(NEW.body, '$.run_id'), NEW.body); END"
    )
    sql.exec("CREATE TABLE IF NOT EXISTS test_parks (run_id TEXT)")
    sql.exec(
        "CREATE TRIGGER IF NOT EXISTS test_count_parks AFTER INSERT ON coord_parked "
        "BEGIN INSERT INTO test_parks (run_id) VALUES (NEW.run_id); END"
    )
    sql.close()


def rows(db: Path, query: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at any one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, delta in events:  # at equal times an end (-1) sorts before a start (+1)
        cur += delta
        best = max(best, cur)
    return best


def overlaps_by_key(db: Path, task: str) -> dict[str, int]:
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, start, end in rows(
        db,
        "SELECT concurrency_key, started_at, finished_at FROM runs WHERE task = ? "
        "AND started_at IS NOT NULL",
        task,
    ):
        by_key[key].append((start, end))
    return {k: max_overlap(v) for k, v in by_key.items()}


def max_starts_in_window(starts: list[float], period: float) -> int:
    """The most starts in any half-open window [t, t + period)."""
    starts = sorted(starts)
    best, j = 0, 0
    for i, s in enumerate(starts):
        while starts[j] <= s - period:
            j += 1
        best = max(best, i - j + 1)
    return best


def deliveries_per_run(db: Path, task: str) -> float:
    (n_runs,) = rows(db, "SELECT count(*) FROM runs WHERE task = ?", task)[0]
    (n,) = rows(
        db,
        "SELECT count(*) FROM test_deliveries WHERE run_id IN (SELECT id FROM runs WHERE task = ?)",
        task,
    )[0]
    return n / n_runs if n_runs else 0.0


def slots(db: Path) -> dict[str, int]:
    return {
        f"{q}|{k}": n
        for q, k, n in rows(db, "SELECT queue, key, count(*) FROM coord_slots GROUP BY queue, key")
    }
