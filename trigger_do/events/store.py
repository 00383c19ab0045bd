"""The event store: one object (`events`) holding every event sent and every webhook
delivery accepted, with the runs each started. Calls run in one transaction each.

An event is claimed before its fan-out (`claim`) and completed after (`complete`). Its key
(`<source>:<id>`, live for 24 hours in `event_keys`: deduplication is data) makes a resend
within the window find the first event; a claim whose sender died before completing it
stays `pending`, and a resend (or housekeeping) fans it out again: each run's idempotency
key names the event, so no run is made twice. Events are kept as long as runs (`purge`)
and found by name and time (`lookup`: what a run waiting for an event reads)."""

from __future__ import annotations

from typing import Any

from ..ports import Sql
from ..shared.rows import RowReader
from ..shared.serialization import dumps
from ..shared.timers import SCHEMA as TIMERS_SCHEMA

DEDUP_WINDOW = 24 * 3600.0  # seconds an event id (a delivery id) deduplicates
FOREVER = 1e18  # a bound past any instant (Durable Objects bind no infinity)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        uid TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        names TEXT NOT NULL DEFAULT '[]',
        source TEXT,
        payload TEXT,
        payload_packet TEXT,
        runs TEXT,
        status TEXT NOT NULL,
        replay_of TEXT,
        created_at REAL NOT NULL,
        completed_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS events_created ON events(created_at, uid)",
    "CREATE INDEX IF NOT EXISTS events_name ON events(name, created_at)",
    "CREATE INDEX IF NOT EXISTS events_id ON events(id, created_at)",
    "CREATE INDEX IF NOT EXISTS events_pending ON events(created_at) WHERE status = 'pending'",
    """CREATE TABLE IF NOT EXISTS event_keys (
        key TEXT PRIMARY KEY, uid TEXT NOT NULL, expires_at REAL NOT NULL
    ) WITHOUT ROWID""",
]

COLUMNS = (
    "uid, id, name, names, source, payload, payload_packet, runs, status, replay_of, "
    "created_at, completed_at"
)
_row = RowReader(COLUMNS, json=("names", "runs"), real=("created_at", "completed_at"))


def key_of(source: str | None, event_id: str) -> str:
    """An event's deduplication key: a source name holds no `:`."""
    return f"{source or ''}:{event_id}"


class EventStoreObject:
    """Every event and webhook delivery, with its runs (one object: `events`)."""

    KIND = "events"
    NAME = "events"

    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql

    @staticmethod
    def schema() -> list[str]:
        return SCHEMA + TIMERS_SCHEMA  # an object with a KIND may own timers (none yet)

    def claim(self, event: dict[str, Any], now: float) -> dict[str, Any]:
        """Record `event` (`{uid, id, name, names, source, payload, payload_packet,
        replay_of}`) unless its key is live: then the event holding it is returned instead.
        Returns `{fresh, event}`."""
        key = key_of(event.get("source"), event["id"])
        live = self.sql.exec(
            "SELECT uid FROM event_keys WHERE key = ? AND expires_at > ?", key, now
        )
        if live:
            found = self.get_uid(live[0][0])
            if found is not None:
                return {"fresh": False, "event": found}
        self.sql.exec(
            f"INSERT INTO events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,NULL,'pending',?,?,NULL)",
            event["uid"],
            event["id"],
            event["name"],
            dumps(event.get("names") or [event["name"]]),
            event.get("source"),
            event.get("payload"),
            event.get("payload_packet"),
            event.get("replay_of"),
            now,
        )
        self.sql.exec(
            "INSERT OR REPLACE INTO event_keys (key, uid, expires_at) VALUES (?, ?, ?)",
            key,
            event["uid"],
            now + DEDUP_WINDOW,
        )
        return {"fresh": True, "event": self.get_uid(event["uid"])}

    def complete(self, uid: str, runs: list[str], now: float) -> None:
        """The runs the event started (in its subscribers' order): it is delivered."""
        self.sql.exec(
            "UPDATE events SET runs = ?, status = 'delivered', completed_at = ? WHERE uid = ?",
            dumps(runs),
            now,
            uid,
        )

    def get_uid(self, uid: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {COLUMNS} FROM events WHERE uid = ?", uid)
        return _row(rows[0]) if rows else None

    def get(self, event_id: str, source: str | None = None) -> dict[str, Any] | None:
        """The newest event with this id from `source` (None: a custom event)."""
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM events WHERE id = ? AND source IS ? "
            "ORDER BY created_at DESC, uid DESC LIMIT 1",
            event_id,
            source,
        )
        return _row(rows[0]) if rows else None

    def find_delivery(self, delivery_id: str, source: str | None) -> dict[str, Any] | None:
        """The newest webhook delivery with this id (from `source`, else from any)."""
        if source is not None:
            return self.get(delivery_id, source)
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM events WHERE id = ? AND source IS NOT NULL "
            "ORDER BY created_at DESC, uid DESC LIMIT 1",
            delivery_id,
        )
        return _row(rows[0]) if rows else None

    def page(
        self,
        *,
        webhooks: bool = False,
        name: str | None = None,
        source: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: list[Any] | None = None,
        limit: int = 25,
    ) -> list[dict[str, Any]]:
        """Newest first, keyset-paginated on (created_at, uid): `after` is the last row seen.
        Custom events, or (`webhooks`) deliveries, of one `source` if given."""
        where = ["source IS NOT NULL" if webhooks else "source IS NULL"]
        params: list[Any] = []
        for cond, value in (
            ("name = ?", name),
            ("source = ?", source),
            ("created_at >= ?", created_from),
            ("created_at <= ?", created_to),
        ):
            if value is not None:
                where.append(cond)
                params.append(value)
        if after:
            where.append("(created_at, uid) < (?, ?)")
            params += after
        sql = (
            f"SELECT {COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, uid DESC LIMIT ?"
        )
        return [_row(r) for r in self.sql.exec(sql, *params, limit)]

    def lookup(
        self, name: str, since: float, until: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The custom events named `name` sent from `since` to `until`, oldest first: what a
        run waiting for an event reads."""
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM events WHERE name = ? AND source IS NULL "
            "AND created_at >= ? AND created_at <= ? ORDER BY created_at, uid LIMIT ?",
            name,
            since,
            FOREVER if until is None else until,
            limit,
        )
        return [_row(r) for r in rows]

    def pending(self, before: float, limit: int = 100) -> list[dict[str, Any]]:
        """Events claimed before `before` whose fan-out was never completed (their sender
        died between the claim and its runs): housekeeping completes them."""
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM events WHERE status = 'pending' AND created_at < ? "
            "ORDER BY created_at LIMIT ?",
            before,
            limit,
        )
        return [_row(r) for r in rows]

    def purge(self, before: float, now: float, limit: int = 500) -> dict[str, Any]:
        """Forget events created before `before` (the runs' retention) and keys past their
        window. Returns `{purged, packets, more}`: the payload packets to delete."""
        rows = self.sql.exec(
            "DELETE FROM events WHERE uid IN (SELECT uid FROM events WHERE created_at < ? "
            "ORDER BY created_at LIMIT ?) RETURNING payload_packet",
            before,
            limit,
        )
        self.sql.exec("DELETE FROM event_keys WHERE expires_at <= ?", now)
        return {
            "purged": len(rows),
            "packets": [p for (p,) in rows if p],
            "more": len(rows) == limit,
        }
