"""The run index's batches: a batch is all or nothing.

A batch's items spread over the index's shards, so its own row is the commit point:

1. `create_batch` writes the batch row and marks the batch *pending* on its own shard (with
   an idempotency key: a batch keyed that way already, sealed or not, is returned instead);
2. the items are inserted shard by shard (`insert_runs`), each shard marking the batch
   pending beside them: a pending batch's runs are invisible (not listed, not counted, not
   dispatched, never expired);
3. `seal_batch` on the batch's own shard records it sealed: the commit point. Then the runs'
   messages are sent, and then every shard holding items is released (`release_batch`,
   its own included): the runs become visible.

Whatever dies before 3 leaves a pending batch nobody sees; a retry with its key completes the
missing items and seals it (`batch_runs` lists what is there). Whatever dies after 3 is
repaired by housekeeping: a shard whose mark has outlived `PENDING_CHECK_AFTER` asks the
batch's own shard and, once the batch is sealed, sends its runs there that have not started
(a message sent twice is a duplicate delivery, which the consumer absorbs) and releases them.
"""

from __future__ import annotations

from typing import Any

from ..ports import reads
from ..shared.states import FINAL_STATES
from .index_schema import IndexBase

PENDING_CHECK_AFTER = 30.0  # seconds before housekeeping checks whether a mark is stale

# a run is visible unless its batch is pending on its shard
VISIBLE = "(batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM pending_batches))"

BATCH_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS pending_batches (
        batch_id TEXT PRIMARY KEY, created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS sealed_batches (batch_id TEXT PRIMARY KEY) WITHOUT ROWID",
]

# What a sealed batch's runs need for their first message (`Producer.dispatch_rows`).
_FIRST_DISPATCH = (
    "SELECT id, task, dispatch, queue, concurrency_key, options->>'rate_key', delay_until "
    "FROM runs WHERE batch_id = ? AND state IN ('queued', 'delayed') AND attempt = 0"
)


class BatchWrites(IndexBase):
    def create_batch(
        self, batch_id: str, run_count: int, idempotency_key: str | None, now: float
    ) -> dict[str, Any]:
        """Record a pending batch (this is its own shard). With a key already used: that
        batch (`cached`), and whether it is sealed (else a retry completes it)."""
        if idempotency_key:
            found = self.sql.exec(
                "SELECT id, run_count FROM batches WHERE idempotency_key = ?", idempotency_key
            )
            if found:
                bid, count = found[0]
                return {"id": bid, "run_count": count, "cached": True, "sealed": self._sealed(bid)}
        self.sql.exec(
            "INSERT INTO batches (id, run_count, idempotency_key, created_at) VALUES (?,?,?,?)",
            batch_id,
            run_count,
            idempotency_key,
            now,
        )
        self._mark_pending(batch_id, now)
        return {"id": batch_id, "run_count": run_count, "cached": False, "sealed": False}

    def _mark_pending(self, batch_id: str, now: float) -> None:
        self.sql.exec(
            "INSERT OR IGNORE INTO pending_batches (batch_id, created_at) VALUES (?, ?)",
            batch_id,
            now,
        )

    def _sealed(self, batch_id: str) -> bool:
        """Sealed: recorded so, or (a batch from before pending marks) never marked."""
        return bool(
            self.sql.exec("SELECT 1 FROM sealed_batches WHERE batch_id = ?", batch_id)
        ) or not self.sql.exec("SELECT 1 FROM pending_batches WHERE batch_id = ?", batch_id)

    def seal_batch(self, batch_id: str) -> None:
        """The commit point, on the batch's own shard: every item is written."""
        self.sql.exec("INSERT OR IGNORE INTO sealed_batches (batch_id) VALUES (?)", batch_id)

    def batch_dispatch(self, batch_id: str) -> list[list[Any]]:
        """The first-message rows of this shard's runs of the batch that have not started."""
        return [list(r) for r in self.sql.exec(_FIRST_DISPATCH, batch_id)]

    def release_batch(self, batch_id: str) -> None:
        """Make this shard's runs of a sealed batch visible."""
        self.sql.exec("DELETE FROM pending_batches WHERE batch_id = ?", batch_id)

    def stale_pending_batches(self, now: float) -> list[str]:
        """Batches pending here for a while: sealed and not released (their releaser died),
        still being written, or abandoned (`Engine` asks their own shard which)."""
        return [
            r[0]
            for r in self.sql.exec(
                "SELECT batch_id FROM pending_batches WHERE created_at < ? LIMIT 100",
                now - PENDING_CHECK_AFTER,
            )
        ]

    @reads
    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        found = self.sql.exec(
            "SELECT id, run_count, idempotency_key, created_at FROM batches WHERE id = ?", batch_id
        )
        if not found:
            return None
        bid, count, key, created = found[0]
        runs = self.sql.exec(
            "SELECT id, state, updated_at FROM runs WHERE batch_id = ? ORDER BY batch_index",
            batch_id,
        )
        return {
            "id": bid,
            "run_count": count,
            "idempotency_key": key,
            "created_at": created,
            "sealed": self._sealed(bid),
            "runs": [r[0] for r in runs],
            "finished": sum(1 for r in runs if r[1] in FINAL_STATES),
            "updated_at": max([created, *(r[2] for r in runs)]),
        }

    def batch_runs(self, batch_id: str) -> list[list[Any]]:
        """`[index, run_id]` of the batch's runs this shard holds, pending or not (ids only:
        cheap to gather from every shard; a retry or a resent stream skips what is there)."""
        return [
            [i, rid]
            for i, rid in self.sql.exec(
                "SELECT batch_index, id FROM runs WHERE batch_id = ?", batch_id
            )
        ]
