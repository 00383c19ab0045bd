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
from collections.abc import Mapping
from itertools import groupby
from operator import itemgetter
from typing import Any

from ..errors import InvariantError
from ..ports import Sql, reads
from ..shared.serialization import dumps, loads
from ..shared.sqlbulk import json_chunks
from .decide import (
    AdmitDecision,
    AdmitInputs,
    Counts,
    Limits,
    MoreHeads,
    Park,
    PumpDecision,
    PumpInputs,
    Request,
    TaskLimits,
    WindowRef,
    WindowState,
    decide_admit,
    decide_pump,
)
from .state import ALARM_GRACE, SCHEMA, Heads, QueueState, Tables, rate_id_of
from .windows import SqlStorage, Window


class CoordinatorObject:
    """One queue's coordinator (the object's name is the queue's name)."""

    def __init__(self, sql: Sql, name: str) -> None:
        self.sql = sql
        self.name = name
        self.tables = Tables(sql, name)
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
        take: int = 0,
    ) -> dict[str, Any]:
        """Decide, for each request `{id, task, key, rate_key?, body}`, whether the run may
        start now (`granted`) or is `parked` (its message is then acked by the caller).

        `specs`: `{"queue_limit": n|None, "tasks": {task: {"key_limit", "rate"}}}`, the
        declarations the caller knows (the latest wins). Returns `{at, granted, parked,
        direct, handback, alarm}`: `direct` are the messages of parked runs granted to the
        caller (up to `take` of them, when capacity was free for runs waiting: they start
        with its batch, at `at`), `handback` message bodies to enqueue now, `alarm` when to
        call `wake` (None: no change)."""
        return self.exchange([], requests, now, lease_seconds, take, specs)

    def release(
        self,
        run_ids: list[str],
        now: float,
        take: int = 0,
        lease_seconds: float | None = None,
        standby: dict[str, int] | None = None,
        promote: list[str] | None = None,
    ) -> dict[str, Any]:
        """Free the slots of `run_ids` (their attempts ended: any outcome, or they were
        skipped) and forget them if parked. Returns `{at, direct, handback, alarm}` like
        `acquire`: with `take`, up to that many of the parked runs served in their place
        are granted to the caller directly (`direct`: their messages; they start at `at`)
        and the others handed back.

        Standbys (coordinator/standby.py): the caller's standbys in `promote` started as
        runs of `run_ids` ended, so their slots become held ones first (each takes the
        slot of the run that let it go). `standby` (`{key: n}`) asks for up to `n` more
        of each key's line as standbys, after the runs served: their slots (`standby`)
        do not count against any limit, and their messages come back as `standby`."""
        return self.exchange(run_ids, [], now, lease_seconds, take, None, standby, promote)

    def exchange(
        self,
        released: list[str],
        requests: list[dict[str, Any]],
        now: float,
        lease_seconds: float | None = None,
        take: int = 0,
        specs: dict[str, Any] | None = None,
        standby: dict[str, int] | None = None,
        promote: list[str] | None = None,
    ) -> dict[str, Any]:
        """All a consumer has to say to the queue at once: the slots of `released` are
        freed; then parked runs are served (the pump), up to `take` of them granted to the
        caller directly, the others handed back; then the `requests` are decided. Returns
        what `acquire` does.

        Each step reads, decides and applies in turn, the next one deciding with the
        counts the last one left."""
        q = self.tables.load(now)
        lease_before = q.lease
        now = self._declared(q, lease_seconds, specs)
        if promote:
            self.tables.promote(promote)
        freed = self.tables.forget(released) if released else {}
        lapsed = self.tables.reclaim(now)
        if freed and not lapsed and not requests and q.lease == lease_before:
            swapped = self._swap(q, now, freed, take, standby)
            if swapped is not None:
                return swapped
        limits = self._limits(q)
        pump = self._pump(q, limits, self.tables.counts(), take)
        self._apply_pump(q, now, pump)
        granted: tuple[str, ...] = ()
        parked: tuple[str, ...] = ()
        if requests:
            admit = decide_admit(self._admission(requests, limits, pump.counts, q.seq))
            self._apply_admit(q, now, admit)
            granted, parked = admit.granted, admit.parked
        alarm = self._alarm(q, limits, now)
        self.tables.save(q)
        return {
            "at": now,
            "granted": list(granted),
            "parked": list(parked),
            "direct": pump.granted_bodies(),
            "handback": pump.handback_bodies(),
            "alarm": alarm,
        }

    def enqueue(
        self,
        requests: list[dict[str, Any]],
        specs: dict[str, Any],
        now: float,
        lease_seconds: float,
    ) -> dict[str, Any]:
        """Runs just triggered (`{id, task, key, rate_key?, body}`, as `acquire` takes them;
        a key's backlog: coordinator/intake.py) join the ends of their keys' lines here
        instead of the run queue; then the lines' heads are served as capacity allows (the
        pump: their slots reserved, their messages handed back for the caller to send). So
        a backlog waits here from the start: no consumer claims its runs only to park them.
        A run this coordinator owns already (parked, or holding a slot) keeps its place.
        Returns `{at, handback, alarm}`; the caller sends the hand-backs and nothing else
        of `requests`."""
        q = self.tables.load(now)
        now = self._declared(q, lease_seconds, specs)
        self.tables.reclaim(now)  # (a run whose reservation lapsed is in line again)
        ids = [r["id"] for r in requests]
        known = set(self.tables.slot_states(ids)) | set(self.tables.parked_ids(ids))
        parks: list[Park] = []
        for r in requests:
            if r["id"] in known:
                continue
            known.add(r["id"])
            q.seq += 1
            task = r.get("task")
            rate_id = rate_id_of(task, r.get("rate_key"))
            parks.append(Park(r["id"], r.get("key") or "", task, rate_id, q.seq, r.get("body")))
        self.tables.park(parks, now)
        return self._serve(q, now)

    def holding(self, run_ids: list[str], now: float) -> dict[str, Any]:
        """Which of `run_ids` this coordinator owns now (parked, handed back, or holding a
        live slot), after reclaiming lapsed leases: housekeeping must not send those again.
        Returns `{held, handback, alarm, at}` (send the hand-backs like any other)."""
        if not self.sql.exec("SELECT 1 FROM coord_queues WHERE queue = ?", self.name):
            return {"held": [], "handback": [], "alarm": None, "at": now}
        q = self.tables.load(now)
        self.storage.now = q.clock
        res = self._settle(q, q.clock)
        held = self.tables.over(
            "SELECT run_id FROM coord_parked WHERE queue = ? AND run_id IN "
            "(SELECT value FROM json_each(?)) UNION SELECT run_id FROM coord_slots "
            "WHERE queue = ?1 AND run_id IN (SELECT value FROM json_each(?2))",
            run_ids,
        )
        res["held"] = [r[0] for r in held]
        return res

    def extend(self, run_ids: list[str], now: float, lease_seconds: float) -> list[str]:
        """Renew the leases of held slots; return the runs that no longer hold one."""
        q = self.tables.load(now)
        held: set[str] = set()
        for chunk in json_chunks(run_ids):
            held.update(
                r[0]
                for r in self.sql.exec(
                    "UPDATE coord_slots SET lease_until = ? WHERE queue = ? AND run_id IN "
                    "(SELECT value FROM json_each(?)) AND state IN ('held', 'standby') "
                    "RETURNING run_id",
                    q.clock + lease_seconds,
                    self.name,
                    chunk,
                )
            )
        self.tables.save(q)
        return [r for r in run_ids if r not in held]

    def wake(self, now: float, take: int = 0) -> dict[str, Any]:
        """The alarm: reclaim lapsed leases, serve what the open windows allow: up to `take`
        runs granted to the caller (`direct`), the others handed back."""
        q = self.tables.load(now)
        q.alarm_at = None
        self.storage.now = q.clock
        return self._settle(q, q.clock, take)

    # --- queue controls ---------------------------------------------------------------------

    @reads
    def controls(self) -> dict[str, Any]:
        rows = self.sql.exec(
            "SELECT paused, limit_override FROM coord_queues WHERE queue = ?", self.name
        )
        paused, override = rows[0] if rows else (0, None)
        return {"paused": bool(paused), "limit_override": override}

    def pause(self, now: float) -> dict[str, Any]:
        q = self.tables.load(now)
        q.paused = True
        self.tables.save(q)
        return {"handback": [], "alarm": None}

    def resume(self, now: float) -> dict[str, Any]:
        q = self.tables.load(now)
        q.paused = False
        self.storage.now = q.clock
        return self._settle(q, q.clock)

    def set_limit(self, limit: int | None, now: float) -> dict[str, Any]:
        """Override the queue's concurrency limit (None: back to the declared one)."""
        q = self.tables.load(now)
        q.limit_override = int(limit) if limit is not None else None
        self.storage.now = q.clock
        return self._settle(q, q.clock)

    @reads
    def stats(self, now: float) -> dict[str, Any]:
        """Counts for the queue listing: running (held slots), reserved, parked, per key."""
        q = self.tables.load(now)
        keys: dict[str, dict[str, int]] = defaultdict(lambda: {"running": 0, "parked": 0})
        names = {"held": "running", "reserved": "reserved", "standby": "standby"}
        for key, state, n in self.sql.exec(
            "SELECT key, state, count(*) FROM coord_slots WHERE queue = ? GROUP BY key, state",
            self.name,
        ):
            keys[key][names.get(state, state)] = n
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

    def _declared(
        self, q: QueueState, lease_seconds: float | None, specs: dict[str, Any] | None
    ) -> float:
        """Take what a caller declares into the queue's row: the lease its slots get, the
        queue's limit and its tasks' specs (the latest win). Returns the queue's clock,
        which the rate windows read too."""
        if lease_seconds is not None:
            q.lease = float(lease_seconds)
        if specs is not None:
            q.spec["queue_limit"] = specs.get("queue_limit")
            q.spec.setdefault("tasks", {}).update(specs.get("tasks", {}))
        self.storage.now = q.clock
        return q.clock

    def _settle(self, q: QueueState, now: float, take: int = 0) -> dict[str, Any]:
        """Reclaim lapsed leases, then hand back parked runs (`_serve`)."""
        self.tables.reclaim(now)
        return self._serve(q, now, take)

    def _serve(self, q: QueueState, now: float, take: int = 0) -> dict[str, Any]:
        """Hand back parked runs (read, decide, apply), arm the alarm, save the row."""
        limits = self._limits(q)
        pump = self._pump(q, limits, self.tables.counts(), take)
        self._apply_pump(q, now, pump)
        alarm = self._alarm(q, limits, now)
        self.tables.save(q)
        return {
            "handback": pump.handback_bodies(),
            "alarm": alarm,
            "at": now,
            "direct": pump.granted_bodies(),
        }

    def _swap(
        self,
        q: QueueState,
        now: float,
        freed: Mapping[str, int],
        take: int,
        standby: dict[str, int] | None = None,
    ) -> dict[str, Any] | None:
        """A release's fast path, the hot key's slot turning over: the runs waiting in the
        lines of the keys whose slots were freed take those slots, granted to the caller,
        in a few statements and no count of the queue's slots. It decides what the pump
        would, where the queue has one task, limited per key only (no rate, no queue
        limit, not paused), and its alarm is armed (None: not its case).

        After any call of such a queue, a key with runs waiting has no free slot (the pump
        served every one it could, and a new run parks only when its key is full or has a
        line). So only the keys freed now can serve anyone, each as many as its limit
        leaves room for. Slots only came free here and new ones lease later than the
        old, so the alarm armed stays right. (Only here are standbys granted: the queue
        of a hot key's slot turning over is this one.)"""
        tasks = q.spec.get("tasks") or {}
        if q.paused or q.limit is not None or len(tasks) != 1:
            return None
        (spec,) = tasks.values()
        limit = spec.get("key_limit")
        if limit is None or spec.get("rate") or q.alarm_at is None:
            return None
        if q.alarm_at < now - ALARM_GRACE:  # (lost: the pump's call arms it again)
            return None
        waiting = self.tables.waiting_of(sorted(freed))
        slots = self.tables.slots_by_key(sorted(waiting)) if waiting else {}
        wants = {
            key: n
            for key in sorted(waiting)
            if (n := min(waiting[key], int(limit) - slots.get(key, 0))) > 0
        }
        if sum(wants.values()) > take:  # (some go back through the queue: the pump's job)
            return None
        # and, after them, the standbys asked for: the next runs of those lines
        asked = {
            k: m
            for k, n in sorted((standby or {}).items())
            if (m := min(n, waiting.get(k, 0) - wants.get(k, 0))) > 0
        }
        got = self.tables.hand_heads({k: wants.get(k, 0) + asked.get(k, 0) for k in wants | asked})
        lines = {k: got[k][:n] for k, n in wants.items()}
        ready = [(k, h) for k in asked for h in got[k][wants.get(k, 0) :]]
        # the pump's order: a run per key per round, the keys round-robin after the one
        # served last (which is saved as it would be)
        keys = sorted(k for k, line in lines.items() if line)
        cut = next((i for i, k in enumerate(keys) if q.rr_key is not None and k > q.rr_key), 0)
        keys = keys[cut:] + keys[:cut]
        heads = [
            (key, lines[key][i])
            for i in range(max((len(line) for line in lines.values()), default=0))
            for key in keys
            if i < len(lines[key])
        ]
        for state, grants in (("held", heads), ("standby", ready)):
            rows = [(h.run_id, key, h.task, None) for key, h in grants]
            if rows:
                self.tables.add_slots(rows, state, now + q.lease, now)
        self.tables.add_waiting({k: -len(line) for k, line in got.items()})
        if heads:
            q.rr_key = heads[-1][0]
        self.tables.save_turn(q)
        res = {
            "at": now,
            "granted": [],
            "parked": [],
            "direct": [loads(h.body) for _, h in heads],
            "handback": [],
            "alarm": None,
        }
        return {**res, "standby": [loads(h.body) for _, h in ready]} if ready else res

    def _limits(self, q: QueueState) -> Limits:
        """Read: the queue's limits from its row (a rate window's id is its spec's JSON)."""
        tasks = {
            name: TaskLimits(
                spec.get("key_limit"), dumps(spec["rate"]) if spec.get("rate") else None
            )
            for name, spec in q.spec.get("tasks", {}).items()
        }
        return Limits(q.paused, q.limit, tasks)

    # --- the pump: parked runs handed back ------------------------------------------------

    def _pump(self, q: QueueState, limits: Limits, counts: Counts, take: int = 0) -> PumpDecision:
        """The pump's read step, driving its decision: the heads of the waiting keys'
        lines are read as the decision asks for them (a few per key, doubling), with their
        windows' states, and the decision goes on with them, so a pump costs a few queries
        however long the lines are."""
        inputs = PumpInputs(limits, counts, q.rr_key, take)
        out = decide_pump(inputs)
        if isinstance(out, PumpDecision):
            return out  # (nobody waits, or nothing is free: nothing to read)
        heads = Heads(self.sql, self.name)
        windows: dict[WindowRef, WindowState] = {}
        while isinstance(out, MoreHeads):
            for head in heads.fetch(out.wants):
                rate = limits.task(head.task).rate
                if rate is not None and (rate, head.rate_id) not in windows:
                    windows[rate, head.rate_id] = self._window(rate).state(head.rate_id)
            read, done = dict(heads.lines), frozenset(heads.done)
            inputs = PumpInputs(limits, counts, q.rr_key, take, read, done, dict(windows))
            out = decide_pump(inputs, out.progress)
        return out

    def _apply_pump(self, q: QueueState, now: float, d: PumpDecision) -> None:
        """Apply: reserved and held slots for the runs served (their parked rows marked
        handed: they stay until the slot is released), the keys' waiting counts, the
        direct grants' window hits, and the key served last."""
        for grants, state in ((d.reserved, "reserved"), (d.direct, "held")):
            if grants:
                self.tables.add_slots([g.slot for g in grants], state, now + q.lease, now)
                self.tables.mark_handed([g.run_id for g in grants])
        self.tables.add_waiting({k: -n for k, n in d.served.items()})
        self._hit(d.hits)
        q.rr_key = d.rr_key

    # --- admission: the runs an acquire asks about ------------------------------------------

    def _admission(
        self,
        requests: list[dict[str, Any]],
        limits: Limits,
        counts: Counts,
        seq: int,
    ) -> AdmitInputs:
        """Read: the requests, the slots and parked rows their runs have, and the window
        state of each rate id a run not holding a slot may use."""
        reqs: list[Request] = []
        for r in requests:
            task = r.get("task")
            key, rate_id = r.get("key") or "", rate_id_of(task, r.get("rate_key"))
            reqs.append(Request(r["id"], task, key, rate_id, r.get("body")))
        ids = [r.run_id for r in reqs]
        slots = self.tables.slot_states(ids)
        windows: dict[WindowRef, WindowState] = {}
        for req in reqs if any(t.rate for t in limits.tasks.values()) else ():
            rate = limits.task(req.task).rate
            if rate is not None and slots.get(req.run_id) != "held":
                if (rate, req.rate_id) not in windows:
                    windows[rate, req.rate_id] = self._window(rate).state(req.rate_id)
        parked = self.tables.parked_ids(ids)
        return AdmitInputs(tuple(reqs), limits, counts, slots, parked, windows, seq)

    def _apply_admit(self, q: QueueState, now: float, d: AdmitDecision) -> None:
        """Apply: renew the leases of runs holding slots; start handed-back runs on their
        reserved slots or put them back in line, in order (a sequence of starts in one
        statement); hit the windows; hold new slots; park the others."""
        until = now + q.lease
        self.tables.renew(d.renew, until)
        for starts, group in groupby(d.returned, key=itemgetter(1)):
            ids = [run_id for run_id, _ in group]  # (in order: one run may come twice)
            if starts:
                self.tables.start_reserved(ids, until, now)
            else:
                for run_id in ids:
                    self.tables.unhand(run_id)
        self._hit(d.hits)
        self._hit(d.refused, refused=True)
        self.tables.add_slots(d.slots, "held", until, now)
        self.tables.park(d.parks, now)
        self.tables.newer_bodies(d.bodies)
        q.seq = d.seq

    # --- windows and alarms -------------------------------------------------------------------

    def _window(self, rate: str) -> Window:
        """The rate window whose id (its spec as JSON) is `rate`."""
        window = self._windows.get(rate)
        if window is None:
            window = self._windows[rate] = Window(self.storage, loads(rate))
        return window

    def _hit(self, hits: Mapping[WindowRef, int], refused: bool = False) -> None:
        """Count the decided starts in their windows; with `refused`, make the hits the
        decision saw refused (for what a refusal writes: a fixed window counts it). The
        decision read the windows at this instant, so a window answering otherwise is a
        bug: the call fails whole (its transaction undone)."""
        for (rate, rate_id), n in hits.items():
            window = self._window(rate)
            if refused:
                agrees = not any([window.hit(rate_id) for _ in range(n)])
            else:
                agrees = window.hit(rate_id, n)
            if not agrees:
                raise InvariantError(f"rate window {rate} disagrees with the decision on {rate_id}")

    def _alarm(self, q: QueueState, limits: Limits, now: float) -> float | None:
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
        rated = any(t.rate for t in limits.tasks.values())
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
            rate = limits.task(task).rate
            if rate is not None and self._window(rate).room(rate_id) < 1:
                candidates.append(self._window(rate).opens_at(rate_id))
        if not candidates:
            return None
        when = max(min(candidates), now)
        if q.alarm_at is None or when < q.alarm_at - 1e-3 or q.alarm_at < now - ALARM_GRACE:
            q.alarm_at = when
            return when
        return None
