"""The run index: one row per run, written in bulk. One object per shard.

Methods run inside one transaction each (the platform's object call); arguments and
results are JSON-native. Every state write names, in its WHERE, the states the
transition table allows it to leave (`sources_for`), so a stale write changes nothing.
"""

from __future__ import annotations

from typing import Any

from ..ports import Sql
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from ..shared.states import FINAL_STATES, STARTABLE, RunState, sources_for

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
    "CREATE INDEX IF NOT EXISTS runs_state_due ON runs(state, due_at)",
    "CREATE INDEX IF NOT EXISTS runs_batch ON runs(batch_id, batch_index) "
    "WHERE batch_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at) WHERE finished_at IS NOT NULL",
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
_JSON_COLUMNS = {"error", "tags", "metadata", "options"}
_NAMES = [c.strip() for c in ROW_COLUMNS.split(",")]


def row_to_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(_NAMES, row, strict=True))
    for col in _JSON_COLUMNS:
        if out[col] is not None:
            out[col] = loads(out[col])
    return out


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


_INSERT = """INSERT INTO runs (id, task, state, dispatch, queue, concurrency_key, payload,
    payload_packet, tags, metadata, options, idempotency_key, batch_id, batch_index, replay_of,
    created_at, updated_at, due_at, delay_until, ttl, expires_at)
    SELECT value->>'id', value->>'task', value->>'state', 1, value->>'queue',
      value->>'concurrency_key', value->>'payload', value->>'payload_packet',
      coalesce(value->>'tags', '[]'), coalesce(value->>'metadata', '{}'),
      coalesce(value->>'options', '{}'), value->>'idempotency_key', value->>'batch_id',
      value->>'batch_index', value->>'replay_of', ?1, ?1, coalesce(value->>'delay_until', ?1),
      value->>'delay_until', value->>'ttl', value->>'expires_at'
    FROM json_each(?2)"""


