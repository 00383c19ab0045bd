"""A consumer worker process: `python -m trigger_do.platform.local.worker --tasks MOD --db PATH`.

Started fresh (never forked) by the runtime; imports the tasks module by its dotted path,
then loops: receive a batch from the run queue, hand it to the engine's consumer, settle
acks and retries in bulk; dead letters go to the consumer's dead-letter handler. SIGTERM
(or SIGINT) stops it gracefully: no new batches, running attempts get the grace period,
the rest are continued from their checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ...consumer.consumer import Consumer
from ...engine import Engine
from ...sdk.client import EmbeddedClient, pop_client, push_client
from ...shared.config import EngineConfig
from ...shared.serialization import dumps
from ...task import registered_tasks
from .checkpoints import Checkpointer
from .doorbell import Listener
from .loop import new_event_loop
from .platform import RUN_QUEUE, open_local
from .processes import end_session, register_session, suspect_group
from .queue import LocalMessage, LocalQueueConsumer
from .watchdog import LoopWatchdog

log = logging.getLogger("trigger_do.worker")

Launch = Callable[[], Awaitable[None]]  # runs the runs a claimed batch started
SUPERVISOR_ENV = "TRIGGER_DO_SUPERVISOR"  # the supervisor's pid, set by runtime.py
# the Worker's own options (the rest of a config is the engine's)
WORKER_OPTIONS = (
    "batch_size", "max_batch_size", "max_running", "poll_interval", "max_retries", "batch_wait",
)  # fmt: skip
SATURATED_KEYS = 8  # parked runs of at least this many keys in one claim: saturated
SATURATED_PROBE = 0.25  # seconds between the whole batches a saturated worker claims anyway
QUICK_BATCH = 0.1  # seconds: a full batch whose runs all ended this fast doubles the claim


class Worker:
    def __init__(
        self,
        db: str,
        config: EngineConfig,
        *,
        batch_size: int = 100,
        max_batch_size: int = 500,
        max_running: int = 1000,
        poll_interval: float = 0.005,
        max_retries: int = 3,
        batch_wait: float = 0.0,
    ) -> None:
        self.platform, self.sql = open_local(db)
        self.config = config
        self.consumer = Consumer(self.platform, registered_tasks(), config)
        token = self.consumer.token
        clock = self.platform.clock
        # a message stays invisible a little longer than the run's lease (taken just after
        # the claim), so a dead worker's redelivery finds the lease already lapsed
        visibility = config.lease_seconds * 1.1 + 0.5
        self.queue = LocalQueueConsumer(
            self.sql, RUN_QUEUE, clock, token=token, visibility=visibility, max_retries=max_retries
        )
        self.dlq = LocalQueueConsumer(
            self.sql, RUN_QUEUE + "-dlq", clock, token=token, visibility=visibility
        )
        self.batch_size = batch_size
        # a worker whose full batches end quickly (short runs, a deep queue) claims more at a
        # time, up to max_batch_size: fewer transactions per run; a slow batch takes it back
        # to batch_size (a long run never holds many others back)
        self.max_batch_size = max(batch_size, max_batch_size)
        self.claim_size = batch_size
        # while most of what it claims is parked (its keys' slots are all taken), a worker
        # claims only as many runs as its finished runs freed slots that no parked run took
        # (`Gate.pressure`): a run claimed then costs a start, not a park and a grant. A
        # claim that parks less than half ends this; and every SATURATED_PROBE seconds it
        # may claim a batch anyway (work of other queues behind a saturated key keeps coming)
        self.saturated: float | None = None  # since when (the last probe)
        self.max_running = max_running
        self.poll_interval = poll_interval
        self.batch_wait = batch_wait  # how long a short batch may wait to fill up
        self.inflight: dict[int, list[LocalMessage]] = {}
        self.finished: list[LocalMessage] = []  # settled with the next claim (or heartbeat)
        self.stop_event = asyncio.Event()
        self.doorbell = Listener(Path(db))  # woken by a commit of work, not only by polling
        # the supervisor that started us (named by it: should it die before we get here, our
        # parent is already another process); it dies: so do we
        self.parent = int(os.environ.get(SUPERVISOR_ENV) or os.getppid())

    async def run(self) -> None:
        self._register()
        watchdog = LoopWatchdog(self)  # keeps the leases should a task block the loop
        watchdog.start(asyncio.get_running_loop())
        checkpoints = Checkpointer(self.sql)  # the log copied back outside the loop
        checkpoints.start()
        heartbeat = asyncio.ensure_future(self._heartbeat())
        batches: set[asyncio.Task[None]] = set()
        self.doorbell.start(asyncio.get_running_loop())
        try:
            while not self.stop_event.is_set():
                room, sized = self._room()
                if room <= 0:
                    await asyncio.sleep(self.poll_interval)
                    continue
                pressure = self.consumer.gate.pressure
                pressure.reset()  # (this claim takes the room freed so far)
                messages, launch = await self._receive(min(self.claim_size, room))
                if not messages:
                    await self.doorbell.wait(self.poll_interval, self.stop_event)
                    continue
                if launch is None and any(suspect_group(m.body) for m in messages):
                    await self._isolate(messages, batches)
                    continue
                batch = asyncio.ensure_future(self._batch(messages, launch))
                batches.add(batch)
                batch.add_done_callback(batches.discard)
                await asyncio.sleep(0)  # let the batch start before claiming more
                if launch is not None:  # (admitted in the claim: what parked is known)
                    self._saturated(pressure.parked_keys, len(messages), sized)
        finally:
            self.doorbell.stop(asyncio.get_running_loop())
            await self.consumer.shutdown(self.config.shutdown_grace)
            if batches:
                await asyncio.wait(batches, timeout=self.config.shutdown_grace + 10)
            heartbeat.cancel()
            watchdog.stop()
            checkpoints.stop()
            self._settle_all()
            self.sql.exec("DELETE FROM workers WHERE pid = ?", os.getpid())
            end_session(self.sql, os.getpid())

    def _room(self) -> tuple[int, bool]:
        """How many more runs this worker may claim now, and whether that is sized to the
        slots its releases freed (its keys are saturated)."""
        room = self.max_running - len(self.consumer.running)
        if self.saturated is None:
            return room, False
        if time.monotonic() - self.saturated > SATURATED_PROBE:
            self.saturated = time.monotonic()
            return min(room, self.batch_size), False  # a look past the saturated keys
        return min(room, self.consumer.gate.pressure.free), True

    def _saturated(self, parked: list[tuple[str, str | None]], claimed: int, sized: bool) -> None:
        """After a claim: most of it parked, of many keys: the keys are saturated. Little of
        a claim not sized to the freed slots (a probe, say) parked: they are not (or no
        longer). The runs of a backlog of a few keys are claimed past, parked, so that
        other keys' runs behind them start at once."""
        if len(parked) * 2 > claimed:
            if self.saturated is None and len(set(parked)) >= SATURATED_KEYS:
                self.saturated = time.monotonic()
        elif not sized:
            self.saturated = None

    async def _receive(self, n: int) -> tuple[list[LocalMessage], Launch | None]:
        """Up to `n` messages; a short batch waits up to `batch_wait` to fill up. A full
        batch is claimed, the finished ones settled and its runs started in one
        transaction (`Platform.unit`): then it comes with what runs them."""
        if not self.queue.has_visible():
            return [], None
        finished, self.finished = self.finished, []

        async def claim() -> tuple[list[LocalMessage], Launch | None]:
            messages = self.queue.receive(n, settle=finished)
            if len(messages) < n or any(suspect_group(m.body) for m in messages):
                return messages, None
            return messages, await self.consumer.begin(messages)

        try:
            messages, launch = await self.platform.unit(claim)
        except Exception:  # undone: nothing claimed, nothing settled (they come again)
            log.exception("claiming and starting a batch failed")
            self.finished = finished + self.finished
            return [], None
        if launch is not None:
            return messages, launch
        deadline = time.monotonic() + self.batch_wait
        while messages and len(messages) < n and time.monotonic() < deadline:
            await self._sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
            messages += self.queue.receive(n - len(messages))
        return messages, None

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop_event.wait(), seconds)
        except TimeoutError:
            pass

    async def _isolate(
        self, messages: list[LocalMessage], batches: set[asyncio.Task[None]]
    ) -> None:
        """Runs that were running in a worker that died (`suspect_group`): one of them may
        have killed it, so they run apart from all other work, in groups half the size of
        the one they died in. Their deliveries were given back (processes.release); only a
        run that kills its process while alone keeps one, so a poison run ends in the
        dead-letter queue without taking its neighbours' retries with it."""
        key = id(messages)
        self.inflight[key] = messages  # (their visibility kept while they wait their turn)
        try:
            if batches:  # nothing else runs beside them
                await asyncio.wait(set(batches))
            suspects = [m for m in messages if suspect_group(m.body)]
            others = [m for m in messages if not suspect_group(m.body)]
            size = max(1, min(suspect_group(m.body) for m in suspects) // 2)
            for i in range(0, len(suspects), size):
                await self._batch(suspects[i : i + size], None)
            if others:
                await self._batch(others, None)
        finally:
            self.inflight.pop(key, None)

    async def _batch(self, messages: list[LocalMessage], launch: Launch | None) -> None:
        key = id(messages)
        self.inflight[key] = messages
        began, full = time.monotonic(), len(messages) >= self.claim_size
        try:
            await (launch() if launch is not None else self.consumer.handle_batch(messages))
        except Exception:
            log.exception("a batch failed; its messages will be redelivered")
        finally:
            self.inflight.pop(key, None)
            self.finished += messages
        if time.monotonic() - began > QUICK_BATCH:
            self.claim_size = self.batch_size
        elif full:
            self.claim_size = min(self.max_batch_size, self.claim_size * 2)

    async def _dead_letters(self) -> None:
        messages = self.dlq.receive(self.batch_size)
        if messages:
            await self.consumer.handle_dead_letters(messages)
            self.dlq.settle(messages)

    async def _heartbeat(self) -> None:
        """Settle what is decided, keep in-flight messages leased, say we are alive."""
        every = min(1.0, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(every)
            if self.orphaned():
                log.warning("worker %s: its supervisor is gone; stopping", os.getpid())
                self.stop_event.set()
            try:
                # on the loop: while another process writes, the runs go on (a blocking
                # wait for the lock held them all up)
                await self.sql.transaction_async(self._settling(seen=True))
                if self.dlq.has_visible():
                    await self._dead_letters()
            except Exception:
                log.exception("worker heartbeat failed")

    def orphaned(self) -> bool:
        """Whether the supervisor that started this worker has died."""
        return os.getppid() != self.parent

    def _settle_all(self) -> None:
        self.sql.transaction(self._settling())

    def _settling(self, seen: bool = False) -> Callable[[], None]:
        """What settles finished batches, settles what running batches decided so far and
        keeps their other messages leased, in one transaction; `seen`: and says this worker
        is alive."""
        finished, self.finished = self.finished, []

        def apply() -> None:
            self.queue.settle(finished)
            for key, messages in list(self.inflight.items()):
                pending = self.queue.settle(messages)
                self.queue.extend(pending)
                self.inflight[key] = pending
            if seen:
                self.sql.exec(
                    "UPDATE workers SET seen_at = ? WHERE pid = ?",
                    self.platform.clock.now(),
                    os.getpid(),
                )

        return apply

    def _register(self) -> None:
        now = self.platform.clock.now()
        tasks = registered_tasks()
        self.sql.transaction(lambda: self._register_tx(tasks, now))

    def _register_tx(self, tasks: dict[str, Any], now: float) -> None:
        from ...runs.registry import RegistryObject
        from ...shared.subscriptions import registry_options

        RegistryObject(self.sql, "registry").register(
            [
                {
                    "id": t.id,
                    "module": t.module,
                    "queue": t.queue_name,
                    "options": registry_options(t.subscription),  # events it subscribes to
                }
                for t in tasks.values()
            ],
            now,
        )
        self.sql.exec(
            "INSERT OR REPLACE INTO workers (pid, started_at, seen_at, tasks) VALUES (?,?,?,?)",
            os.getpid(),
            now,
            now,
            dumps(sorted(tasks)),
        )
        register_session(self.sql, self.consumer.token, now)
        # the tasks' declarative schedules, as these tasks declare them (schedules/)
        from ...schedules.scheduler import SchedulerObject
        from ...schedules.service import declared

        ids, entries = declared(tasks.values())
        SchedulerObject(self.sql, SchedulerObject.NAME).sync_declarative(ids, entries, now)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trigger_do.platform.local.worker")
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--config", default="{}")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TRIGGER_DO_LOG_LEVEL", "WARNING"),
        format="%(asctime)s worker %(process)d %(levelname)s %(message)s",
    )
    options: dict[str, Any] = json.loads(args.config)
    worker_opts = {k: options.pop(k) for k in WORKER_OPTIONS if k in options}
    db = str(Path(args.db).resolve())
    # this worker's database for everything in the process: a task's SDK calls (a child
    # run, trigger_and_wait, ...) and any process a task starts, whatever the cwd or the
    # environment it inherited (TRIGGER_API_URL included)
    os.environ["TRIGGER_DO_DB"] = db
    for module in filter(None, args.tasks.split(",")):
        importlib.import_module(module)
    # what is loaded stays: the collector no longer walks it, and collects young objects
    # (a run's few) less often
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    worker = Worker(db, EngineConfig(**options), **worker_opts)
    client = EmbeddedClient(Engine(worker.platform, worker.config))
    push_client(client)  # process-wide: sync tasks run in threads, outside any context
    try:
        # (timers that fire on time: a run holding a slot holds it no longer than it asks)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(_serve(worker))
    finally:
        pop_client(client)


async def _serve(worker: Worker) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop_event.set)
    await worker.run()
    for sig in (signal.SIGTERM, signal.SIGINT):  # stopped: a second signal (Ctrl-C reaches
        loop.remove_signal_handler(sig)  # the whole process group) must not find the loop gone
        signal.signal(sig, signal.SIG_IGN)
    return 0


if __name__ == "__main__":
    sys.exit(main())
