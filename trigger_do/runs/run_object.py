"""A run's own object: checkpoints, durable steps and logs. Created only when a run
checkpoints, steps or logs; one object per run (locally, rows keyed by run id)."""

from __future__ import annotations

from typing import Any

from ..ports import Sql
from ..shared.serialization import loads
from ..shared.sqlbulk import json_chunks

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS checkpoints (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, data TEXT,
        attempt INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS steps (
        run_id TEXT NOT NULL, name TEXT NOT NULL, result TEXT, attempt INTEGER NOT NULL,
        at REAL NOT NULL, PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS logs (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL,
        attempt INTEGER NOT NULL, at REAL NOT NULL, extras TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
]


class RunObject:
    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.run_id = name

    @staticmethod
    def schema() -> list[str]:
        return SCHEMA

    def append(
        self,
        checkpoints: list[dict[str, Any]],
        steps: list[dict[str, Any]],
        logs: list[dict[str, Any]],
    ) -> None:
        """Write what an attempt produced since the last call, in order.
        checkpoint: `{name, data (JSON text), attempt, at}`; step: `{name, result, attempt,
        at}` (the first result of a step wins); log: `{level, message, attempt, at, extras}`."""
        rid = self.run_id
        if checkpoints:
            for chunk in json_chunks(checkpoints):
                self.sql.exec(
                    """INSERT INTO checkpoints (run_id, seq, name, data, attempt, at)
                    SELECT ?1, (SELECT coalesce(max(seq), 0) FROM checkpoints WHERE run_id = ?1)
                           + key + 1, value->>'name', value->>'data', value->>'attempt',
                           value->>'at'
                    FROM json_each(?2)""",
                    rid,
                    chunk,
                )
        if steps:
            for chunk in json_chunks(steps):
                self.sql.exec(
                    """INSERT OR IGNORE INTO steps (run_id, name, result, attempt, at)
                    SELECT ?1, value->>'name', value->>'result', value->>'attempt', value->>'at'
                    FROM json_each(?2)""",
                    rid,
                    chunk,
                )
        if logs:
            for chunk in json_chunks(logs):
                self.sql.exec(
                    """INSERT INTO logs (run_id, seq, level, message, attempt, at, extras)
                    SELECT ?1, (SELECT coalesce(max(seq), 0) FROM logs WHERE run_id = ?1)
                           + key + 1, value->>'level', value->>'message', value->>'attempt',
                           value->>'at', value->>'extras'
                    FROM json_each(?2)""",
                    rid,
                    chunk,
                )

    def state(self) -> dict[str, Any]:
        """Checkpoints (ordered) and step results, for resuming an attempt or a status."""
        cps = [
            {"name": n, "data": loads(d) if d is not None else None, "attempt": a, "at": at}
            for n, d, a, at in self.sql.exec(
                "SELECT name, data, attempt, at FROM checkpoints WHERE run_id = ? ORDER BY seq",
                self.run_id,
            )
        ]
        steps = {
            n: r
            for n, r in self.sql.exec(
                "SELECT name, result FROM steps WHERE run_id = ?", self.run_id
            )
        }
        return {"checkpoints": cps, "steps": steps}

    def logs(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return [
            {
                "seq": s,
                "level": lv,
                "message": m,
                "attempt": a,
                "at": at,
                "extras": loads(x) if x else {},
            }
            for s, lv, m, a, at, x in self.sql.exec(
                "SELECT seq, level, message, attempt, at, extras FROM logs WHERE run_id = ? "
                "AND seq > ? ORDER BY seq LIMIT ?",
                self.run_id,
                after,
                limit,
            )
        ]

    def finished(self, state: str) -> None:
        """The run ended while live-log subscribers watch it (the writer tells it once).
        On Cloudflare the Run Durable Object ends their streams (platform/cloudflare/
        entry.py takes this call); locally subscribers poll, so there is nothing to do."""

    def purge(self) -> None:
        for table in ("checkpoints", "steps", "logs"):
            self.sql.exec(f"DELETE FROM {table} WHERE run_id = ?", self.run_id)
