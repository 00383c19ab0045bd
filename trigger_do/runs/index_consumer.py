"""The run index's writes from consumers: start, lease, finish, progress."""

from __future__ import annotations

import functools
from typing import Any

from ..shared.serialization import loads
from ..shared.sqlbulk import json_chunks
from ..shared.states import FINAL_STATES, STARTABLE, RunState, sources_for
from .index_schema import WATCHED, IndexBase, _in
from .index_waits import resume_ready, waiting_children

# an outcome's fields besides its id and attempt (`finish_many` writes those it has)
_OPTIONAL_FIELDS = (
    "output", "output_packet", "error", "due_at", "progress", "metadata", "has_object",
    "started_at", "ended_at",
)  # fmt: skip


@functools.lru_cache(maxsize=256)
def _finish_statement(sources: str, present: tuple[str, ...]) -> str:
    """`finish_many`'s statement for outcomes from `sources` that carry the fields
    `present` (in that order after id and attempt, in each row of its JSON array): a
    field no outcome has is left as it is."""
    sets = [
        "has_object = max(runs.has_object, coalesce(j.has_object, 0))"
        if f == "has_object"
        else f"{f} = coalesce(j.{f}, runs.{f})"
        for f in present
        if f != "ended_at"  # (not a column: when the code ended, for `finished_at`)
    ]
    ended = "coalesce(j.ended_at, ?2)" if "ended_at" in present else "?2"
    columns = [f"value->>{i} AS {f}" for i, f in enumerate(("id", "attempt", *present))]
    return f"""UPDATE runs SET state = ?1, updated_at = ?2,
            finished_at = CASE WHEN ?3 THEN {ended} ELSE runs.finished_at END,
            dispatch = runs.dispatch + ?4,
            continued = CASE WHEN ?1 = 'queued' THEN 1 ELSE 0 END,
            {"".join(f"{x}, " for x in sets)}lease_token = NULL, lease_until = NULL
        FROM (SELECT {", ".join(columns)} FROM json_each(?5)) AS j
        WHERE runs.id = j.id AND +runs.lease_token = ?6 AND runs.attempt = j.attempt
          AND +runs.state IN ({sources})
        RETURNING runs.id, runs.dispatch, runs.has_object,
            runs.options != '{{}}' AND runs.options->>'waitpoint' IS NOT NULL"""


# `start_many`'s one statement: start each claimed `[id, dispatch]` run that may start now
# (its dispatch current; queued, delayed and due, or waiting for its retry, and not past
# its ttl before a first attempt; or running under a lease that ran out: its consumer
# died), and return what its attempt needs. A continued run (`continued`: it was queued to
# go on with the same attempt) starts that attempt again, and keeps the mark until its next
# outcome, so the start returns it: such a run resumes, as does any attempt after the
# first. `_decide` is the same rule, run by run.
_START = f"""UPDATE runs SET state = 'running',
        attempt = CASE WHEN runs.continued AND runs.state != 'running' THEN runs.attempt
                       ELSE runs.attempt + 1 END,
        lease_token = ?1, lease_until = ?2, updated_at = ?3,
        started_at = coalesce(runs.started_at, ?3)
    FROM (SELECT value->>0 AS id, value->>1 AS dispatch FROM json_each(?4)) AS j
    WHERE runs.id = j.id AND runs.dispatch = j.dispatch
      AND +runs.state IN ({_in(sources_for(RunState.RUNNING))})
      AND CASE WHEN runs.state = 'running' THEN coalesce(runs.lease_until <= ?3, 1)
               ELSE NOT (runs.state = 'delayed' AND coalesce(runs.delay_until > ?3, 0))
                    AND NOT (runs.attempt = 0 AND coalesce(?3 > runs.expires_at, 0)) END
    RETURNING runs.id, runs.task, runs.attempt, runs.continued, runs.payload,
        runs.payload_packet, runs.options, runs.metadata, runs.tags, runs.created_at,
        runs.started_at"""


