"""The run index's part in bulk actions (cancel or replay many runs; `trigger_do/bulk.py`
drives them).

Two tables. `bulk_actions` holds each action's record, on shard 0 only: its selection
(run ids, or run-index filters), status, counts, a cursor, the chunk in flight and the
lease of whoever is processing it. Every write names the lease token it holds, so a
processor that lost its lease changes nothing. `bulk_action_runs` is on every shard: the
runs an action marked (the runs it canceled or tried to, the runs its replays created),
beside the runs, so that `list_runs(bulk_action=...)` filters by it and a chunk applied
twice (a crash between applying it and recording it) gives the same outcomes twice.
"""

from __future__ import annotations

from typing import Any

from ..shared.rows import RowReader
from ..shared.serialization import dumps
from ..shared.sqlbulk import json_chunks
from .index_control import ControlWrites
from .index_filters import run_filter_sql

BULK_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bulk_actions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT,
        run_ids TEXT,
        filters TEXT,
        request_key TEXT UNIQUE,
        status TEXT NOT NULL,
        total INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        cursor TEXT,
        pending TEXT,
        chunks INTEGER NOT NULL DEFAULT 0,
        interruptions INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        lease_token TEXT,
        lease_until REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        completed_at REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS bulk_actions_open ON bulk_actions(status) "
    "WHERE status IN ('pending', 'running')",
    """CREATE TABLE IF NOT EXISTS bulk_action_runs (
        bulk_id TEXT NOT NULL, run_id TEXT NOT NULL, outcome TEXT NOT NULL,
        PRIMARY KEY (bulk_id, run_id)
    ) WITHOUT ROWID""",
]

OPEN = ("pending", "running")  # an action still to process; completed and aborted are final

_COLUMNS = (
    "id, kind, name, json_array_length(run_ids), filters, status, total, succeeded, failed, "
    "cursor, pending, chunks, interruptions, error, lease_until, created_at, updated_at, "
    "completed_at"
)
_NAMES = [
    "id", "kind", "name", "run_count", "filters", "status", "total", "succeeded", "failed",
    "cursor", "pending", "chunks", "interruptions", "error", "lease_until", "created_at",
    "updated_at", "completed_at",
]  # fmt: skip
_record = RowReader(
    ", ".join(_NAMES),
    json=("filters", "cursor", "pending"),
    real=("lease_until", "created_at", "updated_at", "completed_at"),
)


