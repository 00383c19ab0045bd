"""A worker's leases kept from outside its event loop, while that loop is blocked.

A task that blocks the loop (`time.sleep` or heavy CPU inside `async def`) stops everything
the loop does, lease renewals included: its run and every other run of the worker would
lose their leases and run again elsewhere. The watchdog is a thread: the loop ticks a
timestamp every `TICK` seconds; while the tick is older than `BLOCKED_AFTER`, the thread
renews, itself, what the loop would have renewed (the leases of the worker's running runs,
their coordinator slots, the visibility of its in-flight messages, its own liveness), and
logs once which task is blocking, with where.

This is the local platform's part: the engine core runs under Pyodide, which has no threads.
On Cloudflare a consumer invocation is one isolate whose CPU limit ends a blocked one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import defaultdict
from types import FrameType
from typing import Any, Protocol

from ...consumer.consumer import Consumer
from ...coordinator.coordinator import CoordinatorObject
from ...ports import Platform
from ...shared.config import EngineConfig
from ...task import registered_tasks
from .database import LocalSql
from .queue import LocalMessage, LocalQueueConsumer

log = logging.getLogger("trigger_do.worker")

TICK = 0.25  # how often the loop says it is alive
BLOCKED_AFTER = 1.0  # a tick older than this: the loop is blocked


class Watched(Protocol):
    """What the watchdog keeps of a worker (worker.py's `Worker`)."""

    platform: Platform
    sql: LocalSql
    config: EngineConfig
    consumer: Consumer
    queue: LocalQueueConsumer
    inflight: dict[int, list[LocalMessage]]
    stop_event: asyncio.Event

    def orphaned(self) -> bool: ...


class LoopWatchdog:
    def __init__(self, worker: Watched) -> None:
        self.worker = worker
        self.every = min(1.0, worker.config.lease_seconds / 4)
        self.last_tick = time.monotonic()
        self.blocked_since: float | None = None
        self.loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._watch, name="trigger-do-watchdog", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.loop_thread = threading.get_ident()
        loop.call_soon(self._tick)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _tick(self) -> None:
        self.last_tick = time.monotonic()
        if self._loop is not None and not self._stop.is_set():
            self._loop.call_later(TICK, self._tick)

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            if self.worker.orphaned():  # the supervisor died while the loop is blocked
                self._orphaned()
            stalled = time.monotonic() - self.last_tick
            if stalled < BLOCKED_AFTER:
                if self.blocked_since is not None:
                    log.warning(
                        "worker %s: the event loop runs again after %.1f s blocked",
                        os.getpid(),
                        time.monotonic() - self.blocked_since,
                    )
                    self.blocked_since = None
                continue
            if self.blocked_since is None:
                self.blocked_since = self.last_tick
                log.warning(
                    "worker %s: the event loop is blocked (%s): a blocking call inside an "
                    "`async def` task? Sync work belongs in a `def` task (it runs in a "
                    "thread) or in `await asyncio.to_thread(...)`. Leases are kept meanwhile.",
                    os.getpid(),
                    self.blocker(),
                )
            try:
                asyncio.run(self.keep())
            except Exception:
                log.exception("keeping leases while the loop is blocked failed")

    def _orphaned(self) -> None:
        """Ask the loop to stop; if it stays blocked past the grace period, exit now (what
        the worker held is released by the next supervisor, or lapses)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.worker.stop_event.set)
        if time.monotonic() - self.last_tick > self.worker.config.shutdown_grace + 15:
            log.error("worker %s: supervisor gone and loop blocked: exiting", os.getpid())
            os._exit(1)

    async def keep(self) -> None:
        """Renew what the blocked loop would have renewed (its own objects, this thread's
        connection: the loop is stuck in user code and touches none of this meanwhile)."""
        worker = self.worker
        consumer = worker.consumer
        platform = worker.platform
        now = platform.clock.now()
        lease = worker.config.lease_seconds
        running = _snapshot(consumer.running)
        await consumer.index.extend_leases(list(running), consumer.token, now, lease)
        slots: dict[str, list[str]] = defaultdict(list)
        for run_id, queue in _snapshot(consumer.gate.held).items():
            if run_id in running:
                slots[queue].append(run_id)
        for queue, ids in slots.items():
            await consumer.gate.coordinators(queue)(CoordinatorObject.extend, ids, now, lease)
        for messages in _snapshot(worker.inflight).values():
            worker.queue.extend(messages)
        worker.sql.exec("UPDATE workers SET seen_at = ? WHERE pid = ?", now, os.getpid())

    def blocker(self) -> str:
        """Which task the loop's thread is in, and where (as best the stack says)."""
        frame: FrameType | None = sys._current_frames().get(self.loop_thread)
        codes = {_code(t.fn): t.id for t in registered_tasks().values()}
        where = ""
        while frame is not None:
            if not where and "trigger_do" not in frame.f_code.co_filename:
                where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
            task_id = codes.get(frame.f_code)
            if task_id is not None:
                ctx = frame.f_locals.get("ctx")
                run = getattr(ctx, "run_id", None)
                return f"task {task_id!r}" + (f", run {run}" if run else "") + f", at {where}"
            frame = frame.f_back
        return f"at {where}" if where else "in trigger.do itself"


def _code(fn: Any) -> Any:
    return getattr(getattr(fn, "__wrapped__", fn), "__code__", None)


def _snapshot(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """A copy of a dict another thread may be changing (retried if it changed under us)."""
    for _ in range(10):
        try:
            return dict(mapping)
        except RuntimeError:  # "dictionary changed size during iteration"
            time.sleep(0.001)
    return {}
