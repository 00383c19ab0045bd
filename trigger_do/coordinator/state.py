"""The coordinator's tables, its queue's row, and the statements its read and apply steps
are made of (`Tables`: each method one documented read or write, for one queue)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ports import Sql
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from . import windows
from .decide import Counts, Head, Park, SlotRow

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS coord_queues (
        queue TEXT PRIMARY KEY,
        clock REAL NOT NULL DEFAULT 0,
        paused INTEGER NOT NULL DEFAULT 0,
        limit_override INTEGER,
        spec TEXT NOT NULL DEFAULT '{}',
        alarm_at REAL,
        rr_key TEXT,
        seq INTEGER NOT NULL DEFAULT 0,
        lease REAL NOT NULL DEFAULT 30
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS coord_slots (
        queue TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, task TEXT,
        rate_id TEXT, state TEXT NOT NULL, lease_until REAL NOT NULL, granted_at REAL NOT NULL,
        PRIMARY KEY (queue, run_id)
    ) WITHOUT ROWID""",
    # (`coord_slots_key` on (queue, key) served no query: the counts read every slot of the
    # queue anyway; each grant and release paid for it)
    "DROP INDEX IF EXISTS coord_slots_key",
    "CREATE INDEX IF NOT EXISTS coord_slots_lease ON coord_slots(queue, lease_until)",
    """CREATE TABLE IF NOT EXISTS coord_parked (
        queue TEXT NOT NULL, run_id TEXT NOT NULL, key TEXT NOT NULL, task TEXT,
        rate_id TEXT, seq INTEGER NOT NULL, body TEXT NOT NULL, parked_at REAL NOT NULL,
        handed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (queue, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS coord_parked_head ON coord_parked(queue, key, handed, seq)",
    """CREATE TABLE IF NOT EXISTS coord_keys (
        queue TEXT NOT NULL, key TEXT NOT NULL, waiting INTEGER NOT NULL,
        PRIMARY KEY (queue, key)
    ) WITHOUT ROWID""",
    *windows.SCHEMA,
]

ALARM_GRACE = 5.0  # an alarm this overdue is assumed lost: the next call sets it again


@dataclass
class QueueState:
    """The queue's row, as one call reads it, updates it and saves it."""

    name: str
    clock: float = 0.0
    paused: bool = False
    limit_override: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    alarm_at: float | None = None
    rr_key: str | None = None
    seq: int = 0
    lease: float = 30.0

    @property
    def limit(self) -> int | None:
        if self.limit_override is not None:
            return self.limit_override
        value = self.spec.get("queue_limit")
        return int(value) if value is not None else None


def rate_id_of(task: str | None, rate_key: str | None) -> str:
    return f"{task or ''}|{rate_key or ''}"


