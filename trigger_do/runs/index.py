"""The run index: one row per run, written in bulk. One object per shard.

Methods run inside one transaction each (the platform's object call); arguments and
results are JSON-native. Every state write names, in its WHERE, the states the
transition table allows it to leave (`sources_for`), so a stale write changes nothing.
The methods are grouped by who calls them: producer and reads here, consumers in
`index_consumer.py`, control and housekeeping in `index_control.py`, bulk actions in
`index_bulk.py`, the table in `index_schema.py`, the list filters in `index_filters.py`,
Realtime watchers' reads in `index_realtime.py`.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvariantError
from ..ports import reads
from ..shared.serialization import dumps
from ..shared.sqlbulk import json_chunks
from ..shared.states import CREATED_IN, RunState
from ..shared.timers import TimedObject
from .index_batches import BATCH_SCHEMA, VISIBLE, BatchWrites
from .index_bulk import BULK_SCHEMA, BulkWrites
from .index_consumer import ConsumerWrites
from .index_control import ControlWrites
from .index_filters import run_filter_sql
from .index_metrics import SCHEMA as METRICS_SCHEMA
from .index_metrics import read_counts
from .index_realtime import RealtimeReads
from .index_schema import ROW_COLUMNS, SCHEMA, WATCHED, insert_rows, row_to_dict
from .index_waits import WAITS_SCHEMA, WAITS_TIMER, WaitWrites

__all__ = ["ROW_COLUMNS", "SCHEMA", "WATCHED", "RunIndexObject", "row_to_dict"]

TTL_TIMER = "ttl"  # due at the earliest expiry of a run that has not started


class RunIndexObject(
    TimedObject, ConsumerWrites, BatchWrites, BulkWrites, ControlWrites, RealtimeReads, WaitWrites
):
    """One shard of the run index."""

    KIND = "run-index"
    OWN_SCHEMA = SCHEMA + BATCH_SCHEMA + BULK_SCHEMA + WAITS_SCHEMA + METRICS_SCHEMA

    # --- timers ----------------------------------------------------------------------------

    def fire_timers(self, now: float) -> dict[str, Any]:
        """This shard's due timers (`Engine.fire_timers`, or the Durable Object's alarm): the
        TTL timer ends EXPIRED the runs whose ttl has passed, at their due time, then waits
        for the next one. Returns what it did."""
        expired: list[str] = []
        waits: dict[str, Any] = {"resumed": [], "more": False}
        for key in self.timers.take_due(now):
            if key == WAITS_TIMER:  # waits whose time has come: their runs resume
                waits = self.fire_waits(now)
            if key == TTL_TIMER:
                expired += self.expire(now)
                following = self.next_expiry()  # a backlog past `expire`'s limit: at once
                if following is not None:
                    self.timers.set(TTL_TIMER, following)
        return {"expired": expired, **waits}

    # --- producer ------------------------------------------------------------------------

    def insert_runs(self, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Insert new runs; a row whose `idempotency_key` names a live run is not inserted.

        Returns, per input row, `{"id": run_id, "cached": bool}` (the existing run's id
        when cached). Keys are unique in the schema, so concurrent triggers agree."""
        results: list[dict[str, Any]] = []
        fresh: list[dict[str, Any]] = []
        keyed = [r for r in rows if r.get("idempotency_key")]
        existing: dict[str, str] = {}
        if keyed:
            keys = list({r["idempotency_key"] for r in keyed})
            for chunk in json_chunks(keys):
                for key, run_id in self.sql.exec(
                    "SELECT key, run_id FROM idempotency WHERE key IN (SELECT value FROM "
                    "json_each(?)) AND (expires_at IS NULL OR expires_at > ?)",
                    chunk,
                    now,
                ):
                    existing[key] = run_id
        new_keys: list[dict[str, Any]] = []
        for row in rows:
            key = row.get("idempotency_key")
            if key and key in existing:
                results.append({"id": existing[key], "cached": True})
                continue
            if key:
                existing[key] = row["id"]
                new_keys.append(
                    {"key": key, "run_id": row["id"], "expires_at": row.get("key_expires_at")}
                )
            fresh.append(row)
            results.append({"id": row["id"], "cached": False})
        statement, values = insert_rows(fresh)
        for chunk in json_chunks(values):
            self.sql.exec(statement, now, chunk)
        for batch_id in {r["batch_id"] for r in fresh if r.get("batch_id")}:
            self._mark_pending(batch_id, now)  # invisible here until the batch is sealed
        expiring = [r["expires_at"] for r in fresh if r.get("expires_at") is not None]
        if expiring:  # the shard's one TTL timer: its earliest expiry
            self.timers.set_earliest(TTL_TIMER, min(expiring))
        for chunk in json_chunks(new_keys):
            self.sql.exec(
                "INSERT OR REPLACE INTO idempotency (key, run_id, expires_at) SELECT "
                "value->>'key', value->>'run_id', value->>'expires_at' FROM json_each(?)",
                chunk,
            )
        return results

    def insert_failed(self, rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Create runs directly in FAILED (the transition table's `CREATED_IN`): an event's
        subscriber whose schema rejects the payload. Each row carries its `error`; keys and
        results as `insert_runs` (a key naming a live run writes nothing)."""
        bad = [r["id"] for r in rows if r.get("state") != RunState.FAILED]
        if bad or RunState.FAILED not in CREATED_IN:
            raise InvariantError(f"insert_failed takes rows in state failed, not {bad[:3]}")
        results = self.insert_runs(rows, now)
        fresh = [
            [r["id"], dumps(r["error"])]
            for r, res in zip(rows, results, strict=True)
            if not res["cached"]
        ]
        for chunk in json_chunks(fresh):
            self.sql.exec(
                "UPDATE runs SET error = value->>1, finished_at = ? FROM json_each(?) "
                "WHERE runs.id = value->>0 AND runs.state = 'failed'",
                now,
                chunk,
            )
        return results

    # --- reads ---------------------------------------------------------------------------

    @reads
    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {ROW_COLUMNS} FROM runs WHERE id = ?", run_id)
        return row_to_dict(rows[0]) if rows else None

    @reads
    def get_many(self, run_ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in json_chunks(run_ids):
            out += [
                row_to_dict(r)
                for r in self.sql.exec(
                    f"SELECT {ROW_COLUMNS} FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                    chunk,
                )
            ]
        return out

    @reads
    def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]:
        """`{id: [state, attempt]}` for many runs at once (waiting on results)."""
        out: dict[str, list[Any]] = {}
        for chunk in json_chunks(run_ids):
            for rid, state, attempt in self.sql.exec(
                "SELECT id, state, attempt FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                chunk,
            ):
                out[rid] = [state, attempt]
        return out

    @reads
    def list_runs(
        self,
        *,
        tasks: list[str] | None = None,
        states: list[str] | None = None,
        tags: list[str] | None = None,
        batch_id: str | None = None,
        bulk_action: str | None = None,
        schedule_id: str | None = None,
        idempotency_key: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: list[Any] | None = None,
        before: list[Any] | None = None,
        limit: int = 25,
    ) -> list[dict[str, Any]]:
        """Newest first, keyset-paginated on (created_at, id): `after` is the last row seen
        (older rows follow), `before` the first (newer rows, returned newest first too).
        Filters: `index_filters.py` (`bulk_action`: the runs that bulk action marked)."""
        where, params = run_filter_sql(
            tasks=tasks,
            states=states,
            tags=tags,
            batch_id=batch_id,
            bulk_action=bulk_action,
            schedule_id=schedule_id,
            idempotency_key=idempotency_key,
            created_from=created_from,
            created_to=created_to,
        )
        order = "DESC"
        if after:
            where.append("(created_at, id) < (?, ?)")
            params += after
        elif before:
            where.append("(created_at, id) > (?, ?)")
            params += before
            order = "ASC"
        sql = f"SELECT {ROW_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at {order}, id {order} LIMIT ?"
        params.append(limit)
        rows = [row_to_dict(r) for r in self.sql.exec(sql, *params)]
        if order == "ASC":
            rows.reverse()
        return rows

    def metric_counts(self) -> list[list[Any]]:
        """This shard's metric counts (`index_metrics`: kept by triggers on Cloudflare)."""
        return read_counts(self.sql)

    def oldest_queued(self) -> dict[str, float]:
        """Per queue, when its oldest run waiting for a consumer was created (metrics)."""
        return {
            queue or "": float(at)
            for queue, at in self.sql.exec(
                "SELECT queue, min(created_at) FROM runs WHERE finished_at IS NULL AND "
                f"state = 'queued' AND {VISIBLE} GROUP BY queue"
            )
        }

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Unfinished runs per queue and state (the queues listing's running/queued)."""
        out: dict[str, dict[str, int]] = {}
        for queue, state, n in self.sql.exec(
            "SELECT queue, state, count(*) FROM runs WHERE finished_at IS NULL AND state IN "
            f"('queued', 'delayed', 'waiting_for_retry', 'running', 'waiting') AND {VISIBLE} "
            "GROUP BY queue, state"
        ):
            out.setdefault(queue or "", {})[state] = n
        return out