def _started(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row `_START` returned, as its decision (its `continued` mark says it resumes)."""
    run_id, task, attempt, continued, *rest = row
    return _start_decision(run_id, task, attempt, bool(continued) or attempt > 1, *rest)


def _start_decision(
    run_id: str, task: str, attempt: int, resumed: bool, payload: str | None,
    packet: str | None, options: str, metadata: str, tags: str, created_at: float,
    started_at: float,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": run_id,
        "decision": "start",
        "task": task,
        "attempt": attempt,
        "resumed": resumed,
        "payload": payload,
        "payload_packet": packet,
        "options": loads(options) if options != "{}" else {},
        "metadata": loads(metadata) if metadata != "{}" else {},
        "tags": loads(tags) if tags != "[]" else [],
        "created_at": created_at,
        "started_at": started_at,
    }


class ConsumerWrites(IndexBase):
    # --- consumer ------------------------------------------------------------------------

    def start_many(
        self, claims: list[list[Any]], token: str, now: float, lease_seconds: float
    ) -> list[dict[str, Any]]:
        """Decide, for each delivered `[run_id, dispatch]`, what the consumer does, and start
        the runs it may run under `token`'s lease.

        Decisions: `start` (with attempt, payload and options), `skip` (final or stale:
        ack it), `early` (delayed and not yet due: retry after `delay`), `busy` (another
        consumer holds a live lease: retry after `delay`), `expired` (its ttl passed: now
        EXPIRED), `missing` (no such row).

        The runs that start (nearly all of them) start in one statement that returns what
        their attempts need; only the others are read and decided one by one."""
        started: dict[str, dict[str, Any]] = {}
        for chunk in json_chunks(claims):
            for row in self.sql.exec(_START, token, now + lease_seconds, now, chunk):
                started[row[0]] = _started(row)
        if len(started) == len(claims):
            return [started[c[0]] for c in claims]
        rest = self._decide([c for c in claims if c[0] not in started], token, now, lease_seconds)
        return [started.get(c[0]) or rest[c[0]] for c in claims]

    def _decide(
        self, claims: list[list[Any]], token: str, now: float, lease_seconds: float
    ) -> dict[str, dict[str, Any]]:
        """`start_many`'s decisions for the claims its statement did not start, by run id
        (one of them that may start after all is started here)."""
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
        decisions: dict[str, dict[str, Any]] = {}
        starts: list[dict[str, Any]] = []
        expired: list[str] = []
        for run_id, dispatch in claims:
            found = rows.get(run_id)
            if found is None:
                decisions[run_id] = {"id": run_id, "decision": "missing"}
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
                decisions[run_id] = {"id": run_id, "decision": "skip", "state": state}
                continue
            if state == RunState.RUNNING:
                if lease_until is not None and lease_until > now:
                    delay = lease_until - now + 0.05
                    decisions[run_id] = {"id": run_id, "decision": "busy", "delay": delay}
                    continue
                new_attempt, resumed = attempt + 1, True  # its consumer died: next attempt
            elif state in STARTABLE:
                if state == RunState.DELAYED and delay_until is not None and delay_until > now:
                    # early (a delay past the queue's maximum): look again when it is due
                    delay = delay_until - now
                    decisions[run_id] = {"id": run_id, "decision": "early", "delay": delay}
                    continue
                if expires_at is not None and now > expires_at and attempt == 0:
                    expired.append(run_id)
                    decisions[run_id] = {"id": run_id, "decision": "expired"}
                    continue
                new_attempt = attempt if continued else attempt + 1
                resumed = bool(continued) or attempt > 0
            else:
                decisions[run_id] = {"id": run_id, "decision": "skip", "state": state}
                continue
            starts.append({"id": run_id, "attempt": new_attempt})
            decisions[run_id] = _start_decision(
                run_id, task, new_attempt, resumed, payload, packet, options, metadata, tags,
                created_at, started_at or now,
            )  # fmt: skip
        for chunk in json_chunks(starts):
            self.sql.exec(
                f"""UPDATE runs SET state = 'running', attempt = j.attempt,
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

    def lapse_leases(self, token: str, now: float) -> list[str]:
        """A consumer that is gone: end the leases it held now (its runs are taken over by
        the next delivery instead of when the leases would have run out)."""
        return [
            r[0]
            for r in self.sql.exec(
                "UPDATE runs SET lease_until = ? WHERE finished_at IS NULL "
                "AND +lease_token = ? AND +state = 'running' "
                "AND lease_until > ? RETURNING id",
                now,
                token,
                now,
            )
        ]

    def finish_many(self, outcomes: list[dict[str, Any]], token: str, now: float) -> dict[str, Any]:
        """Apply attempt outcomes held under `token`. Each outcome: `{id, attempt, state,
        output?, output_packet?, error?, due_at?, progress?, metadata?, has_object?,
        started_at?, ended_at?}` (the last two: a standby's handoff instant, recorded as
        the standby's start and as the end of the run that let it go);
        `state` is final, `waiting_for_retry` or `queued` (continued). A stale outcome
        (lease lost, run canceled) changes nothing. Returns `{"applied": {id: dispatch}}`,
        the new dispatch number for the runs that need a message, and, when there are any,
        `"watched": {id: state}`: the runs that ended here while live-log subscribers
        watch them."""
        applied: dict[str, int] = {}
        watched: dict[str, str] = {}
        waits: dict[str, list[Any]] = {"resumed": [], "children": []}  # index_waits.py
        for state in {o["state"] for o in outcomes}:
            group = [o for o in outcomes if o["state"] == state]
            sources = _in(sources_for(state))
            final = RunState(state) in FINAL_STATES
            bump = 0 if final else 1
            # only the fields some outcome of the group has, as positional rows (`->>0`
            # costs far less than `->>'id'`; each field read is a JSON parse per row)
            keys = set().union(*group)  # (an outcome holds the fields it sets)
            present = tuple(f for f in _OPTIONAL_FIELDS if f in keys)
            fields = [[o["id"], o["attempt"], *(o.get(f) for f in present)] for o in group]
            statement = _finish_statement(sources, present)
            for chunk in json_chunks(fields):
                rows = self.sql.exec(statement, state, now, final, bump, chunk, token)
                made: list[str] = []  # by a parent that waits on them (waits/)
                for rid, dispatch, has_object, waited in rows:
                    applied[rid] = dispatch
                    if final and has_object == WATCHED:
                        watched[rid] = state
                    if waited:
                        made.append(rid)
                # suspended runs whose waits completed meanwhile resume at once; ended
                # runs a parent waits on complete its waitpoint
                if state == RunState.WAITING and rows:
                    waits["resumed"] += resume_ready(self.sql, [r[0] for r in rows], now)
                elif final and rows:
                    waits["children"] += waiting_children(self.sql, [r[0] for r in rows], made)
        out: dict[str, Any] = {"applied": applied, **{k: v for k, v in waits.items() if v}}
        return {**out, "watched": watched} if watched else out

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
