"""The wait-token store: one object per shard (`waitpoints`, `shard-0` .. `shard-{n-1}`, as
many as the run index has), holding Trigger.dev's waitpoint tokens, their idempotency keys,
their timeout timers and what waits on each.

A token lives on the shard its id names (`shared.ids.shard_of`); a token made with an
idempotency key is given an id on the key's shard, so the key's unique row sits beside it
and a repeat finds it in one call (idempotency is data: the key is the table's primary key).

Completing a token (by the API, its callback URL or its timeout) writes its output once: a
second completion changes nothing. Whatever waits on it is a *waiter* (a waitpoint id, e.g.
`run_...:3` for a run's third wait); completing the token hands back its waiters, and they
stay recorded until `delivered` says each was told, so a completion whose delivery was cut
short (a process died) is delivered again (`undelivered`); a waiter told twice is a no-op on
its side. Methods run in one transaction each and take and return JSON-native values.
"""

from __future__ import annotations

from typing import Any

from ..shared.rows import RowReader
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from ..shared.timers import TimedObject

WAITING, COMPLETED, TIMED_OUT = "WAITING", "COMPLETED", "TIMED_OUT"
STATUSES = (WAITING, COMPLETED, TIMED_OUT)
TIMEOUT_CODE = "TRIGGER_WAITPOINT_TIMEOUT"
FIRE_LIMIT = 1000  # tokens timed out per timer call (a backlog: the timer fires again)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS waitpoint_tokens (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        idempotency_key TEXT,
        idempotency_key_expires_at REAL,
        timeout_at REAL,
        tags TEXT NOT NULL DEFAULT '[]',
        output TEXT,
        output_is_error INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        completed_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS waitpoint_tokens_created ON waitpoint_tokens(created_at, id)",
    # a live idempotency key names one token (an expired one is replaced by the next create)
    """CREATE TABLE IF NOT EXISTS waitpoint_token_keys (
        key TEXT PRIMARY KEY, token_id TEXT NOT NULL, expires_at REAL
    ) WITHOUT ROWID""",
    # a token completed by the first event named `name` whose fields equal `match` (on the
    # event name's shard: a send reads one shard)
    """CREATE TABLE IF NOT EXISTS waitpoint_event_waits (
        token_id TEXT PRIMARY KEY, name TEXT NOT NULL, match TEXT NOT NULL,
        since REAL NOT NULL, created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS waitpoint_event_waits_name ON waitpoint_event_waits(name)",
    # what waits on a token (a waitpoint id), until told of its completion
    """CREATE TABLE IF NOT EXISTS waitpoint_token_waiters (
        token_id TEXT NOT NULL, waitpoint TEXT NOT NULL, created_at REAL NOT NULL,
        PRIMARY KEY (token_id, waitpoint)
    ) WITHOUT ROWID""",
]

COLUMNS = (
    "id, status, idempotency_key, idempotency_key_expires_at, timeout_at, tags, output, "
    "output_is_error, created_at, completed_at"
)
_read = RowReader(
    COLUMNS,
    real=("idempotency_key_expires_at", "timeout_at", "created_at", "completed_at"),
    flags=("output_is_error",),
)


def timer_key(token_id: str) -> str:
    return f"timeout:{token_id}"


def timeout_output(timeout_at: float) -> dict[str, str]:
    """Trigger.dev's timeout error (`timeoutError` in @trigger.dev/core): the output of a
    token that timed out, with the instant it was due in JavaScript's ISO form."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(timeout_at, tz=UTC).isoformat(timespec="milliseconds")
    return {"code": TIMEOUT_CODE, "message": f"Waitpoint timed out at {when[:-6]}Z"}


def _record(row: tuple[Any, ...]) -> dict[str, Any]:
    out = _read(row)
    out["tags"] = loads(out["tags"]) if out["tags"] else []
    return out


