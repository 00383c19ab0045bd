"""The consumer's side of the coordinator: which runs of a delivered batch may start.

Per batch, each queue that has limits (or controls: paused, a limit override) gets one
`acquire` call carrying all its runs, every key at once; granted runs start, parked ones
are acked (the coordinator hands them back later). Queues without limits or controls skip
the coordinator entirely (their controls are looked up at most once a second per
consumer). Slots are renewed with the runs' leases.

Recycling a slot, with no queue round trip and no call of its own: a slot is freed in the
write that records its run's outcome (`finished`, the writer's hook: one unit of work, so
one transaction locally), and the parked runs that take its place are granted to this
consumer directly (`take`: their messages are the parked bodies; acking one does nothing,
retrying one enqueues it again) and started in that same write (the consumer's
`starter`): they run once it committed. Should this consumer die, their slots lapse and
the coordinator hands them back to another one. Slots freed outside an outcome write (a
run skipped, canceled, crashed) are released in bulk soon after, the same way, the runs
granted starting in a transaction of their own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ports import Message, OutMessage, Platform
from ..runs.client import RunIndex
from ..shared.config import EngineConfig
from ..shared.messages import RunMessage, WakeMessage
from ..shared.states import FINAL_STATES
from ..task import Task
from .client import Coordinators, Reply, is_limited, request, specs_of
from .coordinator import CoordinatorObject
from .standby import Standbys

log = logging.getLogger("trigger_do.coordinator")

CONTROLS_TTL = 1.0  # seconds a consumer trusts what it read of an unlimited queue's controls


Runner = Callable[[Sequence[Message]], Awaitable[None]]
Admitted = list[tuple[Message, RunMessage, float]]  # runs that may start, each at its instant
Launch = Callable[[], Awaitable[None]]
Starter = Callable[[Admitted], Awaitable[Launch | None]]


class GrantedMessage:
    """A run granted directly by a release: it has no queue message of its own (its first
    delivery was acked when it was parked). Acking it is a no-op; retrying it enqueues its
    body again (the coordinator still owns it: a new delivery is parked or granted)."""

    def __init__(
        self, body: dict[str, Any], queue: str, at: float, platform: Platform, gate: Gate
    ) -> None:
        self.run_id = str(body.get("run_id"))
        self.id = f"granted-{self.run_id}"
        self.queue = queue
        self.attempts = 1
        self.timestamp = at
        self.body = body
        self.at = at
        self._platform = platform
        self._gate = gate

    def ack(self) -> None:
        pass

    def retry(self, delay_seconds: float = 0.0) -> None:
        self._gate._spawn(self._platform.queue.send_all([OutMessage(self.body, delay_seconds)]))


@dataclass
class Pressure:
    """Since a worker's last claim (`reset` as it claims): the (queue, key) of each run its
    batches parked (their keys' slots were all taken), and how many slots this consumer
    freed that no parked run took (room a saturated worker claims into)."""

    parked_keys: list[tuple[str, str | None]] = field(default_factory=list)
    free: int = 0

    def reset(self) -> None:
        self.parked_keys.clear()
        self.free = 0


@dataclass
class _Answer:
    """What one call left to start: the runs granted, each at the instant it was granted."""

    admitted: Admitted = field(default_factory=list)


class Gate:
    def __init__(
        self, platform: Platform, tasks: dict[str, Task[Any]], config: EngineConfig
    ) -> None:
        self.platform = platform
        self.tasks = tasks
        self.config = config
        self.queues = {t.queue.name: t.queue for t in tasks.values() if t.queue is not None}
        self.held: dict[str, str] = {}  # run id -> queue, for the slots this consumer holds
        self.standbys = Standbys(platform.clock.now)  # the keys' next runs, ready here
        self.pressure = Pressure()  # how full its keys are, as a worker sizes its claims
        self._controls: dict[str, tuple[float, bool]] = {}
        self._releases: dict[str, set[str]] = defaultdict(set)
        self._flush: asyncio.Handle | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        # who starts the runs a release is granted (the consumer's batch handler), and
        # whether it still takes work; unset or closing: released slots are handed back
        # through the queue only
        self.runner: Runner | None = None
        self.stopping: Callable[[], bool] | None = None
        # who starts granted runs, within the current unit of work if any, and returns what
        # runs them (the consumer). Unset: the runner starts granted runs (a batch of their
        # own, after the write that granted them).
        self.starter: Starter | None = None
        self.closing = False
        self.coordinators = Coordinators(platform, config)
        self.index = RunIndex(platform)

    # --- admission --------------------------------------------------------------------------

    @staticmethod
    def is_wake(body: Any) -> bool:
        return WakeMessage.is_one(body)

    async def wake(self, messages: Sequence[Message]) -> None:
        by_queue: dict[str, list[Message]] = defaultdict(list)
        for m in messages:
            by_queue[WakeMessage.from_body(m.body).queue].append(m)
        for queue, wakes in by_queue.items():
            take = 100 if self._taking() else 0  # (the runs it hands back, started here)
            try:
                res = Reply.of(
                    await self.coordinators(queue)(
                        CoordinatorObject.wake, self.platform.clock.now(), take
                    )
                )
                await self.coordinators.send(queue, res)
            except Exception:  # the message is retried
                log.exception("waking coordinator %s failed", queue)
                for m in wakes:
                    m.retry(1.0)
                continue
            for m in wakes:
                m.ack()
            if res.direct:
                answer = _Answer()
                self._granted(queue, res, answer)
                await self._launch(answer)

    async def admit(
        self,
        pairs: list[tuple[Message, RunMessage]],
        now: float,
        runner: Runner | None = None,
        stopping: Callable[[], bool] | None = None,
    ) -> Admitted:
        """The runs that may start, each with the instant it starts at; parked runs' messages
        are acked here (see the module's notes). Runs of queues without
        limits pass straight through, and so do the runs a release granted this consumer.
        `runner` (with `stopping`, when it stops taking work) starts the runs later
        releases are granted."""
        if runner is not None:
            self.runner, self.stopping = runner, stopping
        out: Admitted = []
        coordinated: dict[str, list[tuple[Message, RunMessage, Task[Any] | None]]] = defaultdict(
            list
        )
        for m, msg in pairs:
            if isinstance(m, GrantedMessage):  # its slot is held already
                self._hold(msg, m.queue)
                out.append((m, msg, m.at))
                continue
            task = self.tasks.get(msg.task)
            queue = msg.queue or (task.queue_name if task else None)
            if queue is None:
                out.append((m, msg, now))
                continue
            shared = self.queues.get(queue)
            limited = (task is not None and is_limited(task)) or (
                shared is not None and shared.concurrency_limit is not None
            )
            if limited or msg.handed or await self._controlled(queue, now):
                coordinated[queue].append((m, msg, task))
            else:
                out.append((m, msg, now))
        for queue, items in coordinated.items():
            specs = specs_of(self.queues.get(queue), (t for _, _, t in items if t is not None))
            requests = [
                request(
                    msg.run_id,
                    msg.task,
                    msg.key,
                    msg.rate_key,
                    # what a parked run's message is handed back as: the one delivered
                    # (built again only to drop the mark of a hand-back)
                    msg._replace(handed=False).to_body() if msg.handed else m.body,
                )
                for m, msg, _ in items
            ]
            # capacity free for runs parked earlier (a lapsed lease, say) goes to them first,
            # granted to this batch: they start with it rather than through the queue
            take = len(items) if self._taking() else 0
            try:
                res = Reply.of(
                    await self.coordinators(queue)(
                        CoordinatorObject.acquire,
                        requests,
                        specs,
                        now,
                        self.config.lease_seconds,
                        take,
                    )
                )
            except Exception:
                log.exception("coordinator %s failed; its runs are redelivered", queue)
                for m, _, _ in items:
                    m.retry(1.0)
                continue
            granted = set(res.granted)
            for m, msg, _ in items:
                if msg.run_id in granted:
                    self._hold(msg, queue)
                    out.append((m, msg, res.at))
                else:
                    m.ack()  # parked: the coordinator holds it and hands it back
                    self.pressure.parked_keys.append((queue, msg.key))
            answer = _Answer()
            self._granted(queue, res, answer, skip=granted)
            out += answer.admitted
            await self.coordinators.send(queue, res)
        return out

    async def _controlled(self, queue: str, now: float) -> bool:
        """Is an unlimited queue paused or given a limit? (cached for `CONTROLS_TTL`)"""
        cached = self._controls.get(queue)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            c = await self.coordinators(queue)(CoordinatorObject.controls)
            controlled = bool(c["paused"] or c["limit_override"] is not None)
        except Exception:
            log.exception("reading the controls of %s failed", queue)
            controlled = False
        self._controls[queue] = (now + CONTROLS_TTL, controlled)
        return controlled

    # --- slots held -------------------------------------------------------------------------

    def urgent(self, run_id: str) -> bool:
        """Should the run's outcome be written at once: it holds a slot that its write
        frees for another run. Not when a standby went in its place: the key's next run
        runs already, and the write only records it (it may join the next flush)."""
        return run_id in self.held and run_id not in self.standbys.handoff

    def forget(self, run_id: str) -> None:
        """This consumer does not run it after all, and must not release it (another
        consumer runs it under the same slot)."""
        self.held.pop(run_id, None)
        self.standbys.freed([run_id])

    async def release_finished(self, runs: list[dict[str, Any]]) -> None:
        """Free the slots of those `{run_id, task, queue?}` that are final now (canceled,
        crashed); a run that is not final belongs to another holder, who frees it."""
        candidates: list[tuple[str, str]] = []
        for r in runs:
            task = self.tasks.get(r.get("task") or "")
            queue = self.held.get(r["run_id"]) or r.get("queue")
            if queue is None and task is not None and is_limited(task):
                queue = task.queue_name
            if queue is None:
                self.held.pop(r["run_id"], None)
            else:
                candidates.append((r["run_id"], queue))
        if not candidates:
            return
        try:
            states = await self.index.get_states([rid for rid, _ in candidates])
        except Exception:  # the slots lapse with their leases
            log.exception("reading the states of ended runs failed")
            return
        for rid, queue in candidates:
            state = states.get(rid)
            if state is None or state[0] in FINAL_STATES:
                self.release(rid, queue)
            else:
                self.forget(rid)

    def release(self, run_id: str, queue: str | None = None) -> None:
        """Free the run's slot soon: with the other releases of this moment (the outcomes
        the writer made durable in one flush resume their runs in the same loop turn, so
        one call carries them all). Call it once the attempt's outcome is durable."""
        held = self.held.pop(run_id, None)
        if held is None:  # (freed already, in the write of its outcome)
            self.standbys.freed([run_id])
        queue = held or queue
        if queue is None:
            return
        self._releases[queue].add(run_id)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._start_flush)

    async def finished(self, run_ids: list[str]) -> Callable[[], None] | None:
        """The writer's hook: free the slots this consumer holds for `run_ids` in the write
        that records their outcomes (one unit of work: durable together, and no call of its
        own), and start the runs that take their places in it too. Returns what runs those,
        to call once that write committed. A slot that could not be freed here stays held,
        and the consumer's `release` once the write is durable frees it."""
        by_queue: dict[str, set[str]] = defaultdict(set)
        for run_id in run_ids:
            queue = self.held.get(run_id)
            if queue is not None:
                by_queue[queue].add(run_id)
        launches = []
        for queue, released in by_queue.items():
            answer = await self._exchange(queue, released, standby=True)
            if answer is not None and answer.admitted:
                launches.append(await self._prepare(answer))
        if not launches:
            return None

        def then() -> None:
            for launch in launches:
                launch()

        return then

    async def _exchange(
        self, queue: str, released: set[str], standby: bool = False
    ) -> _Answer | None:
        """One call to `queue`'s coordinator: free the slots of `released` (those of the
        standbys they let go are promoted in their place) and take as many parked runs as
        slots were freed, and, with `standby`, the standbys its quick runs' keys can use
        (coordinator/standby.py); send what else it asks. None: the call failed (the slots
        lapse with their leases unless released again)."""
        if not released:
            return _Answer()
        take = len(released) if self._taking() else 0
        wants = self.standbys.wants(queue, released) if standby and take else None
        try:
            res = Reply.of(
                await self.coordinators(queue)(
                    CoordinatorObject.release,
                    sorted(released),
                    self.platform.clock.now(),
                    take,
                    self.config.lease_seconds,
                    wants,
                    self.standbys.promotions(released),
                )
            )
        except Exception:
            log.exception("releasing %d slots of %s failed", len(released), queue)
            return None
        for run_id in released:
            self.held.pop(run_id, None)
        answer = _Answer()
        self._granted(queue, res, answer)
        self.pressure.free += max(0, len(released) - len(res.direct))
        try:
            await self.coordinators.send(queue, res)
        except Exception:  # the hand-backs' slots lapse and they are handed back again
            log.exception("sending the hand-backs of %s failed", queue)
        return answer

    def _granted(
        self, queue: str, res: Reply, answer: _Answer, skip: set[str] | frozenset[str] = frozenset()
    ) -> None:
        """The parked runs `res` granted this consumer directly, and its standbys (started
        with them, their code waiting: standby.py), added to `answer`."""
        for bodies, standby in ((res.direct, False), (res.standby, True)):
            for body in bodies:
                g = GrantedMessage(body, queue, res.at, self.platform, self)
                if g.run_id in skip:  # (parked, and delivered again in this batch)
                    continue
                msg = RunMessage.from_body(body)
                self._hold(msg, queue, standby)
                answer.admitted.append((g, msg, res.at))

    def _hold(self, msg: RunMessage, queue: str, standby: bool = False) -> None:
        """This consumer holds a slot of `queue` for the run (a standby's, if `standby`)."""
        self.held[msg.run_id] = queue
        if standby:
            self.standbys.wait(msg.run_id, queue, msg.key)
        else:
            self.standbys.track(msg.run_id, queue, msg.key)

    async def _prepare(self, answer: _Answer) -> Callable[[], None]:
        """Start the runs of `answer` (within the current unit of work, if any): returns
        what runs them. Without a starter, the runner starts them (a batch of their own)."""
        starter, runner = self.starter, self.runner
        launch: Launch | None = None
        if starter is not None and runner is not None:
            try:
                launch = await starter(answer.admitted)
            except Exception:  # their slots lapse; the coordinator hands them back again
                log.exception("starting %d granted runs failed", len(answer.admitted))
                for _, msg, _ in answer.admitted:
                    self.held.pop(msg.run_id, None)
        elif runner is not None:
            launch = functools.partial(runner, [m for m, _, _ in answer.admitted])
        return lambda: self._spawn(self._run_granted(launch))

    async def _launch(self, answer: _Answer) -> None:
        if answer.admitted:
            (await self._prepare(answer))()

    async def flush(self) -> None:
        self._flush = None
        releases, self._releases = self._releases, defaultdict(set)
        for queue, released in releases.items():
            answer = await self._exchange(queue, released)
            if answer is not None:
                self.standbys.freed(released)  # (a transaction of its own: durable now)
                await self._launch(answer)

    def _start_flush(self) -> None:
        self._spawn(self.flush())

    def _spawn(self, work: Awaitable[Any]) -> None:
        fut = asyncio.ensure_future(work)
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def _taking(self) -> bool:
        return (
            self.runner is not None
            and not self.closing
            and not (self.stopping is not None and self.stopping())
        )

    async def _run_granted(self, launch: Launch | None) -> None:
        try:
            if launch is not None:
                await launch()
        except Exception:  # their slots lapse; the coordinator hands them back again
            log.exception("running granted runs failed")

    async def drain(self) -> None:
        """Stop taking granted runs, and wait for the releases scheduled so far and the
        granted runs already started (shutdown, end of a Cloudflare invocation, tests)."""
        self.closing = True
        while True:
            if self._flush is not None:
                self._flush.cancel()
                await self.flush()
            pending = [f for f in self._pending if not f.done()]
            self._pending.difference_update([f for f in self._pending if f.done()])
            if not pending:
                if self._flush is None:
                    return
                continue
            await asyncio.gather(*pending, return_exceptions=True)

    async def extend(self, run_ids: list[str], now: float) -> None:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for r in run_ids:
            if r in self.held:
                by_queue[self.held[r]].append(r)
        for queue, ids in by_queue.items():
            try:
                lost = await self.coordinators(queue)(
                    CoordinatorObject.extend, ids, now, self.config.lease_seconds
                )
            except Exception:
                log.exception("renewing slots of %s failed", queue)
                continue
            if lost:
                log.warning("%d runs of %s lost their slots (lease lapsed)", len(lost), queue)