class BulkWrites(ControlWrites):
    """Cancel reuses `ControlWrites.cancel`, run by run, inside one transaction per call."""

    # --- the action's record (shard 0) -------------------------------------------------------

    def _bulk_row(self, bulk_id: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {_COLUMNS} FROM bulk_actions WHERE id = ?", bulk_id)
        return _record(rows[0]) if rows else None

    def bulk_create(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        """Record a new action: `{id, kind, name?, run_ids? | filters?, total, request_key?}`.
        With a `request_key` already used (a retried create), the action it made, unchanged."""
        key = action.get("request_key")
        if key:
            found = self.sql.exec("SELECT id FROM bulk_actions WHERE request_key = ?", key)
            if found:
                return {**(self._bulk_row(found[0][0]) or {}), "cached": True}
        ids, filters = action.get("run_ids"), action.get("filters")
        self.sql.exec(
            """INSERT INTO bulk_actions (id, kind, name, run_ids, filters, request_key, status,
                total, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)""",
            action["id"],
            action["kind"],
            action.get("name"),
            dumps(ids) if ids is not None else None,
            dumps(filters) if filters is not None else None,
            key,
            action["total"],
            now,
            now,
        )
        return {**(self._bulk_row(action["id"]) or {}), "cached": False}

    def bulk_get(self, bulk_id: str) -> dict[str, Any] | None:
        return self._bulk_row(bulk_id)

    def bulk_list(
        self, limit: int = 25, after: str | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first (ids sort by creation): `after` an id, older ones follow; `before`
        an id, the newer ones just above it (still newest first)."""
        if before:
            rows = self.sql.exec(
                f"SELECT {_COLUMNS} FROM bulk_actions WHERE id > ? ORDER BY id LIMIT ?",
                before,
                limit,
            )
            return [_record(r) for r in reversed(rows)]
        if after:
            rows = self.sql.exec(
                f"SELECT {_COLUMNS} FROM bulk_actions WHERE id < ? ORDER BY id DESC LIMIT ?",
                after,
                limit,
            )
        else:
            rows = self.sql.exec(
                f"SELECT {_COLUMNS} FROM bulk_actions ORDER BY id DESC LIMIT ?", limit
            )
        return [_record(r) for r in rows]

    def bulk_run_ids(self, bulk_id: str, start: int, count: int) -> list[str]:
        """`count` of an id-selected action's run ids from position `start`."""
        return [
            str(r[0])
            for r in self.sql.exec(
                "SELECT j.value FROM bulk_actions a, json_each(a.run_ids) j WHERE a.id = ? "
                "AND j.key >= ? ORDER BY j.key LIMIT ?",
                bulk_id,
                start,
                count,
            )
        ]

    def bulk_open(self) -> list[str]:
        """Ids of the actions still to process (pending or running), oldest first."""
        return [
            str(r[0])
            for r in self.sql.exec(
                "SELECT id FROM bulk_actions WHERE status IN ('pending', 'running') ORDER BY id"
            )
        ]

    def bulk_claim(
        self, bulk_id: str, token: str, now: float, lease_seconds: float, max_interruptions: int
    ) -> dict[str, Any]:
        """Take the lease to process an open action. Returns `{claimed, action}`: not
        claimed if there is no such action, it is final, or another holder's lease is live.
        A lease that ran out without being released means its holder died: that counts as
        an interruption, and past `max_interruptions` the action ends ABORTED, saying why."""
        action = self._bulk_row(bulk_id)
        if action is None or action["status"] not in OPEN:
            return {"claimed": False, "action": action}
        until = action["lease_until"]
        if until is not None and until > now:
            return {"claimed": False, "action": action}
        interruptions = action["interruptions"] + (1 if until is not None else 0)
        if interruptions > max_interruptions:
            self.sql.exec(
                """UPDATE bulk_actions SET status = 'aborted', interruptions = ?, error = ?,
                    lease_token = NULL, lease_until = NULL, updated_at = ?, completed_at = ?
                WHERE id = ?""",
                interruptions,
                f"aborted: its processing was interrupted {interruptions} times"
                + (f" (last error: {action['error']})" if action["error"] else ""),
                now,
                now,
                bulk_id,
            )
            return {"claimed": False, "action": self._bulk_row(bulk_id)}
        self.sql.exec(
            """UPDATE bulk_actions SET status = 'running', interruptions = ?, lease_token = ?,
                lease_until = ?, updated_at = ? WHERE id = ?""",
            interruptions,
            token,
            now + lease_seconds,
            now,
            bulk_id,
        )
        return {"claimed": True, "action": self._bulk_row(bulk_id)}

    def bulk_begin_chunk(
        self,
        bulk_id: str,
        token: str,
        run_ids: list[str],
        cursor: Any,
        now: float,
        lease_seconds: float,
    ) -> str | None:
        """Write down the chunk about to be applied (its run ids, and the cursor past it),
        renewing the lease: a holder that dies before `bulk_advance` leaves it for the next
        one to apply again. Returns the action's status (None: the lease is not ours)."""
        rows = self.sql.exec(
            """UPDATE bulk_actions SET pending = ?, lease_until = ?, updated_at = ?
            WHERE id = ? AND lease_token = ? RETURNING status""",
            dumps({"run_ids": run_ids, "cursor": cursor}),
            now + lease_seconds,
            now,
            bulk_id,
            token,
        )
        return str(rows[0][0]) if rows else None

    def bulk_advance(
        self,
        bulk_id: str,
        token: str,
        cursor: Any,
        succeeded: int,
        failed: int,
        done: bool,
        now: float,
        lease_seconds: float,
    ) -> str | None:
        """Record the applied chunk: add its counts, move the cursor past it (`cursor`);
        `done` (nothing left to select) completes the action, its total now the runs it
        acted on. An action aborted meanwhile keeps its status but still counts the chunk.
        Returns the status (None: the lease is not ours, nothing changed)."""
        rows = self.sql.exec(
            """UPDATE bulk_actions SET succeeded = succeeded + ?1, failed = failed + ?2,
                cursor = coalesce(?8, cursor), pending = NULL,
                chunks = chunks + (pending IS NOT NULL), updated_at = ?3,
                lease_until = CASE WHEN ?4 THEN NULL ELSE ?5 END,
                lease_token = CASE WHEN ?4 THEN NULL ELSE lease_token END,
                status = CASE WHEN ?4 AND status = 'running' THEN 'completed' ELSE status END,
                total = CASE WHEN ?4 AND status = 'running'
                    THEN succeeded + failed + ?1 + ?2 ELSE total END,
                completed_at = CASE WHEN ?4 AND status = 'running' THEN ?3 ELSE completed_at END
            WHERE id = ?6 AND lease_token = ?7 RETURNING status""",
            succeeded,
            failed,
            now,
            done,
            now + lease_seconds,
            bulk_id,
            token,
            dumps(cursor) if cursor is not None else None,
        )
        return str(rows[0][0]) if rows else None

    def bulk_release(
        self, bulk_id: str, token: str, now: float, error: str | None = None
    ) -> str | None:
        """Give the lease back (the holder's time budget is spent, or it failed: `error`,
        counted as an interruption). Returns the status (None: the lease is not ours)."""
        rows = self.sql.exec(
            """UPDATE bulk_actions SET lease_token = NULL, lease_until = NULL, updated_at = ?,
                error = coalesce(?2, error), interruptions = interruptions + (?2 IS NOT NULL)
            WHERE id = ?3 AND lease_token = ?4 RETURNING status""",
            now,
            error,
            bulk_id,
            token,
        )
        return str(rows[0][0]) if rows else None

    def bulk_abort(self, bulk_id: str, now: float) -> dict[str, Any] | None:
        """Abort an open action: no further chunk starts (the one in flight still counts).
        Returns `{aborted, action}` (`aborted` false: it was already final); None: no such
        action."""
        rows = self.sql.exec(
            """UPDATE bulk_actions SET status = 'aborted', updated_at = ?1, completed_at = ?1
            WHERE id = ?2 AND status IN ('pending', 'running') RETURNING id""",
            now,
            bulk_id,
        )
        action = self._bulk_row(bulk_id)
        return None if action is None else {"aborted": bool(rows), "action": action}

    def bulk_purge(self, before_id: str, limit: int = 500) -> int:
        """Delete final actions created before `before_id` (ids sort by creation) and, on
        every shard, the run marks of any action that old. Returns how many rows went."""
        gone = self.sql.exec(
            "DELETE FROM bulk_actions WHERE id IN (SELECT id FROM bulk_actions WHERE id < ? "
            "AND status IN ('completed', 'aborted') LIMIT ?) RETURNING id",
            before_id,
            limit,
        )
        marks = self.sql.exec(
            "DELETE FROM bulk_action_runs WHERE (bulk_id, run_id) IN (SELECT bulk_id, run_id "
            "FROM bulk_action_runs WHERE bulk_id < ? LIMIT ?) RETURNING 1",
            before_id,
            limit,
        )
        return len(gone) + len(marks)

    # --- the runs (every shard) ----------------------------------------------------------------

    def bulk_select(
        self, bulk_id: str, filters: dict[str, Any], after: list[Any] | None, limit: int
    ) -> list[list[Any]]:
        """`[created_at, id]` of the next `limit` runs matching `filters` (newest first,
        after the cursor `after`), leaving out runs this action marked (its own replays)."""
        where, params = run_filter_sql(**filters)
        where.append("id NOT IN (SELECT run_id FROM bulk_action_runs WHERE bulk_id = ?)")
        params.append(bulk_id)
        if after:
            where.append("(created_at, id) < (?, ?)")
            params += after
        rows = self.sql.exec(
            f"SELECT created_at, id FROM runs WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            *params,
            limit,
        )
        return [[float(c), str(i)] for c, i in rows]

    def bulk_count(self, filters: dict[str, Any]) -> int:
        where, params = run_filter_sql(**filters)
        sql = "SELECT count(*) FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        return int(self.sql.exec(sql, *params)[0][0])

    def bulk_cancel(self, bulk_id: str, run_ids: list[str], now: float) -> dict[str, str]:
        """Cancel runs for an action, each as `cancel` does, and mark them. Returns each
        run's outcome: `canceled`, `finished` (it had already ended: not canceled) or
        `missing` (no such run). A run this action already marked keeps its first outcome,
        so applying a chunk again changes nothing and reports the same."""
        outcomes = self._marks(bulk_id, run_ids)
        fresh: dict[str, str] = {}
        for run_id in run_ids:
            if run_id in outcomes or run_id in fresh:
                continue
            res = self.cancel(run_id, now)
            if not res["found"]:
                outcomes[run_id] = "missing"
                continue
            fresh[run_id] = "canceled" if res["canceled"] else "finished"
        self.bulk_mark(bulk_id, fresh)
        return {**outcomes, **fresh}

    def bulk_mark(self, bulk_id: str, outcomes: dict[str, str]) -> None:
        """Mark runs as an action's (`{run_id: outcome}`); a run already marked keeps its
        first outcome."""
        rows = [{"run_id": r, "outcome": o} for r, o in outcomes.items()]
        for chunk in json_chunks(rows):
            self.sql.exec(
                "INSERT OR IGNORE INTO bulk_action_runs (bulk_id, run_id, outcome) "
                "SELECT ?, value->>'run_id', value->>'outcome' FROM json_each(?)",
                bulk_id,
                chunk,
            )

    def _marks(self, bulk_id: str, run_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in json_chunks(run_ids):
            for run_id, outcome in self.sql.exec(
                "SELECT run_id, outcome FROM bulk_action_runs WHERE bulk_id = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                bulk_id,
                chunk,
            ):
                out[str(run_id)] = str(outcome)
        return out
