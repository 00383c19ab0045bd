"""Waitpoints: what a WAITING run waits for, kept on the run's own index shard.

One general core for every kind of wait. A run that suspends records a *waitpoint* (its
position in the run's call order, `seq`; its `kind`; an optional user `key`; how many
completions it `expected`) and its attempt's outcome moves it RUNNING -> WAITING, ending
its delivery and releasing its concurrency slot. Something completes the waitpoint: its
due time (a `timer`, fired by the shard's one `waits` timer), or its child runs finishing
(`run`, `batch`: one *item* per child, written once however often it is reported). When a
WAITING run has no open waitpoint left it moves to QUEUED (continued: the same attempt,
resumed) in the same transaction, and its caller sends the message (`resumed` rows); a lost
message is sent again by housekeeping, like any overdue queued run. The run replays from the
top and every completed waitpoint returns its recorded result at once (`waits_of`).

Kinds are data (`kind` column): a new kind (a token, an event) is a new way to complete a
waitpoint, never a new suspension path.
"""

from __future__ import annotations

from typing import Any

from ..ports import Sql
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from ..shared.states import FINAL_STATES, RunState, sources_for
from .index_schema import ROW_COLUMNS, IndexBase, _in, row_to_dict

WAITS_TIMER = "waits"  # the shard's one timer: due at its earliest open timer waitpoint
FIRE_LIMIT = 2000  # timer waitpoints completed per transaction (a backlog: several)

WAITS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS waitpoints (
        id TEXT PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
        key TEXT, due REAL, expected INTEGER NOT NULL DEFAULT 1, children TEXT,
        created_at REAL NOT NULL, completed_at REAL
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS waitpoints_run ON waitpoints(run_id, seq)",
    "CREATE INDEX IF NOT EXISTS waitpoints_due ON waitpoints(due) "
    "WHERE completed_at IS NULL AND due IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS waitpoints_open ON waitpoints(created_at) "
    "WHERE completed_at IS NULL AND due IS NULL",
    """CREATE TABLE IF NOT EXISTS waitpoint_items (
        waitpoint TEXT NOT NULL, idx INTEGER NOT NULL, run_id TEXT NOT NULL,
        state TEXT NOT NULL, output TEXT, output_packet TEXT, error TEXT,
        PRIMARY KEY (waitpoint, idx)
    ) WITHOUT ROWID""",
    # a run's children, for its `relatedRuns` (a child's parent is in its options)
    "CREATE INDEX IF NOT EXISTS runs_parent ON runs(options->>'parent_run_id') "
    "WHERE options->>'parent_run_id' IS NOT NULL",
    # more parents awaiting a run than the one that made it (an idempotency key named it)
    """CREATE TABLE IF NOT EXISTS child_waiters (
        child TEXT NOT NULL, waitpoint TEXT NOT NULL, idx INTEGER NOT NULL,
        PRIMARY KEY (child, waitpoint, idx)
    ) WITHOUT ROWID""",
    # the parent a two-phase batch's runs get, given when the batch was created (HTTP API)
    """CREATE TABLE IF NOT EXISTS batch_links (
        batch_id TEXT PRIMARY KEY, links TEXT NOT NULL
    ) WITHOUT ROWID""",
]


def waitpoint_id(run_id: str, seq: int) -> str:
    """A waitpoint's id: its run's id (which names the shard holding it) and position."""
    return f"{run_id}:{seq}"


def run_of(waitpoint: str) -> str:
    return waitpoint.rsplit(":", 1)[0]


