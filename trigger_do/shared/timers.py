"""Timers: a due time for a key, owned by an engine object and written in that object's own
transaction (so a timer is set or cancelled atomically with the state it times).

The same table and SQL on both platforms. What differs is only how a due timer wakes its
object (the `Timers` port, `ports.py`): locally the runtime's supervisor asks the one
database which objects have timers due (`due_objects`) and calls `Engine.fire_timers` for
each; on Cloudflare each Durable Object's single alarm is kept at its earliest due time
(`next_due`) and fires it. Either way the object's `fire_timers(now)` takes its due keys
(`take_due`) and acts on them in its transaction.

Locally every object shares the one database file, so rows carry their object's kind and
name; on a Durable Object they are the same in every row.
"""

from __future__ import annotations

from ..ports import Sql

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS trigger_do_timers (
        kind TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL, due REAL NOT NULL,
        PRIMARY KEY (kind, name, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS trigger_do_timers_due ON trigger_do_timers(due)",
]


class TimedObject:
    """An engine object with timers: `KIND` names its class (its timers' `kind`), `name`
    the instance; `schema()` adds the timers' table to `OWN_SCHEMA`."""

    KIND: str
    OWN_SCHEMA: list[str] = []

    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.name = name
        self.timers = ObjectTimers(sql, self.KIND, name)

    @classmethod
    def schema(cls) -> list[str]:
        return cls.OWN_SCHEMA + SCHEMA


class ObjectTimers:
    """The timers of one object (`kind`, `name`), on its `Sql`; call inside its methods."""

    def __init__(self, sql: Sql, kind: str, name: str) -> None:
        self.sql = sql
        self.kind = kind
        self.name = name

    def set(self, key: str, due: float) -> None:
        """Set `key` due at `due` (epoch seconds), replacing any due time it had."""
        self.sql.exec(
            "INSERT INTO trigger_do_timers (kind, name, key, due) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, name, key) DO UPDATE SET due = excluded.due",
            self.kind,
            self.name,
            key,
            due,
        )

    def set_earliest(self, key: str, due: float) -> None:
        """Set `key` due at `due` unless it is already due earlier."""
        self.sql.exec(
            "INSERT INTO trigger_do_timers (kind, name, key, due) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, name, key) DO UPDATE SET due = min(due, excluded.due)",
            self.kind,
            self.name,
            key,
            due,
        )

    def cancel(self, key: str) -> None:
        self.sql.exec(
            "DELETE FROM trigger_do_timers WHERE kind = ? AND name = ? AND key = ?",
            self.kind,
            self.name,
            key,
        )

    def take_due(self, now: float) -> list[str]:
        """Remove and return the keys due at `now` (each fires once)."""
        rows = self.sql.exec(
            "DELETE FROM trigger_do_timers WHERE kind = ? AND name = ? AND due <= ? RETURNING key",
            self.kind,
            self.name,
            now,
        )
        return sorted(str(r[0]) for r in rows)

    def next_due(self) -> float | None:
        """The earliest due time of this object's timers (None: none set)."""
        (due,) = self.sql.exec(
            "SELECT min(due) FROM trigger_do_timers WHERE kind = ? AND name = ?",
            self.kind,
            self.name,
        )[0]
        return None if due is None else float(due)


def due_objects(sql: Sql, now: float) -> list[tuple[str, str]]:
    """The objects with a timer due at `now`, in a database holding many objects (local)."""
    rows = sql.exec(
        "SELECT DISTINCT kind, name FROM trigger_do_timers WHERE due <= ? ORDER BY kind, name",
        now,
    )
    return [(str(kind), str(name)) for kind, name in rows]