class TokenStoreObject(TimedObject):
    """One shard of wait tokens."""

    KIND = "waitpoints"
    OWN_SCHEMA = SCHEMA

    # --- reads -----------------------------------------------------------------------------

    def get(self, token_id: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {COLUMNS} FROM waitpoint_tokens WHERE id = ?", token_id)
        return _record(rows[0]) if rows else None

    def list_tokens(
        self,
        limit: int,
        statuses: list[str] | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: list[Any] | None = None,
        before: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first (by `(created_at, id)`), up to `limit`: those older than `after`, or
        the `limit` nearest newer than `before` (still newest first). `tags`: any of them."""
        where: list[str] = []
        params: list[Any] = []
        if statuses:
            where.append("status IN (SELECT value FROM json_each(?))")
            params.append(dumps(statuses))
        if idempotency_key is not None:
            where.append("idempotency_key = ?")
            params.append(idempotency_key)
        if tags:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(waitpoint_tokens.tags) t "
                "WHERE t.value IN (SELECT value FROM json_each(?)))"
            )
            params.append(dumps(tags))
        if created_from is not None:
            where.append("created_at >= ?")
            params.append(created_from)
        if created_to is not None:
            where.append("created_at <= ?")
            params.append(created_to)
        order = "DESC"
        if after is not None:
            where.append("(created_at, id) < (?, ?)")
            params += [float(after[0]), str(after[1])]
        elif before is not None:
            where.append("(created_at, id) > (?, ?)")
            params += [float(before[0]), str(before[1])]
            order = "ASC"
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM waitpoint_tokens {clause} "
            f"ORDER BY created_at {order}, id {order} LIMIT ?",
            *params,
            limit,
        )
        found = [_record(r) for r in rows]
        return found if order == "DESC" else found[::-1]

    # --- writes ----------------------------------------------------------------------------

    def create(self, spec: dict[str, Any], now: float) -> dict[str, Any]:
        """A token from `spec` (`{id, idempotency_key?, idempotency_key_expires_at?,
        timeout_at?, tags}`, checked by the caller). With a live idempotency key already
        held: that token instead (completed or not). Returns `{token, cached}`."""
        key = spec.get("idempotency_key")
        if key is not None:
            held = self.sql.exec(
                "SELECT token_id, expires_at FROM waitpoint_token_keys WHERE key = ?", key
            )
            if held and (held[0][1] is None or float(held[0][1]) > now):
                found = self.get(str(held[0][0]))
                if found is not None:
                    return {"token": found, "cached": True}
            self.sql.exec(
                "INSERT INTO waitpoint_token_keys (key, token_id, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET token_id = excluded.token_id, "
                "expires_at = excluded.expires_at",
                key,
                spec["id"],
                spec.get("idempotency_key_expires_at"),
            )
        self.sql.exec(
            "INSERT INTO waitpoint_tokens (id, status, idempotency_key, "
            "idempotency_key_expires_at, timeout_at, tags, created_at) "
            "VALUES (?, 'WAITING', ?, ?, ?, ?, ?)",
            spec["id"],
            key,
            spec.get("idempotency_key_expires_at") if key is not None else None,
            spec.get("timeout_at"),
            dumps(list(spec.get("tags") or [])),
            now,
        )
        if spec.get("timeout_at") is not None:
            self.timers.set(timer_key(spec["id"]), float(spec["timeout_at"]))
        token = self.get(spec["id"])
        return {"token": token, "cached": False}

    def complete(self, token_id: str, output: str, now: float) -> dict[str, Any]:
        """Complete a waiting token with `output` (JSON text). Returns `{found, completed,
        token, waiters}`: `completed` false if it was already complete (nothing changes);
        `waiters`: the waitpoints to tell (every one not yet told, however it completed)."""
        return self._complete(token_id, COMPLETED, output, False, now)

    def _complete(
        self, token_id: str, status: str, output: str, is_error: bool, now: float
    ) -> dict[str, Any]:
        changed = self.sql.exec(
            "UPDATE waitpoint_tokens SET status = ?, output = ?, output_is_error = ?, "
            "completed_at = ? WHERE id = ? AND status = 'WAITING' RETURNING id",
            status,
            output,
            1 if is_error else 0,
            now,
            token_id,
        )
        if changed:
            self.timers.cancel(timer_key(token_id))
        token = self.get(token_id)
        if token is None:
            return {"found": False, "completed": False, "token": None, "waiters": []}
        return {
            "found": True,
            "completed": bool(changed),
            "token": token,
            "waiters": self.waiters(token_id),
        }

    def waiters(self, token_id: str) -> list[str]:
        """The waitpoints waiting on the token, not yet told."""
        return [
            str(r[0])
            for r in self.sql.exec(
                "SELECT waitpoint FROM waitpoint_token_waiters WHERE token_id = ? "
                "ORDER BY created_at, waitpoint",
                token_id,
            )
        ]

    def add_waiter(self, token_id: str, waitpoint: str, now: float) -> dict[str, Any] | None:
        """Record that `waitpoint` waits on the token (again: no change). Returns the token
        (None: no such token); if it is complete already, the caller completes the
        waitpoint itself, and nothing is recorded."""
        token = self.get(token_id)
        if token is None or token["status"] != WAITING:
            return token
        self.sql.exec(
            "INSERT OR IGNORE INTO waitpoint_token_waiters (token_id, waitpoint, created_at) "
            "VALUES (?, ?, ?)",
            token_id,
            waitpoint,
            now,
        )
        return token

    def delivered(self, pairs: list[list[str]]) -> int:
        """Forget `[token_id, waitpoint]` waiters that were told of their token's completion."""
        done = 0
        for chunk in json_chunks(pairs):
            done += len(
                self.sql.exec(
                    "DELETE FROM waitpoint_token_waiters WHERE (token_id, waitpoint) IN "
                    "(SELECT value->>0, value->>1 FROM json_each(?)) RETURNING token_id",
                    chunk,
                )
            )
        return done

    def undelivered(self, created_before: float, limit: int) -> list[dict[str, Any]]:
        """Completed tokens with waiters still untold (a delivery cut short), waiters
        recorded before `created_before`: `{token, waiters}` each."""
        ids = [
            str(r[0])
            for r in self.sql.exec(
                "SELECT DISTINCT w.token_id FROM waitpoint_token_waiters w "
                "JOIN waitpoint_tokens t ON t.id = w.token_id "
                "WHERE t.status != 'WAITING' AND w.created_at < ? LIMIT ?",
                created_before,
                limit,
            )
        ]
        out = []
        for token_id in ids:
            token = self.get(token_id)
            if token is not None:
                out.append({"token": token, "waiters": self.waiters(token_id)})
        return out

    # --- event waits: tokens an event completes --------------------------------------------

    def add_event_wait(
        self, token_id: str, name: str, match: str, since: float, now: float
    ) -> None:
        """The token `token_id` completes with the first event named `name` sent from
        `since` on whose fields equal `match` (JSON text of `{dotted path: value}`)."""
        self.sql.exec(
            "INSERT OR IGNORE INTO waitpoint_event_waits (token_id, name, match, since, "
            "created_at) VALUES (?, ?, ?, ?, ?)",
            token_id,
            name,
            match,
            since,
            now,
        )

    def event_waits(self, name: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Open event waits (for `name`, or every one, oldest first): `{token_id, name,
        match, since}` each, `match` decoded."""
        rows = self.sql.exec(
            "SELECT token_id, name, match, since FROM waitpoint_event_waits "
            + ("WHERE name = ? " if name is not None else "")
            + "ORDER BY created_at LIMIT ?",
            *((name,) if name is not None else ()),
            limit,
        )
        return [
            {"token_id": t, "name": n, "match": loads(m), "since": float(since)}
            for t, n, m, since in rows
        ]

    def drop_event_waits(self, token_ids: list[str]) -> int:
        """Forget event waits whose tokens completed (by an event or otherwise)."""
        done = 0
        for chunk in json_chunks(token_ids):
            done += len(
                self.sql.exec(
                    "DELETE FROM waitpoint_event_waits WHERE token_id IN "
                    "(SELECT value FROM json_each(?)) RETURNING token_id",
                    chunk,
                )
            )
        return done

    # --- timers ----------------------------------------------------------------------------

    def fire_timers(self, now: float) -> dict[str, Any]:
        """Time out the waiting tokens due at `now`: each completes TIMED_OUT with the
        TRIGGER_WAITPOINT_TIMEOUT error. Returns `{completed: [{token, waiters}], more}`."""
        keys = self.timers.take_due(now)
        more = len(keys) > FIRE_LIMIT
        for key in keys[FIRE_LIMIT:]:  # left for the next call, due at once
            self.timers.set(key, now)
        out: list[dict[str, Any]] = []
        for key in keys[:FIRE_LIMIT]:
            token_id = key.removeprefix("timeout:")
            token = self.get(token_id)
            if token is None or token["status"] != WAITING or token["timeout_at"] is None:
                continue
            output = dumps(timeout_output(token["timeout_at"]))
            res = self._complete(token_id, TIMED_OUT, output, True, now)
            if res["completed"]:
                out.append({"token": res["token"], "waiters": res["waiters"]})
        return {"completed": out, "more": more}

    def next_due(self) -> float | None:
        return self.timers.next_due()
