"""The task registry: which tasks the running consumers serve (so code that does not import
a task can trigger it by id), and queue settings."""

from __future__ import annotations

from typing import Any

from ..ports import Sql
from ..shared.sqlbulk import json_chunks

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, module TEXT, queue TEXT, options TEXT NOT NULL DEFAULT '{}',
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
]


class RegistryObject:
    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql

    @staticmethod
    def schema() -> list[str]:
        return SCHEMA

    def register(self, tasks: list[dict[str, Any]], now: float) -> None:
        for chunk in json_chunks(tasks):
            self.sql.exec(
                """INSERT OR REPLACE INTO tasks (id, module, queue, options, updated_at)
                SELECT value->>'id', value->>'module', value->>'queue',
                       coalesce(value->>'options', '{}'), ? FROM json_each(?)""",
                now,
                chunk,
            )

    def subscriptions(self) -> list[dict[str, Any]]:
        """The registered tasks that events or webhooks start: `{id, event, source}`."""
        return [
            {"id": i, "event": e, "source": s}
            for i, e, s in self.sql.exec(
                "SELECT id, options->>'event', options->>'source' FROM tasks "
                "WHERE options->>'event' IS NOT NULL OR options->>'source' IS NOT NULL "
                "ORDER BY id"
            )
        ]

    def list(self) -> list[dict[str, Any]]:
        return [
            {"id": i, "module": m, "queue": q}
            for i, m, q in self.sql.exec("SELECT id, module, queue FROM tasks ORDER BY id")
        ]
