"""The coordinator's tables and the in-memory views its calls work with: the queue's row,
the slot counts, and the heads of the parked lines."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..ports import Sql
from ..shared.sqlbulk import json_chunks
from . import windows

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS coord_queues (
        queue TEXT PRIMARY KEY,
        clock REAL NOT NULL DEFAULT 0,
        paused INTEGER NOT NULL DEFAULT 0,
        limit_override INTEGER,
        spec TEXT NOT NULL DEFAULT '{}',
        alarm_at REAL,
        rr_key TEXT,
        seq INTEGER NOT NULL DEFAULT 0,
        lease REAL NOT NULL DEFAULT 30
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS coord_slots (
        queue TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, task TEXT,
        rate_id TEXT, state TEXT NOT NULL, lease_until REAL NOT NULL, granted_at REAL NOT NULL,
        PRIMARY KEY (queue, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS coord_slots_key ON coord_slots(queue, key)",
    "CREATE INDEX IF NOT EXISTS coord_slots_lease ON coord_slots(queue, lease_until)",
    """CREATE TABLE IF NOT EXISTS coord_parked (
        queue TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, task TEXT,
        rate_id TEXT, seq INTEGER NOT NULL, body TEXT NOT NULL, parked_at REAL NOT NULL,
        handed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (queue, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS coord_parked_head ON coord_parked(queue, key, handed, seq)",
    """CREATE TABLE IF NOT EXISTS coord_keys (
        queue TEXT NOT NULL, key TEXT NOT NULL, waiting INTEGER NOT NULL,
        PRIMARY KEY (queue, key)
    ) WITHOUT ROWID""",
    *windows.SCHEMA,
]

ALARM_GRACE = 5.0  # an alarm this overdue is assumed lost: the next call sets it again


class Counts(list[Any]):
    """`[slots per key, slots in all, rate tickets per rate id, parked runs waiting per key]`
    (a list: a pump inside `acquire` updates what `acquire` goes on deciding with)."""


@dataclass
class QueueState:
    name: str
    clock: float = 0.0
    paused: bool = False
    limit_override: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    alarm_at: float | None = None
    rr_key: str | None = None
    seq: int = 0
    lease: float = 30.0

    @property
    def limit(self) -> int | None:
        if self.limit_override is not None:
            return self.limit_override
        value = self.spec.get("queue_limit")
        return int(value) if value is not None else None

    def task_spec(self, task: str | None) -> dict[str, Any]:
        found: dict[str, Any] = self.spec.get("tasks", {}).get(task or "", {})
        return found


def rate_id_of(task: str | None, rate_key: str | None) -> str:
    return f"{task or ''}|{rate_key or ''}"


class Heads:
    """The parked runs at the head of each key's line, read in bulk: one query fetches the
    next few of every key that ran out (a window per key), doubling each time a key needs
    more, so a pump costs a few queries however long the lines are."""

    def __init__(self, sql: Sql, queue: str, room: dict[str, int]) -> None:
        self.sql = sql
        self.queue = queue
        self.room = room  # at most how many each key can be handed back now
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.pos: dict[str, int] = defaultdict(int)
        self.used: dict[str, int] = defaultdict(int)
        self.after: dict[str, int] = {}  # the last seq read per key
        self.size = 8
        self.done: set[str] = set()  # keys whose whole line was read

    def empty(self, key: str) -> bool:
        return key not in self.done and self.pos[key] >= len(self.rows[key])

    def fetch(self, keys: list[str]) -> None:
        if not keys:
            return
        size = self.size
        self.size = min(self.size * 2, 512)
        n = {k: max(1, min(size, self.room[k] - self.used[k])) for k in keys}
        asked = [[k, self.after.get(k, -1)] for k in keys]
        got: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for chunk in json_chunks(asked):
            for key, seq, run_id, task, rate_id, body in self.sql.exec(
                # per key: the seq of its n-th next run bounds an index range scan
                "WITH a AS MATERIALIZED (SELECT value->>0 AS key, value->>1 AS after, "
                "coalesce((SELECT x.seq FROM coord_parked AS x WHERE x.queue = ?1 "
                "AND x.key = value->>0 AND x.handed = 0 AND x.seq > value->>1 "
                "ORDER BY x.seq LIMIT 1 OFFSET ?3 - 1), 9e18) AS upto FROM json_each(?2)) "
                "SELECT p.key, p.seq, p.run_id, p.task, p.rate_id, p.body FROM a "
                "JOIN coord_parked AS p ON p.queue = ?1 AND p.key = a.key AND p.handed = 0 "
                "AND p.seq > a.after AND p.seq <= a.upto ORDER BY p.key, p.seq",
                self.queue,
                chunk,
                max(n.values()),
            ):
                if len(got[key]) < n[key]:  # (LIMIT takes no column: the most, then trim)
                    got[key].append((run_id, task, rate_id, body))
                    self.after[key] = seq
        for key in keys:
            rows = got.get(key, [])
            self.rows[key] = rows
            self.pos[key] = 0
            if len(rows) < n[key]:
                self.done.add(key)

    def peek(self, key: str) -> tuple[Any, ...] | None:
        rows, i = self.rows[key], self.pos[key]
        return rows[i] if i < len(rows) else None

    def pop(self, key: str) -> None:
        self.pos[key] += 1
        self.used[key] += 1
