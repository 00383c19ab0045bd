"""The coordinator's decisions, as pure functions over what its calls read.

Each call of the coordinator object reads (slot counts, the queue's limits, rate window
states, parked heads, the runs asked about), decides here, and applies the decision with
SQL, as a failed attempt's retry is decided by `shared.retry.decide_failure` and applied
by the consumer. Nothing here touches SQL, a clock or its inputs; the same inputs give
the same decision, round-robin order included.

- `decide_pump`: which parked runs get a slot now (handed back with a reserved slot, or
  the first `take` granted to the caller at once), one per key per round in round-robin
  order after the key served last, FIFO within each key's line.
- `decide_admit`: for each run an `acquire` is asked about, start it now or park it.

The instant of the call is in the window states (read at it); neither decision needs a
clock of its own. Inputs and decisions are frozen dataclasses; the records there are many
of (a parked head, a request, a slot, a parked row) are named tuples: as immutable, and
four times cheaper to make than a frozen dataclass, on the coordinator's hot path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..shared.messages import RunMessage
from ..shared.serialization import loads

WindowRef = tuple[str, str]  # (the window's id: its spec as JSON text, a rate id)


@dataclass(frozen=True, slots=True)
class WindowState:
    """One rate window for one rate id, as read at the call's instant: `count` starts in
    it (moving window: entries; fixed window: the counter; sliding window counter: the
    current window's counter) plus `carried`, the sliding counter's weighted share of the
    previous window (0 for the others)."""

    limit: int
    count: int
    carried: float = 0.0

    def room(self, hits: int = 0) -> int:
        """How many more starts the window allows after `hits` more starts at this instant
        (the `limits` strategies' own arithmetic: a hit succeeds iff this is >= 1)."""
        return max(0, self.limit - math.floor(self.carried + (self.count + hits)))


class TaskLimits(NamedTuple):
    """A task's declarations as the coordinator knows them: its limit per concurrency key,
    and its rate window's id (None: no rate limit)."""

    key_limit: int | None = None
    rate: str | None = None


NO_LIMITS = TaskLimits()


@dataclass(frozen=True)
class Limits:
    """The queue's state that bounds every decision: paused, its limit in all (the
    override, else the declared one), and each declared task's limits."""

    paused: bool = False
    limit: int | None = None
    tasks: Mapping[str, TaskLimits] = field(default_factory=dict)

    def task(self, name: str | None) -> TaskLimits:
        return self.tasks.get(name or "", NO_LIMITS)

    @property
    def most_per_key(self) -> int | None:
        """The highest limit per key of any task (None: some task has none): a key with
        that many slots cannot be served whatever task its next run is."""
        limits = [t.key_limit for t in self.tasks.values()]
        if not limits or None in limits:
            return None
        return max(x for x in limits if x is not None)


@dataclass(frozen=True)
class Counts:
    """Slots per key (held and reserved), slots in all, rate tickets per rate id (the
    reserved slots of rate-limited runs: starts promised to runs handed back), and parked
    runs waiting per key (not handed back)."""

    slots: Mapping[str, int] = field(default_factory=dict)
    total: int = 0
    tickets: Mapping[str, int] = field(default_factory=dict)
    waiting: Mapping[str, int] = field(default_factory=dict)


class Head(NamedTuple):
    """A parked run in its key's line (`body`: its message as JSON text)."""

    run_id: str
    task: str | None
    rate_id: str
    body: str


SlotRow = tuple[str, str, str | None, str | None]
"""A slot given: `(run_id, key, task, rate_id)`, `rate_id` only when the run's task has a
rate window (the slot is then a rate ticket while it is reserved)."""


class Grant(NamedTuple):
    """A parked run the pump serves: the slot it gets, and its line's head."""

    slot: SlotRow
    head: Head

    @property
    def run_id(self) -> str:
        return self.slot[0]


# --- the pump: parked runs handed back ------------------------------------------------------


@dataclass(frozen=True)
class PumpInputs:
    """What `decide_pump` reads: the queue's limits and counts, the key served last, how
    many runs the caller takes at once, the heads read so far of each key's line (`done`:
    the keys whose whole line was read), and the window state of every head's rate id."""

    limits: Limits
    counts: Counts
    rr_key: str | None = None
    take: int = 0
    heads: Mapping[str, tuple[Head, ...]] = field(default_factory=dict)
    done: frozenset[str] = frozenset()
    windows: Mapping[WindowRef, WindowState] = field(default_factory=dict)


@dataclass(frozen=True)
class PumpProgress:
    """Where a pump decision stopped to read more: the keys still in the round-robin (in
    order), each key's room, the free slots, what was decided so far and the counts as
    they are now. Passed back with more heads, the decision goes on from there."""

    active: tuple[str, ...]
    room: Mapping[str, int]
    free: int | None
    slots: Mapping[str, int]
    tickets: Mapping[str, int]
    hits: Mapping[WindowRef, int]
    used: Mapping[str, int]  # heads served per key
    served: Mapping[str, int]
    direct: tuple[Grant, ...] = ()
    reserved: tuple[Grant, ...] = ()
    rr_key: str | None = None


@dataclass(frozen=True)
class MoreHeads:
    """The decision needs more of these keys' lines before it can go on: at most how many
    more runs of each it could still hand back. Read them, and decide again with them and
    `progress` (or from the start: it decides the same, only slower)."""

    wants: Mapping[str, int]
    progress: PumpProgress


@dataclass(frozen=True)
class PumpDecision:
    """`direct`: granted to the caller now (held slots, their windows hit now); `reserved`:
    handed back through the queue (reserved slots, a rate ticket each); `hits` per window;
    `served` per key; `counts` and `rr_key` as they are after it."""

    direct: tuple[Grant, ...]
    reserved: tuple[Grant, ...]
    hits: Mapping[WindowRef, int]
    served: Mapping[str, int]
    counts: Counts
    rr_key: str | None

    def granted_bodies(self) -> list[Any]:
        """The directly granted runs' messages, as they were parked (a consumer parks a
        run's message not marked handed back)."""
        return [loads(g.head.body) for g in self.direct]

    def handback_bodies(self) -> list[Any]:
        """The handed-back runs' messages, marked so their consumer asks again (`h`)."""
        return [
            RunMessage.from_body(loads(g.head.body))._replace(handed=True).to_body()
            for g in self.reserved
        ]


def decide_pump(p: PumpInputs, progress: PumpProgress | None = None) -> PumpDecision | MoreHeads:
    """Hand back parked runs while capacity allows, one per key per round, the keys in
    order starting after the key served last (round-robin), each key's line in order. A
    key stops being served (for this call) at the first head its task's limit per key or
    rate window refuses; the queue's free slots stop it all. The first `take` runs served
    are granted directly, the others handed back.

    Asks for `MoreHeads` when a round reaches a key whose heads read so far are all
    served and whose line goes on, with the `progress` to go on from."""
    if progress is None:
        start = _start(p)
        if isinstance(start, PumpDecision):
            return start
        progress = start
    lim, pr = p.limits, progress
    active, free, room = list(pr.active), pr.free, pr.room
    slots, tickets, hits = dict(pr.slots), dict(pr.tickets), dict(pr.hits)
    used, served = dict(pr.used), dict(pr.served)
    direct, reserved, rr_key = list(pr.direct), list(pr.reserved), pr.rr_key
    while active and (free is None or free > 0):
        stuck = {  # (a key served all its room needs no more of its line)
            k: room[k] - used.get(k, 0)
            for k in active
            if k not in p.done and len(p.heads.get(k, ())) <= used.get(k, 0) < room[k]
        }
        if stuck:
            so_far = (tuple(direct), tuple(reserved), rr_key)
            now = PumpProgress(
                tuple(active), room, free, slots, tickets, hits, used, served, *so_far
            )
            return MoreHeads(stuck, now)
        still: list[str] = []
        for key in active:
            if free is not None and free <= 0:
                break
            line, i = p.heads.get(key, ()), used.get(key, 0)
            if i >= len(line):
                continue  # its whole line is served
            head = line[i]
            task = lim.task(head.task)
            if task.key_limit is not None and slots.get(key, 0) >= task.key_limit:
                continue
            ref = (task.rate, head.rate_id) if task.rate is not None else None
            if ref is not None and (
                p.windows[ref].room(hits.get(ref, 0)) - tickets.get(head.rate_id, 0) < 1
            ):
                continue
            used[key] = i + 1
            slots[key] = slots.get(key, 0) + 1
            if free is not None:
                free -= 1
            served[key] = served.get(key, 0) + 1
            grant = Grant((head.run_id, key, head.task, head.rate_id if ref else None), head)
            if len(direct) < p.take:
                direct.append(grant)
                if ref is not None:
                    hits[ref] = hits.get(ref, 0) + 1
            else:
                reserved.append(grant)
                if ref is not None:
                    tickets[head.rate_id] = tickets.get(head.rate_id, 0) + 1
            rr_key = key
            still.append(key)
        active = still
    c = p.counts
    waiting = dict(c.waiting)
    for k, n in served.items():
        waiting[k] -= n
    counts = Counts(slots, c.total + sum(served.values()), tickets, waiting)
    return PumpDecision(tuple(direct), tuple(reserved), hits, served, counts, rr_key)


def _start(p: PumpInputs) -> PumpDecision | PumpProgress:
    """The keys a pump serves, in round-robin order, and how many each could be handed
    back at most (nothing to decide: paused, nobody waiting, or no free slot)."""
    c, lim = p.counts, p.limits
    free = lim.limit - c.total if lim.limit is not None else None
    most = lim.most_per_key if c.waiting else None
    keys = sorted(k for k in c.waiting if most is None or c.slots.get(k, 0) < most)
    if lim.paused or not keys or (free is not None and free <= 0):
        return PumpDecision((), (), {}, {}, c, p.rr_key)
    if p.rr_key is not None:
        cut = next((i for i, k in enumerate(keys) if k > p.rr_key), 0)
        keys = keys[cut:] + keys[:cut]
    room = {
        k: min(
            c.waiting[k],
            free if free is not None else c.waiting[k],
            most - c.slots.get(k, 0) if most is not None else c.waiting[k],
        )
        for k in keys
    }
    return PumpProgress(tuple(keys), room, free, c.slots, c.tickets, {}, {}, {}, rr_key=p.rr_key)


# --- admission: the runs an `acquire` asks about ---------------------------------------------


class Request(NamedTuple):
    """A run a consumer asks to start (`body`: its message, stored if it is parked)."""

    run_id: str
    task: str | None
    key: str
    rate_id: str
    body: Any = None


@dataclass(frozen=True)
class AdmitInputs:
    """What `decide_admit` reads: the requests in order, the slot each one's run holds
    (`held`, or `reserved` for a run handed back), the runs with a parked row, the queue's
    limits and counts (after this call's pump), the window state of every request's rate
    id, and the last parking sequence number."""

    requests: tuple[Request, ...]
    limits: Limits
    counts: Counts
    slots: Mapping[str, str] = field(default_factory=dict)
    parked: frozenset[str] = frozenset()
    windows: Mapping[WindowRef, WindowState] = field(default_factory=dict)
    seq: int = 0


class Park(NamedTuple):
    """A run parked at the end of its key's line (`seq`: its place)."""

    run_id: str
    key: str
    task: str | None
    rate_id: str
    seq: int
    body: Any


@dataclass(frozen=True)
class AdmitDecision:
    """`granted`/`parked`: the answer, one entry per request in order. `renew`: runs that
    hold their slot already (their lease is renewed). `returned`: handed-back runs in
    order, each `(run_id, starts)`: starts now on its reserved slot, or (its window
    refuses) goes back in line (its reservation freed). `slots`: new held slots; `parks`:
    new parked rows; `hits` per window; `refused`: the hits its windows refused those going
    back (a fixed window counts even a refused hit; the counter is past its limit then, so
    no decision sees it); `seq`: the last parking sequence number after it. `bodies`: the
    messages of runs parked already, for their rows (kept where they are newer: a stale
    message granted later would be skipped, and the run left without any)."""

    granted: tuple[str, ...]
    parked: tuple[str, ...]
    renew: tuple[str, ...]
    returned: tuple[tuple[str, bool], ...]
    slots: tuple[SlotRow, ...]
    parks: tuple[Park, ...]
    hits: Mapping[WindowRef, int]
    refused: Mapping[WindowRef, int]
    seq: int
    bodies: tuple[tuple[str, Any], ...] = ()


def decide_admit(a: AdmitInputs) -> AdmitDecision:
    """For each request in order: a run holding a slot is granted again (a duplicate or a
    redelivery); a handed-back run starts on its reserved slot if its window lets it (its
    rate ticket turns into a start); a parked run keeps its place; any other run starts if
    the queue is not paused, no run of its key waits, and the queue's limit, its key's limit
    and its window (less the tickets promised) all have room, else it is parked at the end
    of its key's line. Earlier requests' starts and parkings count for later ones."""
    lim, c = a.limits, a.counts
    task_of, tickets, states = lim.tasks.get, c.tickets, a.slots
    slots, total, waiting = dict(c.slots), c.total, dict(c.waiting)
    parked_ids = set(a.parked)
    hits: dict[WindowRef, int] = {}
    refused: dict[WindowRef, int] = {}
    seq = a.seq
    granted: list[str] = []
    parked: list[str] = []
    renew: list[str] = []
    returned: list[tuple[str, bool]] = []
    new_slots: list[SlotRow] = []
    parks: list[Park] = []
    bodies: list[tuple[str, Any]] = []
    for r in a.requests:
        state = states.get(r.run_id)
        if state == "held":
            renew.append(r.run_id)
            granted.append(r.run_id)
            continue
        task = task_of(r.task or "", NO_LIMITS)
        ref = (task.rate, r.rate_id) if task.rate is not None else None
        if state == "reserved":
            if ref is not None and a.windows[ref].room(hits.get(ref, 0)) < 1:
                # (its ticket keeps room for it unless the task's rate limit was lowered)
                refused[ref] = refused.get(ref, 0) + 1
                returned.append((r.run_id, False))
                parked.append(r.run_id)
                bodies.append((r.run_id, r.body))
                slots[r.key] = slots.get(r.key, 0) - 1  # (its reservation goes)
                total -= 1
                waiting[r.key] = waiting.get(r.key, 0) + 1
                continue
            if ref is not None:
                hits[ref] = hits.get(ref, 0) + 1
            returned.append((r.run_id, True))
            granted.append(r.run_id)
            continue
        if r.run_id in parked_ids:
            parked.append(r.run_id)
            bodies.append((r.run_id, r.body))
            continue
        ok = (
            not lim.paused
            and not waiting.get(r.key)
            and (lim.limit is None or total < lim.limit)
            and (task.key_limit is None or slots.get(r.key, 0) < task.key_limit)
            and (
                ref is None
                or a.windows[ref].room(hits.get(ref, 0)) - tickets.get(r.rate_id, 0) >= 1
            )
        )
        if ok:
            if ref is not None:
                hits[ref] = hits.get(ref, 0) + 1
            slots[r.key] = slots.get(r.key, 0) + 1
            total += 1
            new_slots.append((r.run_id, r.key, r.task, r.rate_id if ref else None))
            granted.append(r.run_id)
        else:
            seq += 1
            waiting[r.key] = waiting.get(r.key, 0) + 1
            parks.append(Park(r.run_id, r.key, r.task, r.rate_id, seq, r.body))
            parked_ids.add(r.run_id)
            parked.append(r.run_id)
    return AdmitDecision(
        tuple(granted),
        tuple(parked),
        tuple(renew),
        tuple(returned),
        tuple(new_slots),
        tuple(parks),
        hits,
        refused,
        seq,
        tuple(bodies),
    )