class Tables:
    """The statements on one queue's rows of the coordinator's tables."""

    def __init__(self, sql: Sql, queue: str) -> None:
        self.sql = sql
        self.queue = queue

    # --- reads ------------------------------------------------------------------------------

    def load(self, now: float) -> QueueState:
        """The queue's row (a new one if none), its clock moved on to `now` if behind."""
        rows = self.sql.exec(
            "SELECT clock, paused, limit_override, spec, alarm_at, rr_key, seq, lease "
            "FROM coord_queues WHERE queue = ?",
            self.queue,
        )
        if not rows:
            return QueueState(self.queue, clock=now)
        clock, paused, override, spec, alarm_at, rr_key, seq, lease = rows[0]
        return QueueState(
            self.queue,
            clock=max(float(clock), now),
            paused=bool(paused),
            limit_override=override,
            spec=loads(spec),
            alarm_at=alarm_at,
            rr_key=rr_key,
            seq=seq,
            lease=lease,
        )

    def counts(self) -> Counts:
        """Slots per key, slots in all, rate tickets (reserved slots) per rate id, and the
        parked runs waiting per key."""
        slots: dict[str, int] = defaultdict(int)
        tickets: dict[str, int] = defaultdict(int)
        for key, rate_id, state, n in self.sql.exec(
            "SELECT key, rate_id, state, count(*) FROM coord_slots WHERE queue = ? "
            "AND state != 'standby' GROUP BY key, rate_id, state",
            self.queue,
        ):
            slots[key] += n
            if state == "reserved" and rate_id is not None:
                tickets[rate_id] += n
        waiting = dict(
            self.sql.exec(
                "SELECT key, waiting FROM coord_keys WHERE queue = ? AND waiting > 0", self.queue
            )
        )
        return Counts(dict(slots), sum(slots.values()), dict(tickets), waiting)

    def over(self, statement: str, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """`statement` (parameters: the queue, a JSON array of ids) over `ids`, chunked;
        the rows it returns, if any."""
        out: list[tuple[Any, ...]] = []
        for chunk in json_chunks(ids):
            out += self.sql.exec(statement, self.queue, chunk)
        return out

    def slot_states(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The state (`held` or `reserved`) of the slot each of `run_ids` has."""
        return dict(
            self.over(
                "SELECT run_id, state FROM coord_slots WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                run_ids,
            )
        )

    def parked_ids(self, run_ids: Sequence[str]) -> frozenset[str]:
        """Those of `run_ids` with a parked row (handed back or not)."""
        return frozenset(
            r[0]
            for r in self.over(
                "SELECT run_id FROM coord_parked WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                run_ids,
            )
        )

    # --- writes -----------------------------------------------------------------------------

    def save(self, q: QueueState) -> None:
        self.sql.exec(
            """INSERT INTO coord_queues (queue, clock, paused, limit_override, spec, alarm_at,
                rr_key, seq, lease) VALUES (?,?,?,?,?,?,?,?,?)
            ON CONFLICT (queue) DO UPDATE SET clock = excluded.clock, paused = excluded.paused,
                limit_override = excluded.limit_override, spec = excluded.spec,
                alarm_at = excluded.alarm_at, rr_key = excluded.rr_key, seq = excluded.seq,
                lease = excluded.lease""",
            self.queue,
            q.clock,
            int(q.paused),
            q.limit_override,
            dumps(q.spec),
            q.alarm_at,
            q.rr_key,
            q.seq,
            q.lease,
        )

    def add_waiting(self, deltas: Mapping[str, int]) -> None:
        """Add to the keys' counts of waiting runs (a key at zero loses its row)."""
        rows = [[k, n] for k, n in deltas.items() if n]
        if not rows:
            return
        for chunk in json_chunks(rows):
            self.sql.exec(
                "INSERT INTO coord_keys (queue, key, waiting) SELECT ?1, value->>0, value->>1 "
                "FROM json_each(?2) WHERE true ON CONFLICT (queue, key) DO UPDATE SET "
                "waiting = waiting + excluded.waiting",
                self.queue,
                chunk,
            )
        self.sql.exec("DELETE FROM coord_keys WHERE queue = ? AND waiting <= 0", self.queue)

    def reclaim(self, now: float) -> bool:
        """Delete slots whose lease lapsed; a handed-back run that never came back, or a
        directly granted one whose consumer died, goes back to the head of its key's line.
        Returns whether any lapsed."""
        lapsed = self.sql.exec(
            "DELETE FROM coord_slots WHERE queue = ? AND lease_until < ? RETURNING run_id",
            self.queue,
            now,
        )
        if not lapsed:
            return False
        back: dict[str, int] = defaultdict(int)
        for chunk in json_chunks([r[0] for r in lapsed]):
            for (key,) in self.sql.exec(
                "UPDATE coord_parked SET handed = 0 WHERE queue = ? AND handed = 1 AND run_id IN "
                "(SELECT value FROM json_each(?)) RETURNING key",
                self.queue,
                chunk,
            ):
                back[key] += 1
        self.add_waiting(back)
        return True

    def forget(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Delete the slots and parked rows of `run_ids` (their attempts ended). Returns how
        many slots each key lost."""
        freed: dict[str, int] = defaultdict(int)
        for chunk in json_chunks(run_ids):
            for (key,) in self.sql.exec(
                "DELETE FROM coord_slots WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?)) RETURNING key",
                self.queue,
                chunk,
            ):
                freed[key] += 1
            gone = self.sql.exec(
                "DELETE FROM coord_parked WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?)) RETURNING key, handed",
                self.queue,
                chunk,
            )
            removed: dict[str, int] = defaultdict(int)
            for key, handed in gone:
                if not handed:
                    removed[key] -= 1
            self.add_waiting(removed)
        return freed

    def add_slots(self, rows: Sequence[SlotRow], state: str, until: float, at: float) -> None:
        """Slots in `state` (`held`, `reserved`) for `rows`, leased until `until`. (Each
        row travels as an object without its null fields: JSON with no `null` in it is
        sent without a walk looking for NaNs.)"""
        objects: list[dict[str, str]] = []
        for run_id, key, task, rate_id in rows:
            row = {"r": run_id, "k": key}
            if task is not None:
                row["t"] = task
            if rate_id is not None:
                row["q"] = rate_id
            objects.append(row)
        for chunk in json_chunks(objects):
            self.sql.exec(
                "INSERT OR REPLACE INTO coord_slots (queue, run_id, key, task, rate_id, "
                "state, lease_until, granted_at) SELECT ?1, value->>'r', value->>'k', "
                "value->>'t', value->>'q', ?2, ?3, ?4 FROM json_each(?5)",
                self.queue,
                state,
                until,
                at,
                chunk,
            )

    def waiting_of(self, keys: Sequence[str]) -> dict[str, int]:
        """The parked runs waiting (not handed back) of each of `keys` that has some."""
        return dict(
            self.over(
                "SELECT key, waiting FROM coord_keys WHERE queue = ? AND key IN "
                "(SELECT value FROM json_each(?)) AND waiting > 0",
                keys,
            )
        )

    def slots_by_key(self, keys: Sequence[str]) -> dict[str, int]:
        """The slots (held and reserved) of each of `keys` that has some (one read of the
        queue's slots, however many keys)."""
        return dict(
            self.over(
                "SELECT key, count(*) FROM coord_slots WHERE queue = ? AND key IN "
                "(SELECT value FROM json_each(?)) AND state != 'standby' GROUP BY key",
                keys,
            )
        )

    def hand_heads(self, wants: Mapping[str, int]) -> dict[str, list[Head]]:
        """Mark the first `wants[key]` runs of each key's line handed back, and return them
        in line order: the lines' heads read in bulk (`Heads`: a query for all the keys,
        another only where one asked for more than its first read gave), then marked in
        one statement."""
        heads = Heads(self.sql, self.queue)
        need = dict(wants)
        while need:  # (a read gives a key at most what it still needs)
            heads.fetch(need)
            need = {
                k: n
                for k in need
                if k not in heads.done and (n := wants[k] - len(heads.lines[k])) > 0
            }
        lines = {k: list(heads.lines.get(k, ())) for k in wants}
        self.mark_handed([h.run_id for line in lines.values() for h in line])
        return lines

    def save_turn(self, q: QueueState) -> None:
        """Save what a release's fast path moves: the clock and the key served last."""
        self.sql.exec(
            "UPDATE coord_queues SET clock = ?, rr_key = ? WHERE queue = ?",
            q.clock,
            q.rr_key,
            self.queue,
        )

    def promote(self, run_ids: Sequence[str]) -> None:
        """Standby slots whose runs started (their predecessors ended): held now."""
        self.over(
            "UPDATE coord_slots SET state = 'held' WHERE queue = ? AND state = 'standby' "
            "AND run_id IN (SELECT value FROM json_each(?))",
            run_ids,
        )

    def mark_handed(self, run_ids: Sequence[str]) -> None:
        """Mark parked rows handed back (they stay until the run's slot is released)."""
        self.over(
            "UPDATE coord_parked SET handed = 1 WHERE queue = ? AND run_id IN "
            "(SELECT value FROM json_each(?))",
            run_ids,
        )

    def renew(self, run_ids: Sequence[str], until: float) -> None:
        """Lease the slots of `run_ids` until `until`."""
        for chunk in json_chunks(run_ids):
            self.sql.exec(
                "UPDATE coord_slots SET lease_until = ? WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                until,
                self.queue,
                chunk,
            )

    def start_reserved(self, run_ids: Sequence[str], until: float, at: float) -> None:
        """Handed-back runs start on their reserved slots; their parked rows go."""
        for chunk in json_chunks(run_ids):
            self.sql.exec(
                "UPDATE coord_slots SET state = 'held', lease_until = ?, granted_at = ? "
                "WHERE queue = ? AND run_id IN (SELECT value FROM json_each(?))",
                until,
                at,
                self.queue,
                chunk,
            )
            self.sql.exec(
                "DELETE FROM coord_parked WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                self.queue,
                chunk,
            )

    def unhand(self, run_id: str) -> None:
        """A handed-back run loses its reserved slot and goes back to its line's head."""
        self.sql.exec("DELETE FROM coord_slots WHERE queue = ? AND run_id = ?", self.queue, run_id)
        rows = self.sql.exec(
            "UPDATE coord_parked SET handed = 0 WHERE queue = ? AND run_id = ? AND handed = 1 "
            "RETURNING key",
            self.queue,
            run_id,
        )
        if rows:
            self.add_waiting({rows[0][0]: 1})

    def newer_bodies(self, bodies: Sequence[tuple[str, Any]]) -> None:
        """Parked runs' rows take these messages where they are of a newer dispatch."""
        rows = [[run_id, dumps(body)] for run_id, body in bodies]
        for chunk in json_chunks(rows):
            self.sql.exec(
                "UPDATE coord_parked SET body = j.value->>1 FROM json_each(?2) AS j "
                "WHERE queue = ?1 AND run_id = j.value->>0 AND "
                "coalesce((j.value->>1)->>'d', 0) > coalesce(body->>'d', 0)",
                self.queue,
                chunk,
            )

    def park(self, parks: Sequence[Park], at: float) -> None:
        """Parked rows for `parks` (a run parked already keeps its row), counted waiting."""
        rows = [[p.run_id, p.key, p.task, p.rate_id, p.seq, dumps(p.body)] for p in parks]
        for chunk in json_chunks(rows):
            self.sql.exec(
                "INSERT OR IGNORE INTO coord_parked (queue, run_id, key, task, rate_id, seq, "
                "body, parked_at) SELECT ?1, value->>0, value->>1, value->>2, value->>3, "
                "value->>4, value->>5, ?2 FROM json_each(?3)",
                self.queue,
                at,
                chunk,
            )
        added: dict[str, int] = defaultdict(int)
        for p in parks:
            added[p.key] += 1
        self.add_waiting(added)


READ_BUDGET = 64  # heads a first read may take in all, shared by the keys it asks about


class Heads:
    """Reads the parked runs at the head of keys' lines in bulk: one query fetches the next
    few of every key asked for (a window per key: all a key could use when few keys are
    asked, else a few, doubling each time), so a pump costs a query or two however long
    the lines are. `lines`: what was read per key, in order;
    `done`: the keys whose whole line was read."""

    def __init__(self, sql: Sql, queue: str) -> None:
        self.sql = sql
        self.queue = queue
        self.lines: dict[str, tuple[Head, ...]] = {}
        self.after: dict[str, int] = {}  # the last seq read per key
        self.size = 8
        self.done: set[str] = set()

    def fetch(self, wants: Mapping[str, int]) -> list[Head]:
        """Read the next runs of each key in `wants` (at most that many, at least one, at
        most the current size); returns the runs read."""
        size = max(self.size, READ_BUDGET // len(wants))  # few keys asked: all they want
        self.size = min(self.size * 2, 512)
        n = {k: max(1, min(size, w)) for k, w in wants.items()}
        asked = [[k, self.after.get(k, -1)] for k in wants]
        got: dict[str, list[Head]] = defaultdict(list)
        for chunk in json_chunks(asked):
            for key, seq, run_id, task, rate_id, body in self.sql.exec(
                # per key: the seq of its n-th next run bounds an index range scan
                "WITH a AS MATERIALIZED (SELECT value->>0 AS key, value->>1 AS after, "
                "coalesce((SELECT x.seq FROM coord_parked AS x WHERE x.queue = ?1 "
                "AND x.key = value->>0 AND x.handed = 0 AND x.seq > value->>1 "
                "ORDER BY x.seq LIMIT 1 OFFSET ?3 - 1), 9e18) AS upto FROM json_each(?2)) "
                "SELECT p.key, p.seq, p.run_id, p.task, p.rate_id, p.body FROM a "
                "JOIN coord_parked AS p ON p.queue = ?1 AND p.key = a.key AND p.handed = 0 "
                "AND p.seq > a.after AND p.seq <= a.upto ORDER BY p.key, p.seq",
                self.queue,
                chunk,
                max(n.values()),
            ):
                if len(got[key]) < n[key]:  # (LIMIT takes no column: the most, then trim)
                    got[key].append(Head(run_id, task, rate_id, body))
                    self.after[key] = seq
        new: list[Head] = []
        for key in wants:
            rows = got.get(key, [])
            self.lines[key] = self.lines.get(key, ()) + tuple(rows)
            new += rows
            if len(rows) < n[key]:
                self.done.add(key)
        return new
