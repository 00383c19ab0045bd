"""The run index's table, its row shape, and SQL pieces its methods share."""

from __future__ import annotations

import functools
from typing import Any

from ..ports import Sql
from ..shared.rows import RowReader
from ..shared.sqlbulk import json_chunks
from ..shared.states import RunState, sources_for

# `+state`, `+lease_token` in the writes' WHERE clauses: the unary plus tells SQLite not to use
# an index for that term. Those writes find their rows by id (the primary key) or by a JSON
# list of ids; planning them through `runs_state_due` instead would scan every run in that
# state. The term still checks the state (the transition table's sources), row by row.

# `runs.has_object`: 0 no run object, 1 a run object (checkpoints, steps, logs), WATCHED a
# run object with live-log subscribers (Cloudflare: told when the run ends; see writer.py)
WATCHED = 2

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        state TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        dispatch INTEGER NOT NULL DEFAULT 1,
        continued INTEGER NOT NULL DEFAULT 0,
        queue TEXT,
        concurrency_key TEXT,
        payload TEXT,
        payload_packet TEXT,
        output TEXT,
        output_packet TEXT,
        error TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        metadata TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        idempotency_key TEXT,
        batch_id TEXT,
        batch_index INTEGER,
        progress REAL,
        has_object INTEGER NOT NULL DEFAULT 0,
        replay_of TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        due_at REAL NOT NULL,
        delay_until REAL,
        ttl REAL,
        expires_at REAL,
        started_at REAL,
        finished_at REAL,
        lease_token TEXT,
        lease_until REAL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at, id)",
    # the live runs by due time: a run is live exactly while `finished_at IS NULL` (every
    # write to a final state sets it, a requeue clears it), so starting a run changes no
    # entry and finishing one removes its entry; queries over live runs say
    # `finished_at IS NULL` for SQLite to use it. (Replaced `runs_state_due(state, due_at)`,
    # which every start and finish rewrote.)
    "DROP INDEX IF EXISTS runs_state_due",
    "CREATE INDEX IF NOT EXISTS runs_live ON runs(due_at) WHERE finished_at IS NULL",
    # one run per batch item: a retry of an unfinished batch cannot write an index twice
    "DROP INDEX IF EXISTS runs_batch",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_batch_item ON runs(batch_id, batch_index) "
    "WHERE batch_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_expiring ON runs(expires_at) WHERE expires_at IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY, run_id TEXT NOT NULL, expires_at REAL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY, run_count INTEGER NOT NULL, idempotency_key TEXT UNIQUE,
        created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
        run_id TEXT PRIMARY KEY, task TEXT, body TEXT NOT NULL, deliveries INTEGER,
        reason TEXT, dead_at REAL NOT NULL, requeued_at REAL
    ) WITHOUT ROWID""",
]

# Columns in the order `_row` maps them.
ROW_COLUMNS = (
    "id, task, state, attempt, dispatch, queue, concurrency_key, payload, payload_packet, "
    "output, output_packet, error, tags, metadata, options, idempotency_key, batch_id, "
    "batch_index, progress, has_object, replay_of, created_at, updated_at, delay_until, ttl, "
    "expires_at, started_at, finished_at"
)
row_to_dict = RowReader(
    ROW_COLUMNS,
    json=("error", "tags", "metadata", "options"),
    real=(
        "progress", "created_at", "updated_at", "delay_until", "ttl", "expires_at",
        "started_at", "finished_at",
    ),
)  # fmt: skip


def _in(states: list[str]) -> str:
    return ",".join(f"'{s}'" for s in states)


# What a (re-)dispatch needs of a run: its message, queue and keys included (a message
# without them would bypass its queue's limits).
_DISPATCH = "id, task, dispatch, attempt, queue, concurrency_key, options->>'rate_key'"


def _dispatched(r: tuple[Any, ...]) -> dict[str, Any]:
    """`{id, task, dispatch, attempt, queue, concurrency_key, rate_key}` of a `_DISPATCH` row
    (`attempt`: the next attempt's number)."""
    return {
        "id": r[0],
        "task": r[1],
        "dispatch": r[2],
        "attempt": r[3] + 1,
        "queue": r[4],
        "concurrency_key": r[5],
        "rate_key": r[6],
    }


# A new run's fields besides its id, task and state; each travels only when some row of the
# insert has it (rows are JSON arrays, read by position: SQLite 3.40 parses an element's
# text again for every `->>` on it, so a field nobody set costs every row a parse). A text
# equal to its column's default ('[]' tags, '{}' metadata and options) is as good as none.
INSERT_FIELDS = (
    "queue", "concurrency_key", "payload", "payload_packet", "tags", "metadata", "options",
    "idempotency_key", "batch_id", "batch_index", "replay_of", "delay_until", "ttl",
    "expires_at",
)  # fmt: skip
_DEFAULTS = {"tags": "[]", "metadata": "{}", "options": "{}"}


def insert_rows(rows: list[dict[str, Any]]) -> tuple[str, list[list[Any]]]:
    """The statement that inserts `rows` (its `?1` the time now, its `?2` a JSON array of
    rows) and `rows` as it reads them."""
    present = tuple(f for f in INSERT_FIELDS if _has(rows, f))
    return _insert_statement(present), [
        [r["id"], r["task"], r["state"], *(r.get(f) for f in present)] for r in rows
    ]


def _has(rows: list[dict[str, Any]], field: str) -> bool:
    """Whether some row sets `field` (to other than its column's default)."""
    empty = (None, _DEFAULTS.get(field))
    if rows and rows[0].get(field) not in empty:  # (the rows of a batch are alike)
        return True
    values = {r.get(field) for r in rows}
    return bool(values.difference(empty))


@functools.lru_cache(maxsize=64)
def _insert_statement(present: tuple[str, ...]) -> str:
    values = [f"value->>{i}" for i in range(3 + len(present))]
    for i, f in enumerate(present, 3):
        if f in _DEFAULTS:  # (a row of a mixed insert without one)
            values[i] = f"coalesce({values[i]}, '{_DEFAULTS[f]}')"
    due = f"coalesce(value->>{3 + present.index('delay_until')}, ?1)" if (
        "delay_until" in present
    ) else "?1"  # fmt: skip
    columns = ", ".join(("id", "task", "state", *present))
    return f"""INSERT INTO runs ({columns}, created_at, updated_at, due_at)
    SELECT {", ".join(values)}, ?1, ?1, {due} FROM json_each(?2)"""


class IndexBase:
    """What the run index's method groups share: its `Sql` and the plain final write."""

    sql: Sql

    def _finish_simple(self, run_ids: list[str], state: RunState, now: float) -> list[str]:
        done: list[str] = []
        for chunk in json_chunks(run_ids):
            done += [
                r[0]
                for r in self.sql.exec(
                    f"""UPDATE runs SET state = ?, updated_at = ?, finished_at = ?,
                        lease_token = NULL, lease_until = NULL
                    WHERE id IN (SELECT value FROM json_each(?))
                      AND +state IN ({_in(sources_for(state))}) RETURNING id""",
                    str(state),
                    now,
                    now,
                    chunk,
                )
            ]
        return done
