"""The coordinator: one object per queue (`task/<id>` or a shared queue's name) holding its
concurrency slots, rate windows and parked runs, for every concurrency key of the queue.

One object per queue, not per key, because a queue-wide `concurrency_limit` and the
round-robin across keys are decisions over all keys at once; each call still takes the
whole batch's runs for the queue (all keys) in one transaction.

- A slot is held by a run id under a lease (renewed by its consumer); it is released when
  the attempt's outcome is durable, and reclaimed when its lease runs out (a dead consumer).
  Slots are per run id, so every call is idempotent: a redelivered or duplicate message of
  a run that holds a slot is granted again without taking a second one.
- A run that cannot start is parked (its message body stored, FIFO per key) and its
  message acked. When capacity appears (a release, a lapsed lease, a window that opens,
  a resume) parked runs are handed back in round-robin order across keys: each gets a
  *reserved* slot (and so a rate ticket) and its message body is returned for the caller
  to enqueue; its next delivery is granted at once. So a parked run costs two deliveries.
- Direct grants: a `release` may ask to `take` up to N of the runs it hands back. Those
  get a *held* slot for the caller at once (it starts them without a queue round trip: one
  delivery per parked run). Their parked rows stay (marked handed) until their slots are
  released, so if the caller dies the lapsed lease puts them back in line, and the
  coordinator hands them back again: a directly granted run is never lost.
- Windows that open with no event to notice them are covered by an alarm: a call returns
  `alarm` (epoch seconds) when the object needs a `wake` then; the caller sends a delayed
  wake message through the run queue (on Cloudflare a Durable Object alarm can call `wake`).
- The object keeps its own monotonic clock (`now` = the latest time any caller passed), and
  returns it as `at`: a granted run starts at `at`, which is never before the release that
  freed its slot, and rate windows count starts at exactly that instant.

Methods run in one transaction each and take and return JSON-native values.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..ports import Sql
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from .state import ALARM_GRACE, SCHEMA, Counts, Heads, QueueState, rate_id_of
from .windows import SqlStorage, Window


class CoordinatorObject:
    """One queue's coordinator (the object's name is the queue's name)."""

    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.name = name
        self.storage = SqlStorage(sql, name)
        self._windows: dict[str, Window] = {}

    @staticmethod
    def schema() -> list[str]:
        return SCHEMA

    # --- the consumer's calls ----------------------------------------------------------------

    def acquire(
        self,
        requests: list[dict[str, Any]],
        specs: dict[str, Any],
        now: float,
        lease_seconds: float,
    ) -> dict[str, Any]:
        """Decide, for each request `{id, task, key, rate_id?, body}`, whether the run may
        start now (`granted`) or is `parked` (its message is then acked by the caller).

        `specs`: `{"queue_limit": n|None, "tasks": {task: {"key_limit", "rate"}}}`, the
        declarations the caller knows (the latest wins). Returns `{at, granted, parked,
        handback, alarm}`: `handback` are message bodies to enqueue now, `alarm` when to
        call `wake` (None: no change)."""
        q = self._load(now)
        q.lease = float(lease_seconds)
        q.spec["queue_limit"] = specs.get("queue_limit")
        q.spec.setdefault("tasks", {}).update(specs.get("tasks", {}))
        now = q.clock
        self.storage.now = now
        self._sweep(q, now)
        counted = self._counts(q)
        handback = self._pump(q, now, counted=counted)
        ids = [r["id"] for r in requests]
        slots = self._select(
            "SELECT run_id, state FROM coord_slots WHERE queue = ? AND run_id IN "
            "(SELECT value FROM json_each(?))",
            ids,
        )
        parked_rows = self._select(
            "SELECT run_id, handed FROM coord_parked WHERE queue = ? AND run_id IN "
            "(SELECT value FROM json_each(?))",
            ids,
        )
        slot_state = {r[0]: r[1] for r in slots}
        parked_ids = {r[0] for r in parked_rows}
        counts, total, tickets, waiting = counted
        granted: list[str] = []
        parked: list[str] = []
        new_slots: list[list[Any]] = []
        new_parked: list[list[Any]] = []
        for r in requests:
            run_id, task, key = r["id"], r.get("task"), r.get("key") or ""
            rate_id = rate_id_of(task, r.get("rate_key"))
            state = slot_state.get(run_id)
            if state == "held":  # a duplicate or a redelivery: already holds its slot
                self.sql.exec(
                    "UPDATE coord_slots SET lease_until = ? WHERE queue = ? AND run_id = ?",
                    now + q.lease,
                    self.name,
                    run_id,
                )
                granted.append(run_id)
                continue
            if state == "reserved":  # handed back: its slot and rate ticket wait for it
                window = self._window(q, task)
                if window is not None and not window.hit(rate_id):
                    self._unhand(run_id)  # cannot happen while tickets are counted; be safe
                    parked.append(run_id)
                    continue
                self.sql.exec(
                    "UPDATE coord_slots SET state = 'held', lease_until = ?, granted_at = ? "
                    "WHERE queue = ? AND run_id = ?",
                    now + q.lease,
                    now,
                    self.name,
                    run_id,
                )
                self.sql.exec(
                    "DELETE FROM coord_parked WHERE queue = ? AND run_id = ?", self.name, run_id
                )
                granted.append(run_id)
                continue
            if run_id in parked_ids:  # parked and not handed back yet: keeps its place
                parked.append(run_id)
                continue
            spec = q.task_spec(task)
            key_limit = spec.get("key_limit")
            window = self._window(q, task)
            ok = (
                not q.paused
                and not waiting.get(key)
                and (q.limit is None or total < q.limit)
                and (key_limit is None or counts[key] < key_limit)
                and (window is None or window.room(rate_id) - tickets[rate_id] >= 1)
            )
            if ok and window is not None:
                ok = window.hit(rate_id)
            if ok:
                counts[key] += 1
                total += 1
                new_slots.append([run_id, key, task, rate_id if window else None])
                granted.append(run_id)
            else:
                q.seq += 1
                waiting[key] = waiting.get(key, 0) + 1
                body = r.get("body")
                new_parked.append([run_id, key, task, rate_id, q.seq, dumps(body)])
                parked_ids.add(run_id)
                parked.append(run_id)
        for chunk in json_chunks(new_slots):
            self.sql.exec(
                "INSERT OR REPLACE INTO coord_slots (queue, run_id, key, task, rate_id, state, "
                "lease_until, granted_at) SELECT ?1, value->>0, value->>1, value->>2, "
                "value->>3, 'held', ?2, ?3 FROM json_each(?4)",
                self.name,
                now + q.lease,
                now,
                chunk,
            )
        for chunk in json_chunks(new_parked):
            self.sql.exec(
                "INSERT OR IGNORE INTO coord_parked (queue, run_id, key, task, rate_id, seq, "
                "body, parked_at) SELECT ?1, value->>0, value->>1, value->>2, value->>3, "
                "value->>4, value->>5, ?2 FROM json_each(?3)",
                self.name,
                now,
                chunk,
            )
        added: dict[str, int] = defaultdict(int)
        for row in new_parked:
            added[row[1]] += 1
        self._add_waiting(added)
        alarm = self._alarm(q, now)
        self._save(q)
        return {
            "at": now,
            "granted": granted,
            "parked": parked,
            "handback": handback,
            "alarm": alarm,
        }

    def release(
        self, run_ids: list[str], now: float, take: int = 0, lease_seconds: float | None = None
    ) -> dict[str, Any]:
        """Free the slots of `run_ids` (their attempts ended: any outcome, or they were
        skipped) and forget them if parked. Returns `{at, handback, alarm, granted}` like
        `acquire`; with `take`, up to that many of the runs handed back are granted to the
        caller directly (`granted`: their message bodies; they start at `at`)."""
        q = self._load(now)
        if lease_seconds is not None:
            q.lease = float(lease_seconds)
        now = q.clock
        self.storage.now = now
        for chunk in json_chunks(run_ids):
            self.sql.exec(
                "DELETE FROM coord_slots WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?))",
                self.name,
                chunk,
            )
            gone = self.sql.exec(
                "DELETE FROM coord_parked WHERE queue = ? AND run_id IN "
                "(SELECT value FROM json_each(?)) RETURNING key, handed",
                self.name,
                chunk,
            )
            removed: dict[str, int] = defaultdict(int)
            for key, handed in gone:
                if not handed:
                    removed[key] -= 1
            self._add_waiting(removed)
        return self._settle(q, now, take)

    def holding(self, run_ids: list[str], now: float) -> dict[str, Any]:
        """Which of `run_ids` this coordinator owns now (parked, handed back, or holding a
        live slot), after reclaiming lapsed leases: housekeeping must not send those again.
        Returns `{held, handback, alarm, at}` (send the hand-backs like any other)."""
        if not self.sql.exec("SELECT 1 FROM coord_queues WHERE queue = ?", self.name):
            return {"held": [], "handback": [], "alarm": None, "at": now}
        q = self._load(now)
        self.storage.now = q.clock
        res = self._settle(q, q.clock)
        held = self._select(
            "SELECT run_id FROM coord_parked WHERE queue = ? AND run_id IN "
            "(SELECT value FROM json_each(?)) UNION SELECT run_id FROM coord_slots "
            "WHERE queue = ?1 AND run_id IN (SELECT value FROM json_each(?2))",
            run_ids,
        )
        res["held"] = [r[0] for r in held]
        return res

    def extend(self, run_ids: list[str], now: float, lease_seconds: float) -> list[str]:
        """Renew the leases of held slots; return the runs that no longer hold one."""
        q = self._load(now)
        held: set[str] = set()
        for chunk in json_chunks(run_ids):
            held.update(
                r[0]
                for r in self.sql.exec(
                    "UPDATE coord_slots SET lease_until = ? WHERE queue = ? AND run_id IN "
                    "(SELECT value FROM json_each(?)) AND state = 'held' RETURNING run_id",
                    q.clock + lease_seconds,
                    self.name,
                    chunk,
                )
            )
        self._save(q)
        return [r for r in run_ids if r not in held]

    def wake(self, now: float) -> dict[str, Any]:
        """The alarm: reclaim lapsed leases, hand back what the open windows allow."""
        q = self._load(now)
        q.alarm_at = None
        self.storage.now = q.clock
        return self._settle(q, q.clock)

    # --- queue controls ---------------------------------------------------------------------

    def controls(self) -> dict[str, Any]:
        rows = self.sql.exec(
            "SELECT paused, limit_override FROM coord_queues WHERE queue = ?", self.name
        )
        paused, override = rows[0] if rows else (0, None)
        return {"paused": bool(paused), "limit_override": override}

    def pause(self, now: float) -> dict[str, Any]:
        q = self._load(now)
        q.paused = True
        self._save(q)
        return {"handback": [], "alarm": None}

    def resume(self, now: float) -> dict[str, Any]:
        q = self._load(now)
        q.paused = False
        self.storage.now = q.clock
        return self._settle(q, q.clock)

    def set_limit(self, limit: int | None, now: float) -> dict[str, Any]:
        """Override the queue's concurrency limit (None: back to the declared one)."""
        q = self._load(now)
        q.limit_override = int(limit) if limit is not None else None
        self.storage.now = q.clock
        return self._settle(q, q.clock)

    def stats(self, now: float) -> dict[str, Any]:
        """Counts for the queue listing: running (held slots), reserved, parked, per key."""
        q = self._load(now)
        keys: dict[str, dict[str, int]] = defaultdict(lambda: {"running": 0, "parked": 0})
        for key, state, n in self.sql.exec(
            "SELECT key, state, count(*) FROM coord_slots WHERE queue = ? GROUP BY key, state",
            self.name,
        ):
            keys[key]["running" if state == "held" else "reserved"] = n
        for key, n in self.sql.exec(
            "SELECT key, count(*) FROM coord_parked WHERE queue = ? GROUP BY key", self.name
        ):
            keys[key]["parked"] = n
        return {
            "name": self.name,
            "paused": q.paused,
            "limit_override": q.limit_override,
            "concurrency_limit": q.limit,
            "running": sum(k["running"] for k in keys.values()),
            "reserved": sum(k.get("reserved", 0) for k in keys.values()),
            "parked": sum(k["parked"] for k in keys.values()),
            "keys": dict(keys),
            "alarm_at": q.alarm_at,
        }

    # --- internals --------------------------------------------------------------------------

    def _settle(self, q: QueueState, now: float, take: int = 0) -> dict[str, Any]:
        self._sweep(q, now)
        granted: list[Any] = []
        handback = self._pump(q, now, take, granted)
        alarm = self._alarm(q, now)
        self._save(q)
        return {"handback": handback, "alarm": alarm, "at": now, "granted": granted}

    def _sweep(self, q: QueueState, now: float) -> None:
        """Reclaim slots whose lease lapsed; a handed-back run that never came back, or a
        directly granted one whose consumer died, goes back to the head of its key's line."""
        lapsed = self.sql.exec(
            "DELETE FROM coord_slots WHERE queue = ? AND lease_until < ? RETURNING run_id",
            self.name,
            now,
        )
        if not lapsed:
            return
        back: dict[str, int] = defaultdict(int)
        for chunk in json_chunks([r[0] for r in lapsed]):
            for (key,) in self.sql.exec(
                "UPDATE coord_parked SET handed = 0 WHERE queue = ? AND handed = 1 AND run_id IN "
                "(SELECT value FROM json_each(?)) RETURNING key",
                self.name,
                chunk,
            ):
                back[key] += 1
        self._add_waiting(back)

    def _unhand(self, run_id: str, delete_slot: bool = True) -> None:
        if delete_slot:
            self.sql.exec(
                "DELETE FROM coord_slots WHERE queue = ? AND run_id = ?", self.name, run_id
            )
        rows = self.sql.exec(
            "UPDATE coord_parked SET handed = 0 WHERE queue = ? AND run_id = ? AND handed = 1 "
            "RETURNING key",
            self.name,
            run_id,
        )
        if rows:
            self._add_waiting({rows[0][0]: 1})

    def _counts(self, q: QueueState) -> Counts:
        """Slots per key, slots in all, rate tickets (reserved slots) per rate id, and the
        parked runs waiting per key."""
        counts: defaultdict[str, int] = defaultdict(int)
        tickets: defaultdict[str, int] = defaultdict(int)
        for key, rate_id, state, n in self.sql.exec(
            "SELECT key, rate_id, state, count(*) FROM coord_slots WHERE queue = ? "
            "GROUP BY key, rate_id, state",
            self.name,
        ):
            counts[key] += n
            if state == "reserved" and rate_id is not None:
                tickets[rate_id] += n
        waiting = {
            k: n
            for k, n in self.sql.exec(
                "SELECT key, waiting FROM coord_keys WHERE queue = ? AND waiting > 0", self.name
            )
        }
        return Counts([counts, sum(counts.values()), tickets, waiting])

    def _pump(
        self,
        q: QueueState,
        now: float,
        take: int = 0,
        granted: list[Any] | None = None,
        counted: Counts | None = None,
    ) -> list[Any]:
        """Hand back parked runs while capacity allows, one per key per round, starting
        after the key served last (round-robin). The first `take` of them are granted to
        the caller at once (appended to `granted`); the others are returned as hand-back
        message bodies, each with a reserved slot. `counted`: `_counts` as the caller has it
        (updated in place)."""
        if q.paused:
            return []
        counts, total, tickets, waiting = counted or self._counts(q)
        free = (q.limit - total) if q.limit is not None else None
        # a key at its limit for every task of the queue cannot be served: not read at all
        limits = [t.get("key_limit") for t in q.spec.get("tasks", {}).values()]
        most = max(limits) if limits and None not in limits else None
        keys = sorted(k for k in waiting if most is None or counts[k] < most)
        if not keys or (free is not None and free <= 0):
            return []
        if q.rr_key is not None:
            cut = next((i for i, k in enumerate(keys) if k > q.rr_key), 0)
            keys = keys[cut:] + keys[:cut]
        room = {
            k: min(
                waiting[k],
                free if free is not None else waiting[k],
                most - counts[k] if most is not None else waiting[k],
            )
            for k in keys
        }
        heads = Heads(self.sql, self.name, room)
        handback: list[Any] = []
        reserved: list[list[Any]] = []
        direct: list[list[Any]] = []
        served: dict[str, int] = defaultdict(int)
        active = keys
        while active and (free is None or free > 0):
            heads.fetch([k for k in active if heads.empty(k)])
            still: list[str] = []
            for key in active:
                if free is not None and free <= 0:
                    break
                head = heads.peek(key)
                if head is None:
                    continue
                run_id, task, rate_id, body = head
                key_limit = q.task_spec(task).get("key_limit")
                if key_limit is not None and counts[key] >= key_limit:
                    continue
                window = self._window(q, task)
                if window is not None and window.room(rate_id) - tickets[rate_id] < 1:
                    continue
                now_granted = granted is not None and len(direct) < take
                if now_granted and window is not None and not window.hit(rate_id):
                    continue  # cannot happen: room was checked in this transaction
                heads.pop(key)
                counts[key] += 1
                if free is not None:
                    free -= 1
                served[key] += 1
                row = [run_id, key, task, rate_id if window else None]
                message = loads(body)
                if now_granted:
                    direct.append(row)
                    if isinstance(message, dict):
                        message.pop("h", None)
                    assert granted is not None
                    granted.append(message)
                else:
                    if window is not None:
                        tickets[rate_id] += 1
                    reserved.append(row)
                    if isinstance(message, dict):
                        message["h"] = 1  # handed back: its consumer asks the coordinator again
                    handback.append(message)
                q.rr_key = key
                still.append(key)
            active = still
        for rows, state in ((reserved, "reserved"), (direct, "held")):
            for chunk in json_chunks(rows):
                self.sql.exec(
                    "INSERT OR REPLACE INTO coord_slots (queue, run_id, key, task, rate_id, "
                    "state, lease_until, granted_at) SELECT ?1, value->>0, value->>1, value->>2, "
                    "value->>3, ?2, ?3, ?4 FROM json_each(?5)",
                    self.name,
                    state,
                    now + q.lease,
                    now,
                    chunk,
                )
                self.sql.exec(
                    "UPDATE coord_parked SET handed = 1 WHERE queue = ? AND run_id IN "
                    "(SELECT value->>0 FROM json_each(?))",
                    self.name,
                    chunk,
                )
        self._add_waiting({k: -n for k, n in served.items()})
        for k, n in served.items():
            waiting[k] -= n
        if counted is not None:
            counted[1] += sum(served.values())
        return handback

    def _alarm(self, q: QueueState, now: float) -> float | None:
        """When to wake to hand back runs still waiting: a window opening or a lease that may
        lapse. Returns the time when the caller must (re)arm the alarm, else None."""
        if q.paused:
            return None
        if not self.sql.exec(
            "SELECT 1 FROM coord_keys WHERE queue = ? AND waiting > 0 LIMIT 1", self.name
        ):
            return None
        candidates: list[float] = []
        lease = self.sql.exec(
            "SELECT min(lease_until) FROM coord_slots WHERE queue = ?", self.name
        )[0][0]
        if lease is not None:
            candidates.append(float(lease) + 1e-3)
        rated = any(t.get("rate") for t in q.spec.get("tasks", {}).values())
        heads = (  # the head of every waiting key's line, in one query
            self.sql.exec(
                "SELECT p.task, p.rate_id FROM coord_keys AS k JOIN coord_parked AS p "
                "ON p.queue = k.queue AND p.key = k.key AND p.handed = 0 AND p.seq = "
                "(SELECT min(x.seq) FROM coord_parked AS x WHERE x.queue = k.queue "
                "AND x.key = k.key AND x.handed = 0) WHERE k.queue = ? AND k.waiting > 0",
                self.name,
            )
            if rated
            else []
        )
        for task, rate_id in heads:
            window = self._window(q, task)
            if window is not None and window.room(rate_id) < 1:
                candidates.append(window.opens_at(rate_id))
        if not candidates:
            return None
        when = max(min(candidates), now)
        if q.alarm_at is None or when < q.alarm_at - 1e-3 or q.alarm_at < now - ALARM_GRACE:
            q.alarm_at = when
            return when
        return None

    def _window(self, q: QueueState, task: str | None) -> Window | None:
        rate = q.task_spec(task).get("rate")
        if not rate:
            return None
        cache_key = dumps(rate)
        window = self._windows.get(cache_key)
        if window is None:
            window = self._windows[cache_key] = Window(self.storage, rate)
        return window

    def _add_waiting(self, deltas: dict[str, int]) -> None:
        rows = [[k, n] for k, n in deltas.items() if n]
        if not rows:
            return
        for chunk in json_chunks(rows):
            self.sql.exec(
                "INSERT INTO coord_keys (queue, key, waiting) SELECT ?1, value->>0, value->>1 "
                "FROM json_each(?2) WHERE true ON CONFLICT (queue, key) DO UPDATE SET "
                "waiting = waiting + excluded.waiting",
                self.name,
                chunk,
            )
        self.sql.exec("DELETE FROM coord_keys WHERE queue = ? AND waiting <= 0", self.name)

    def _select(self, query: str, ids: list[str]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for chunk in json_chunks(ids):
            out += self.sql.exec(query, self.name, chunk)
        return out

    def _load(self, now: float) -> QueueState:
        rows = self.sql.exec(
            "SELECT clock, paused, limit_override, spec, alarm_at, rr_key, seq, lease "
            "FROM coord_queues WHERE queue = ?",
            self.name,
        )
        if not rows:
            return QueueState(self.name, clock=now)
        clock, paused, override, spec, alarm_at, rr_key, seq, lease = rows[0]
        return QueueState(
            self.name,
            clock=max(float(clock), now),
            paused=bool(paused),
            limit_override=override,
            spec=loads(spec),
            alarm_at=alarm_at,
            rr_key=rr_key,
            seq=seq,
            lease=lease,
        )

    def _save(self, q: QueueState) -> None:
        self.sql.exec(
            """INSERT INTO coord_queues (queue, clock, paused, limit_override, spec, alarm_at,
                rr_key, seq, lease) VALUES (?,?,?,?,?,?,?,?,?)
            ON CONFLICT (queue) DO UPDATE SET clock = excluded.clock, paused = excluded.paused,
                limit_override = excluded.limit_override, spec = excluded.spec,
                alarm_at = excluded.alarm_at, rr_key = excluded.rr_key, seq = excluded.seq,
                lease = excluded.lease""",
            self.name,
            q.clock,
            int(q.paused),
            q.limit_override,
            dumps(q.spec),
            q.alarm_at,
            q.rr_key,
            q.seq,
            q.lease,
        )