class RunIndexObject:
    """One shard of the run index."""

    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.name = name

    @staticmethod
    def schema() -> list[str]:
        return SCHEMA

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
        for chunk in json_chunks(fresh):
            self.sql.exec(_INSERT, now, chunk)
        for chunk in json_chunks(new_keys):
            self.sql.exec(
                "INSERT OR REPLACE INTO idempotency (key, run_id, expires_at) SELECT "
                "value->>'key', value->>'run_id', value->>'expires_at' FROM json_each(?)",
                chunk,
            )
        return results

    def create_batch(
        self, batch_id: str, run_count: int, idempotency_key: str | None, now: float
    ) -> dict[str, Any]:
        """Record a batch; with a key already used, return the existing batch (cached)."""
        if idempotency_key:
            found = self.sql.exec(
                "SELECT id, run_count FROM batches WHERE idempotency_key = ?", idempotency_key
            )
            if found:
                return {"id": found[0][0], "run_count": found[0][1], "cached": True}
        self.sql.exec(
            "INSERT INTO batches (id, run_count, idempotency_key, created_at) VALUES (?,?,?,?)",
            batch_id,
            run_count,
            idempotency_key,
            now,
        )
        return {"id": batch_id, "run_count": run_count, "cached": False}

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
            "runs": [r[0] for r in runs],
            "finished": sum(1 for r in runs if r[1] in FINAL_STATES),
            "updated_at": max([created, *(r[2] for r in runs)]),
        }

    def batch_runs(self, batch_id: str) -> list[list[Any]]:
        """`[index, run_id]` of the batch's runs this shard holds (ids only: cheap to
        gather from every shard, and a resent batch stream skips the indexes present)."""
        return [
            [i, rid]
            for i, rid in self.sql.exec(
                "SELECT batch_index, id FROM runs WHERE batch_id = ?", batch_id
            )
        ]

    # --- reads ---------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {ROW_COLUMNS} FROM runs WHERE id = ?", run_id)
        return row_to_dict(rows[0]) if rows else None

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

    def list_runs(
        self,
        *,
        tasks: list[str] | None = None,
        states: list[str] | None = None,
        tags: list[str] | None = None,
        batch_id: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: list[Any] | None = None,
        before: list[Any] | None = None,
        limit: int = 25,
    ) -> list[dict[str, Any]]:
        """Newest first, keyset-paginated on (created_at, id): `after` is the last row seen
        (older rows follow), `before` the first (newer rows, returned newest first too)."""
        where: list[str] = []
        params: list[Any] = []
        if tasks:
            where.append("task IN (SELECT value FROM json_each(?))")
            params.append(dumps(tasks))
        if states:
            where.append("state IN (SELECT value FROM json_each(?))")
            params.append(dumps(states))
        if tags:
            where.append(
                "EXISTS (SELECT 1 FROM json_each(runs.tags) t WHERE t.value IN "
                "(SELECT value FROM json_each(?)))"
            )
            params.append(dumps(tags))
        if batch_id:
            where.append("batch_id = ?")
            params.append(batch_id)
        if created_from is not None:
            where.append("created_at >= ?")
            params.append(created_from)
        if created_to is not None:
            where.append("created_at <= ?")
            params.append(created_to)
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

    def queue_counts(self) -> dict[str, dict[str, int]]:
        """Unfinished runs per queue and state (the queues listing's running/queued)."""
        out: dict[str, dict[str, int]] = {}
        for queue, state, n in self.sql.exec(
            "SELECT queue, state, count(*) FROM runs WHERE state IN "
            "('queued', 'delayed', 'waiting_for_retry', 'running', 'waiting') "
            "GROUP BY queue, state"
        ):
            out.setdefault(queue or "", {})[state] = n
        return out

    # --- consumer ------------------------------------------------------------------------

    def start_many(
        self, claims: list[list[Any]], token: str, now: float, lease_seconds: float
    ) -> list[dict[str, Any]]:
        """Decide, for each delivered `[run_id, dispatch]`, what the consumer does, and start
        the runs it may run under `token`'s lease.

        Decisions: `start` (with attempt, payload and options), `skip` (final or stale:
        ack it), `early` (delayed and not yet due: retry after `delay`), `busy` (another
        consumer holds a live lease: retry after `delay`), `expired` (its ttl passed: now
        EXPIRED), `missing` (no such row)."""
        ids = [c[0] for c in claims]
        rows: dict[str, tuple[Any, ...]] = {}
        for chunk in json_chunks(ids):
            for row in self.sql.exec(
                "SELECT id, state, attempt, dispatch, continued, delay_until, expires_at, "
                "lease_until, payload, payload_packet, options, metadata, tags, task, "
                "created_at, started_at FROM runs WHERE id IN (SELECT value FROM json_each(?))",
                chunk,
            ):
                rows[row[0]] = row
        decisions: list[dict[str, Any]] = []
        starts: list[dict[str, Any]] = []
        expired: list[str] = []
        for run_id, dispatch in claims:
            found = rows.get(run_id)
            if found is None:
                decisions.append({"id": run_id, "decision": "missing"})
                continue
            (
                _,
                state,
                attempt,
                row_dispatch,
                continued,
                delay_until,
                expires_at,
                lease_until,
                payload,
                packet,
                options,
                metadata,
                tags,
                task,
                created_at,
                started_at,
            ) = found
            if state in FINAL_STATES or row_dispatch != dispatch:
                decisions.append({"id": run_id, "decision": "skip", "state": state})
                continue
            if state == RunState.RUNNING:
                if lease_until is not None and lease_until > now:
                    decisions.append(
                        {"id": run_id, "decision": "busy", "delay": lease_until - now + 0.05}
                    )
                    continue
                new_attempt, resumed = attempt + 1, True  # its consumer died: next attempt
            elif state in STARTABLE:
                if state == RunState.DELAYED and delay_until is not None and delay_until > now:
                    # early (a delay past the queue's maximum): look again when it is due
                    decisions.append(
                        {"id": run_id, "decision": "early", "delay": delay_until - now}
                    )
                    continue
                if expires_at is not None and now > expires_at and attempt == 0:
                    expired.append(run_id)
                    decisions.append({"id": run_id, "decision": "expired"})
                    continue
                new_attempt = attempt if continued else attempt + 1
                resumed = bool(continued) or attempt > 0
            else:
                decisions.append({"id": run_id, "decision": "skip", "state": state})
                continue
            starts.append({"id": run_id, "attempt": new_attempt})
            decisions.append(
                {
                    "id": run_id,
                    "decision": "start",
                    "task": task,
                    "attempt": new_attempt,
                    "resumed": resumed,
                    "payload": payload,
                    "payload_packet": packet,
                    "options": loads(options) if options != "{}" else {},
                    "metadata": loads(metadata) if metadata != "{}" else {},
                    "tags": loads(tags) if tags != "[]" else [],
                    "created_at": created_at,
                    "started_at": started_at or now,
                }
            )
        for chunk in json_chunks(starts):
            self.sql.exec(
                f"""UPDATE runs SET state = 'running', attempt = j.attempt, continued = 0,
                    lease_token = ?1, lease_until = ?2, updated_at = ?3,
                    started_at = coalesce(started_at, ?3)
                FROM (SELECT value->>'id' AS id, value->>'attempt' AS attempt
                      FROM json_each(?4)) AS j
                WHERE runs.id = j.id AND +runs.state IN ({_in(sources_for(RunState.RUNNING))})""",
                token,
                now + lease_seconds,
                now,
                chunk,
            )
        if expired:
            self._finish_simple(expired, RunState.EXPIRED, now)
        return decisions

    def extend_leases(
        self, run_ids: list[str], token: str, now: float, lease_seconds: float
    ) -> list[str]:
        """Extend `token`'s leases; return the runs it no longer holds (canceled, taken)."""
        held: set[str] = set()
        for chunk in json_chunks(run_ids):
            for (rid,) in self.sql.exec(
                "UPDATE runs SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?)) "
                "AND +state = 'running' AND +lease_token = ? RETURNING id",
                now + lease_seconds,
                chunk,
                token,
            ):
                held.add(rid)
        return [r for r in run_ids if r not in held]

    def finish_many(self, outcomes: list[dict[str, Any]], token: str, now: float) -> dict[str, Any]:
        """Apply attempt outcomes held under `token`. Each outcome: `{id, attempt, state,
        output?, output_packet?, error?, due_at?, progress?, metadata?, has_object?}`;
        `state` is final, `waiting_for_retry` or `queued` (continued). A stale outcome
        (lease lost, run canceled) changes nothing. Returns `{"applied": {id: dispatch}}`,
        the new dispatch number for the runs that need a message, and, when there are any,
        `"watched": {id: state}`: the runs that ended here while live-log subscribers
        watch them."""
        applied: dict[str, int] = {}
        watched: dict[str, str] = {}
        for state in {o["state"] for o in outcomes}:
            group = [o for o in outcomes if o["state"] == state]
            sources = _in(sources_for(state))
            final = RunState(state) in FINAL_STATES
            bump = 0 if final else 1
            for chunk in json_chunks(group):
                rows = self.sql.exec(
                    f"""UPDATE runs SET state = ?1, updated_at = ?2,
                        finished_at = CASE WHEN ?3 THEN ?2 ELSE runs.finished_at END,
                        dispatch = runs.dispatch + ?4,
                        continued = CASE WHEN ?1 = 'queued' THEN 1 ELSE 0 END,
                        output = coalesce(j.output, runs.output),
                        output_packet = coalesce(j.output_packet, runs.output_packet),
                        error = coalesce(j.error, runs.error),
                        due_at = coalesce(j.due_at, runs.due_at),
                        progress = coalesce(j.progress, runs.progress),
                        metadata = coalesce(j.metadata, runs.metadata),
                        has_object = max(runs.has_object, coalesce(j.has_object, 0)),
                        lease_token = NULL, lease_until = NULL
                    FROM (SELECT value->>'id' AS id, value->>'attempt' AS attempt,
                            value->>'output' AS output, value->>'output_packet' AS output_packet,
                            value->>'error' AS error, value->>'due_at' AS due_at,
                            value->>'progress' AS progress, value->>'metadata' AS metadata,
                            value->>'has_object' AS has_object
                          FROM json_each(?5)) AS j
                    WHERE runs.id = j.id AND +runs.lease_token = ?6 AND runs.attempt = j.attempt
                      AND +runs.state IN ({sources})
                    RETURNING runs.id, runs.dispatch, runs.has_object""",
                    state,
                    now,
                    final,
                    bump,
                    chunk,
                    token,
                )
                for rid, dispatch, has_object in rows:
                    applied[rid] = dispatch
                    if final and has_object == WATCHED:
                        watched[rid] = state
        return {"applied": applied, "watched": watched} if watched else {"applied": applied}

    def watch(self, run_id: str) -> str | None:
        """A live-log subscriber connects (Cloudflare's run object): mark the run watched
        (`has_object` = 2, so the writer tells its object when it ends) and return its state
        (None: no such run), in one transaction."""
        rows = self.sql.exec(
            "UPDATE runs SET has_object = ? WHERE id = ? RETURNING state", WATCHED, run_id
        )
        return str(rows[0][0]) if rows else None

    def update_progress(self, updates: list[dict[str, Any]], token: str, now: float) -> None:
        """Live progress and metadata of running runs: `{id, progress?, metadata?,
        has_object?}` each."""
        for chunk in json_chunks(updates):
            self.sql.exec(
                """UPDATE runs SET progress = coalesce(j.progress, runs.progress),
                    metadata = coalesce(j.metadata, runs.metadata), updated_at = ?1,
                    has_object = max(runs.has_object, coalesce(j.has_object, 0))
                FROM (SELECT value->>'id' AS id, value->>'progress' AS progress,
                        value->>'metadata' AS metadata, value->>'has_object' AS has_object
                      FROM json_each(?2)) AS j
                WHERE runs.id = j.id AND +runs.lease_token = ?3""",
                now,
                chunk,
                token,
            )

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

    def housekeeping(
        self, now: float, stale_after: float, retention: float, limit: int = 500
    ) -> dict[str, Any]:
        """Expire runs whose ttl passed; find runs whose message is overdue, or whose
        consumer's lease ran out long ago, to send again (deduplicated by their dispatch
        number); purge finished runs past retention."""
        expired = [
            r[0]
            for r in self.sql.exec(
                "SELECT id FROM runs WHERE state IN ('queued', 'delayed') AND attempt = 0 "
                "AND expires_at IS NOT NULL AND expires_at < ? LIMIT ?",
                now,
                limit,
            )
        ]
        if expired:
            self._finish_simple(expired, RunState.EXPIRED, now)
        overdue = [
            _dispatched(r)
            for r in self.sql.exec(
                f"SELECT {_DISPATCH} FROM runs WHERE (state IN "
                "('queued', 'delayed', 'waiting_for_retry') AND due_at < ?1) OR "
                "(state = 'running' AND lease_until < ?1) LIMIT ?2",
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
