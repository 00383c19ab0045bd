"""The run index's control writes: cancel, reschedule, tags and metadata, dead letters,
housekeeping."""

from __future__ import annotations

from typing import Any

from ..ports import reads
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from ..shared.states import RunState, sources_for
from .index_batches import VISIBLE
from .index_schema import _DISPATCH, IndexBase, _dispatched, _in

# a run that may still expire: it has a ttl and has not started
_UNSTARTED = (
    f"expires_at IS NOT NULL AND state IN ('queued', 'delayed') AND attempt = 0 AND {VISIBLE}"
)


class ControlWrites(IndexBase):
    # --- control -------------------------------------------------------------------------

    def cancel(self, run_id: str, now: float) -> dict[str, Any]:
        """Cancel a queued, delayed, waiting or running run. Returns `{found, canceled, state}`."""
        found = self.sql.exec("SELECT state FROM runs WHERE id = ?", run_id)
        if not found:
            return {"found": False, "canceled": False, "state": None}
        done = self._finish_simple([run_id], RunState.CANCELED, now)
        return {"found": True, "canceled": bool(done), "state": found[0][0]}

    def reschedule(self, run_id: str, delay_until: float, now: float) -> dict[str, Any] | None:
        """Move a delayed (or still queued) run's start; returns its new dispatch or None."""
        rows = self.sql.exec(
            f"""UPDATE runs SET state = 'delayed', delay_until = ?1, due_at = ?1,
                dispatch = dispatch + 1, updated_at = ?2
            WHERE id = ?3 AND +state IN ('delayed', 'queued')
              AND +state IN ({_in(sources_for(RunState.DELAYED))})
            RETURNING {_DISPATCH}""",
            delay_until,
            now,
            run_id,
        )
        if not rows:
            return None
        return _dispatched(rows[0])

    def update_tags_metadata(
        self, run_id: str, add_tags: list[str] | None, metadata: dict[str, Any] | None, now: float
    ) -> bool:
        row = self.sql.exec("SELECT tags FROM runs WHERE id = ?", run_id)
        if not row:
            return False
        tags = loads(row[0][0])
        for t in add_tags or []:
            if t not in tags:
                tags.append(t)
        self.sql.exec(
            "UPDATE runs SET tags = ?, metadata = coalesce(?, metadata), updated_at = ? "
            "WHERE id = ?",
            dumps(tags),
            dumps(metadata) if metadata is not None else None,
            now,
            run_id,
        )
        return True

    def reset_idempotency_key(self, key: str) -> str | None:
        """Forget a (task-scoped) idempotency key: the next trigger with it makes a new run.
        Returns the run that held it, None if none did."""
        found = self.sql.exec("DELETE FROM idempotency WHERE key = ? RETURNING run_id", key)
        if not found:
            return None
        self.sql.exec("UPDATE runs SET idempotency_key = NULL WHERE id = ?", found[0][0])
        return str(found[0][0])

    # --- dead letters and housekeeping ----------------------------------------------------

    def dead_letter(self, letters: list[dict[str, Any]], now: float) -> dict[str, Any]:
        """Record dead-lettered messages (`{run_id, task, dispatch, body, deliveries, reason}`)
        and end their runs CRASHED, unless the message was stale (another dispatch).
        Returns `{"crashed": [ids], "held": {id: seconds}}`: a run whose last lease has not
        run out yet is held (look again after that many seconds), not crashed."""
        held: dict[str, float] = {}
        dispatch = {d["run_id"]: d["dispatch"] for d in letters}
        for chunk in json_chunks(list(dispatch)):
            for rid, until, d in self.sql.exec(
                "SELECT id, lease_until, dispatch FROM runs WHERE id IN "
                "(SELECT value FROM json_each(?)) AND +state = 'running' AND lease_until >= ?",
                chunk,
                now,
            ):
                if d == dispatch[rid]:
                    held[rid] = until - now + 0.05
        letters = [d for d in letters if d["run_id"] not in held]
        for chunk in json_chunks(letters):
            self.sql.exec(
                """INSERT OR REPLACE INTO dead_letters (run_id, task, body, deliveries, reason,
                    dead_at) SELECT value->>'run_id', value->>'task', value->>'body',
                    value->>'deliveries', value->>'reason', ? FROM json_each(?)""",
                now,
                chunk,
            )
        error = dumps({"name": "Crashed", "message": "its consumer died on every allowed delivery"})
        crashed: list[str] = []
        for chunk in json_chunks(letters):
            crashed += [
                r[0]
                for r in self.sql.exec(
                    f"""UPDATE runs SET state = 'crashed', updated_at = ?1, finished_at = ?1,
                        error = ?2, lease_token = NULL, lease_until = NULL
                    FROM (SELECT value->>'run_id' AS id, value->>'dispatch' AS dispatch
                          FROM json_each(?3)) AS j
                    WHERE runs.id = j.id AND runs.dispatch = j.dispatch
                      AND +runs.state IN ({_in(sources_for(RunState.CRASHED))})
                    RETURNING runs.id""",
                    now,
                    error,
                    chunk,
                )
            ]
        return {"crashed": crashed, "held": held}

    @reads
    def list_dead_letters(self, include_requeued: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT run_id, task, deliveries, reason, dead_at, requeued_at FROM dead_letters"
        if not include_requeued:
            sql += " WHERE requeued_at IS NULL"
        return [
            dict(
                zip(
                    ("run_id", "task", "deliveries", "reason", "dead_at", "requeued_at"),
                    r,
                    strict=True,
                )
            )
            for r in self.sql.exec(sql + " ORDER BY dead_at")
        ]

    def requeue_dead(self, run_ids: list[str] | None, now: float) -> list[dict[str, Any]]:
        """Revive dead-lettered runs: CRASHED -> QUEUED with a new dispatch (resuming from
        their checkpoints). Returns `{id, task, dispatch, attempt}` to enqueue."""
        if run_ids is None:
            run_ids = [
                r[0]
                for r in self.sql.exec("SELECT run_id FROM dead_letters WHERE requeued_at IS NULL")
            ]
        out: list[dict[str, Any]] = []
        for chunk in json_chunks(run_ids):
            out += [
                _dispatched(r)
                for r in self.sql.exec(
                    f"""UPDATE runs SET state = 'queued', dispatch = dispatch + 1, error = NULL,
                        finished_at = NULL, updated_at = ?1, due_at = ?1
                    WHERE id IN (SELECT value FROM json_each(?2))
                      AND +state IN ({_in(sources_for(RunState.QUEUED))}) AND +state = 'crashed'
                    RETURNING {_DISPATCH}""",
                    now,
                    chunk,
                )
            ]
            self.sql.exec(
                "UPDATE dead_letters SET requeued_at = ? WHERE run_id IN "
                "(SELECT value FROM json_each(?))",
                now,
                chunk,
            )
        return out

    def expire(self, now: float, limit: int = 500) -> list[str]:
        """End EXPIRED the runs whose ttl passed before they started (at most `limit`)."""
        expired = [
            r[0]
            for r in self.sql.exec(
                f"SELECT id FROM runs WHERE expires_at <= ? AND {_UNSTARTED} LIMIT ?",
                now,
                limit,
            )
        ]
        return self._finish_simple(expired, RunState.EXPIRED, now) if expired else []

    def next_expiry(self) -> float | None:
        """The earliest ttl of a run that has not started (None: none has one)."""
        (due,) = self.sql.exec(f"SELECT min(expires_at) FROM runs WHERE {_UNSTARTED}")[0]
        return None if due is None else float(due)

    def waiting_since(self, start: float, before: float) -> list[dict[str, Any]]:
        """The runs waiting for their next message whose due time is within [start, before)
        (their first dispatch, a retry, a continuation), with that due time."""
        return [
            {**_dispatched(r[:7]), "due_at": r[7]}
            for r in self.sql.exec(
                f"SELECT {_DISPATCH}, due_at FROM runs WHERE finished_at IS NULL "
                "AND due_at >= ? AND due_at < ? "
                "AND state IN ('queued', 'delayed', 'waiting_for_retry') "
                f"AND {VISIBLE}",
                start,
                before,
            )
        ]

    def housekeeping(
        self, now: float, stale_after: float, retention: float, limit: int = 500
    ) -> dict[str, Any]:
        """Expire runs whose ttl passed (the TTL timer does it on time; this is the safety
        net); find runs whose message is overdue, or whose consumer's lease ran out long ago,
        to send again (deduplicated by their dispatch number); purge finished runs past
        retention."""
        expired = self.expire(now, limit)
        overdue = [
            _dispatched(r)
            for r in self.sql.exec(
                # a running run's due time is before its start, so before its lease's end
                f"SELECT {_DISPATCH} FROM runs WHERE finished_at IS NULL AND due_at < ?1 "
                "AND (state IN ('queued', 'delayed', 'waiting_for_retry') OR "
                f"(state = 'running' AND lease_until < ?1)) AND {VISIBLE} LIMIT ?2",
                now - stale_after,
                limit,
            )
        ]
        for chunk in json_chunks([o["id"] for o in overdue]):
            self.sql.exec(
                "UPDATE runs SET due_at = ? WHERE id IN (SELECT value FROM json_each(?))",
                now,
                chunk,
            )
        purged = self.sql.exec(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE finished_at < ? LIMIT ?) "
            "RETURNING id, payload_packet, output_packet, has_object",
            now - retention,
            limit,
        )
        self.sql.exec("DELETE FROM idempotency WHERE expires_at < ?", now)
        self.sql.exec("DELETE FROM dead_letters WHERE dead_at < ?", now - retention)
        return {
            "expired": expired,
            "overdue": overdue,
            "purged": [r[0] for r in purged],
            "objects": [r[0] for r in purged if r[3]],  # runs that have a run object
            "packets": [p for r in purged for p in r[1:3] if p],
            "more": len(purged) == limit,
        }