def resume_ready(sql: Sql, run_ids: list[str], now: float) -> list[dict[str, Any]]:
    """Move to QUEUED (continued, a new dispatch) the WAITING runs among `run_ids` that have
    no open waitpoint left; return what their messages need (`{id, task, dispatch,
    attempt, queue, concurrency_key, rate_key}`)."""
    out: list[dict[str, Any]] = []
    for chunk in json_chunks(run_ids):
        rows = sql.exec(
            f"""UPDATE runs SET state = 'queued', continued = 1, dispatch = dispatch + 1,
                due_at = ?1, updated_at = ?1
            WHERE id IN (SELECT value FROM json_each(?2)) AND +state = 'waiting'
              AND +state IN ({_in(sources_for(RunState.QUEUED))})
              AND NOT EXISTS (SELECT 1 FROM waitpoints w WHERE w.run_id = runs.id
                              AND w.completed_at IS NULL)
            RETURNING id, task, dispatch, attempt, queue, concurrency_key,
                      options->>'rate_key'""",
            now,
            chunk,
        )
        out += [
            dict(
                zip(
                    ("id", "task", "dispatch", "attempt", "queue", "concurrency_key", "rate_key"),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ]
    return out


def waiting_children(
    sql: Sql, finished: list[str], made: list[str] | None = None
) -> list[dict[str, Any]]:
    """Of the ended runs among `finished`, those a parent waits on: each as the item it
    completes (`{waitpoint, idx, run_id, state, output, output_packet, error}`), for the
    parent that made it and for any other that awaits it (`child_waiters`). `made`: those
    of `finished` that a waiting parent made, when the caller knows (None: looked up)."""
    final = _in(sorted(FINAL_STATES))
    rows: list[tuple[Any, ...]] = []
    for chunk in json_chunks(finished if made is None else made):
        rows += sql.exec(
            "SELECT options->>'waitpoint', options->>'waitpoint_index', id, state, output, "
            "output_packet, error FROM runs WHERE id IN (SELECT value FROM json_each(?)) "
            f"AND options != '{{}}' AND options->>'waitpoint' IS NOT NULL AND state IN ({final})",
            chunk,
        )
    # (other parents are rare: one cheap look before a join over every ended run)
    if sql.exec("SELECT 1 FROM child_waiters LIMIT 1"):
        for chunk in json_chunks(finished):
            rows += sql.exec(
                "SELECT c.waitpoint, c.idx, r.id, r.state, r.output, r.output_packet, r.error "
                "FROM child_waiters c JOIN runs r ON r.id = c.child "
                f"WHERE c.child IN (SELECT value FROM json_each(?)) AND r.state IN ({final})",
                chunk,
            )
    return [
        {"waitpoint": wp, "idx": int(idx or 0), "run_id": rid, "state": state,
         "output": output, "output_packet": packet, "error": error}
        for wp, idx, rid, state, output, packet, error in rows
    ]  # fmt: skip


class WaitWrites(IndexBase):
    """The run index's waitpoint methods (one shard: the waiting runs it holds)."""

    timers: Any  # ObjectTimers, set by RunIndexObject

    def create_waitpoint(
        self,
        run_id: str,
        seq: int,
        kind: str,
        key: str | None,
        due: float | None,
        expected: int,
        done_before: list[list[Any]],
        now: float,
    ) -> bool:
        """Record that `run_id` waits at position `seq` (an existing record is kept: a
        replay reaching a wait it recorded before). `done_before`: `[seq, kind, key]` of
        waits it completed in place since (short sleeps), recorded completed so that a
        replay skips them too. A `due` time arms the shard's waits timer. Returns whether
        the waitpoint is completed already."""
        for s, k, ky in done_before:
            self.sql.exec(
                "INSERT OR IGNORE INTO waitpoints (id, run_id, seq, kind, key, expected, "
                "created_at, completed_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                waitpoint_id(run_id, int(s)),
                run_id,
                int(s),
                k,
                ky,
                now,
                now,
            )
        self.sql.exec(
            "INSERT OR IGNORE INTO waitpoints (id, run_id, seq, kind, key, due, expected, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            waitpoint_id(run_id, seq),
            run_id,
            seq,
            kind,
            key,
            due,
            expected,
            now,
        )
        if due is not None:
            self.timers.set_earliest(WAITS_TIMER, due)
        found = self.sql.exec(
            "SELECT completed_at FROM waitpoints WHERE id = ?", waitpoint_id(run_id, seq)
        )
        return found[0][0] is not None

    def add_waiter(self, child: str, waitpoint: str, idx: int) -> list[dict[str, Any]]:
        """Another parent awaits `child` (on the child's shard): its end completes that
        parent's `waitpoint` too. Returns the item at once if it has ended already."""
        self.sql.exec(
            "INSERT OR IGNORE INTO child_waiters (child, waitpoint, idx) VALUES (?, ?, ?)",
            child,
            waitpoint,
            idx,
        )
        return [i for i in waiting_children(self.sql, [child]) if i["waitpoint"] == waitpoint]

    def ended_children(self, run_ids: list[str]) -> list[dict[str, Any]]:
        """`waiting_children` across the object boundary: runs that ended outside an
        attempt's outcome (a cancel, an expiry)."""
        return waiting_children(self.sql, run_ids)

    def set_children(self, waitpoint: str, children: list[str]) -> None:
        """The runs (or batch runs) a `run`/`batch` waitpoint waits on: what a cancel of
        the waiting run cancels, and what housekeeping checks."""
        self.sql.exec("UPDATE waitpoints SET children = ? WHERE id = ?", dumps(children), waitpoint)

    def waits_of_many(self, run_ids: list[str]) -> dict[str, Any]:
        """`waits_of` for many runs at once (a consumer's batch of resumed runs): only the
        runs that have waitpoints are in the answer."""
        out: dict[str, Any] = {}
        kinds: set[str] = set()
        for chunk in json_chunks(run_ids):
            for rid, seq, kind, key, completed in self.sql.exec(
                "SELECT run_id, seq, kind, key, completed_at FROM waitpoints "
                "WHERE run_id IN (SELECT value FROM json_each(?))",
                chunk,
            ):
                out.setdefault(rid, {})[str(seq)] = {
                    "kind": kind, "key": key, "done": completed is not None, "items": []
                }  # fmt: skip
                if kind != "timer":
                    kinds.add(rid)
        for rid in sorted(kinds):
            out[rid] = self.waits_of(rid)
        return out

    def waits_of(self, run_id: str) -> dict[str, Any]:
        """Every waitpoint of a run by position, for its replay: `{seq: {kind, key, done,
        items: [{idx, run_id, state, output, output_packet, error}]}}`."""
        out: dict[str, Any] = {}
        for wid, seq, kind, key, completed in self.sql.exec(
            "SELECT id, seq, kind, key, completed_at FROM waitpoints WHERE run_id = ?", run_id
        ):
            out[str(seq)] = {
                "id": wid,
                "kind": kind,
                "key": key,
                "done": completed is not None,
                "items": [],
            }
        if any(w["kind"] != "timer" for w in out.values()):
            for seq, idx, rid, state, output, packet, error in self.sql.exec(
                "SELECT w.seq, i.idx, i.run_id, i.state, i.output, i.output_packet, i.error "
                "FROM waitpoint_items i JOIN waitpoints w ON w.id = i.waitpoint "
                "WHERE w.run_id = ? ORDER BY w.seq, i.idx",
                run_id,
            ):
                out[str(seq)]["items"].append(
                    {
                        "idx": idx,
                        "run_id": rid,
                        "state": state,
                        "output": output,
                        "output_packet": packet,
                        "error": loads(error) if error else None,
                    }
                )
        return out

    def complete_items(self, items: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Children ended: record each as its waitpoint's item (once: a repeat changes
        nothing), complete the waitpoints that have every item, and resume their runs
        when nothing else holds them. Returns the resumed runs (`resume_ready`)."""
        touched: set[str] = set()
        for chunk in json_chunks(items):
            for (wp,) in self.sql.exec(
                """INSERT OR IGNORE INTO waitpoint_items (waitpoint, idx, run_id, state, output,
                    output_packet, error)
                SELECT value->>'waitpoint', value->>'idx', value->>'run_id', value->>'state',
                    value->>'output', value->>'output_packet', value->>'error'
                FROM json_each(?) RETURNING waitpoint""",
                chunk,
            ):
                touched.add(wp)
        runs: list[str] = []
        for chunk in json_chunks(sorted(touched)):
            runs += [
                r[0]
                for r in self.sql.exec(
                    """UPDATE waitpoints SET completed_at = ?1
                    WHERE id IN (SELECT value FROM json_each(?2)) AND completed_at IS NULL
                      AND (SELECT count(*) FROM waitpoint_items i
                           WHERE i.waitpoint = waitpoints.id) >= expected
                    RETURNING run_id""",
                    now,
                    chunk,
                )
            ]
        return resume_ready(self.sql, sorted(set(runs)), now) if runs else []

    def fire_waits(self, now: float) -> dict[str, Any]:
        """Complete the timer waitpoints due at `now` (at most `FIRE_LIMIT`), resume their
        runs, and keep the waits timer at the next due one. `{resumed, more}`."""
        runs = [
            r[0]
            for r in self.sql.exec(
                "UPDATE waitpoints SET completed_at = ?1 WHERE id IN (SELECT id FROM waitpoints "
                "WHERE completed_at IS NULL AND due <= ?1 ORDER BY due LIMIT ?2) "
                "RETURNING run_id",
                now,
                FIRE_LIMIT,
            )
        ]
        (following,) = self.sql.exec(
            "SELECT min(due) FROM waitpoints WHERE completed_at IS NULL AND due IS NOT NULL"
        )[0]
        if following is not None:
            self.timers.set(WAITS_TIMER, float(following))
        resumed = resume_ready(self.sql, sorted(set(runs)), now) if runs else []
        return {"resumed": resumed, "more": len(runs) == FIRE_LIMIT}

    def open_child_waits(
        self, created_before: float, run_ids: list[str] | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Open waitpoints on child runs (`run_ids`: of those runs; else those created before
        `created_before`, for housekeeping): `{id, run_id, children}` each."""
        rows: list[tuple[Any, ...]] = []
        if run_ids is not None:
            for chunk in json_chunks(run_ids):
                rows += self.sql.exec(
                    "SELECT id, run_id, children FROM waitpoints WHERE run_id IN "
                    "(SELECT value FROM json_each(?)) AND completed_at IS NULL "
                    "AND children IS NOT NULL",
                    chunk,
                )
        else:
            rows = self.sql.exec(
                "SELECT id, run_id, children FROM waitpoints WHERE completed_at IS NULL "
                "AND due IS NULL AND created_at < ? AND children IS NOT NULL LIMIT ?",
                created_before,
                limit,
            )
        return [{"id": w, "run_id": r, "children": loads(c)} for w, r, c in rows]

    def cancel_many(self, run_ids: list[str], now: float) -> list[str]:
        """Cancel runs (a canceled parent's children); returns those that were canceled."""
        return self._finish_simple(run_ids, RunState.CANCELED, now)

    def waitpoints_of(self, run_id: str) -> list[dict[str, Any]]:
        """A run's waitpoints as the dashboard shows them, in order: `{seq, kind, key, due,
        created_at, completed_at, children}` (the run ids it waits on)."""
        out: list[dict[str, Any]] = []
        for wid, seq, kind, key, due, created, completed in self.sql.exec(
            "SELECT id, seq, kind, key, due, created_at, completed_at FROM waitpoints "
            "WHERE run_id = ? ORDER BY seq",
            run_id,
        ):
            children = [
                rid
                for (rid,) in self.sql.exec(
                    "SELECT run_id FROM waitpoint_items WHERE waitpoint = ? ORDER BY idx", wid
                )
            ]
            out.append(
                {"seq": seq, "kind": kind, "key": key, "due": due, "created_at": created,
                 "completed_at": completed, "children": children}
            )  # fmt: skip
        return out

    def children_of(self, parent_run_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The runs on this shard that `parent_run_id` triggered, oldest first."""
        return [
            row_to_dict(r)
            for r in self.sql.exec(
                f"SELECT {ROW_COLUMNS} FROM runs WHERE options->>'parent_run_id' = ? "
                "ORDER BY created_at, id LIMIT ?",
                parent_run_id,
                limit,
            )
        ]

    def link_batch(self, batch_id: str, links: dict[str, Any]) -> None:
        """The parent links every run of a batch gets (`parent_run_id`, ...)."""
        self.sql.exec(
            "INSERT OR REPLACE INTO batch_links (batch_id, links) VALUES (?, ?)",
            batch_id,
            dumps(links),
        )

    def batch_links(self, batch_id: str) -> dict[str, Any]:
        found = self.sql.exec("SELECT links FROM batch_links WHERE batch_id = ?", batch_id)
        return dict(loads(found[0][0])) if found else {}

    def purge_waits(self, run_ids: list[str]) -> None:
        """Forget the waitpoints of runs purged by retention."""
        for chunk in json_chunks(run_ids):
            self.sql.exec(
                "DELETE FROM waitpoint_items WHERE waitpoint IN (SELECT id FROM waitpoints "
                "WHERE run_id IN (SELECT value FROM json_each(?1)))",
                chunk,
            )
            self.sql.exec(
                "DELETE FROM waitpoints WHERE run_id IN (SELECT value FROM json_each(?))", chunk
            )
            self.sql.exec(
                "DELETE FROM child_waiters WHERE child IN (SELECT value FROM json_each(?))", chunk
            )
