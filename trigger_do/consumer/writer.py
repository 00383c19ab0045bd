"""Coalesced writes: what many concurrent runs produce within a few milliseconds goes to
each object in one call (so a batch of 100 noop runs costs one outcome write, not 100)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..ports import OutMessage, Platform
from ..runs.client import Finished, RunIndex, RunObjects
from ..runs.run_object import RunObject
from ..shared.messages import RunMessage
from ..waits.service import Waits

log = logging.getLogger("trigger_do.consumer")


@dataclass(frozen=True)
class Next:
    """A run's next message (a retry, a continuation), sent once its outcome applied: with
    the run's new dispatch number, which only the outcome's write knows."""

    message: RunMessage
    delay: float


Outcome = tuple[dict[str, Any], Next | None, asyncio.Future[Any]]


class Writer:
    """One run's failure stays that run's: each run's checkpoints, steps and logs are
    one call of their own, with a future of their own; a coalesced index call (progress,
    outcomes) that fails is written again one run at a time, so that only the run that
    made it fail sees the error."""

    def __init__(self, platform: Platform, token: str, interval: float) -> None:
        self.platform = platform
        self.token = token
        self.interval = interval
        self._objects: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._updates: dict[str, dict[str, Any]] = {}
        self._durable: dict[str, asyncio.Future[None]] = {}  # run -> its writes in this flush
        self._outcomes: list[Outcome] = []
        self._next: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self.index = RunIndex(platform)
        self.runs = RunObjects(platform)
        # called with the runs whose outcomes a write records, in the same unit of work
        # (the gate frees their slots there); what it returns is called once it committed
        self.on_finish: Callable[[list[str]], Awaitable[Callable[[], None] | None]] | None = None
        # a run others wait on (it frees a concurrency slot): its outcome is written at once,
        # not `interval` later
        self.urgent: Callable[[str], bool] | None = None
        self._timer: asyncio.Handle | None = None
        self._soon = False
        self._flushing: asyncio.Future[None] | None = None  # (held: not collected mid-flight)
        self.waits = Waits(platform)  # suspended runs and their parents (waits/)

    # --- what runs produce -----------------------------------------------------------------

    def append(self, run_id: str, kind: str, record: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a checkpoint, step or log record; the future resolves once it is durable
        (or fails with the error that kept this run's records from being written)."""
        entry = self._objects.setdefault(run_id, {"checkpoints": [], "steps": [], "logs": []})
        entry[kind].append(record)
        self._updates.setdefault(run_id, {})["has_object"] = 1
        return self._run_future(run_id)

    def update(self, run_id: str, **fields: Any) -> asyncio.Future[None]:
        self._updates.setdefault(run_id, {}).update(fields)
        return self._run_future(run_id)

    def finish(self, outcome: dict[str, Any], message: Next | None) -> asyncio.Future[Any]:
        """Write an attempt's outcome (and, if it applied, send `message` with the run's new
        dispatch number). The future gives the new dispatch, or None when the outcome was
        stale. (A future, not a coroutine: shielding it costs no task per run.)"""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, message, fut))
        self.schedule(soon=self.urgent is not None and self.urgent(outcome["id"]))
        return fut

    def _run_future(self, run_id: str) -> asyncio.Future[None]:
        self.schedule()
        fut = self._durable.get(run_id)
        if fut is None:
            fut = self._durable[run_id] = asyncio.get_running_loop().create_future()
        return fut

    # --- flushing --------------------------------------------------------------------------

    def schedule(self, soon: bool = False) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            self._soon = False
            self._timer = loop.call_later(self.interval, self._start_flush)
        if soon and not self._soon:  # (the writes of this loop turn still join it)
            self._soon = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_soon(self._start_flush)
        return self._next

    def _start_flush(self) -> None:
        self._flushing = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        # one flush writes at a time, and takes what is pending once it is its turn: while
        # a write waits for its lock (another process holds it), what ends meanwhile joins
        # the next write, not a queue of small ones
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        fut, self._next = self._next, None
        if fut is None:  # (whatever is written schedules a flush: an earlier one took it all)
            return
        objects, self._objects = self._objects, {}
        updates, self._updates = self._updates, {}
        durable, self._durable = self._durable, {}
        outcomes, self._outcomes = self._outcomes, []
        failed: dict[str, BaseException] = {}
        try:
            await self._write(objects, updates, outcomes, failed)
        except BaseException as exc:  # the platform itself failed: every write of this flush
            failed.update({run_id: exc for run_id in durable})
            for _, _, f in outcomes:
                _fail(f, exc)
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters re-raise it
        for run_id, f in durable.items():
            if run_id in failed:
                _fail(f, failed[run_id])
            elif not f.done():
                f.set_result(None)
        if not fut.done():
            fut.set_result(None)

    async def _write(
        self,
        objects: dict[str, dict[str, list[dict[str, Any]]]],
        updates: dict[str, dict[str, Any]],
        outcomes: list[Outcome],
        failed: dict[str, BaseException],
    ) -> None:
        """Write a flush; record in `failed` the runs whose own writes failed."""
        now = self.platform.clock.now()
        appended = await asyncio.gather(  # one call per run object (concurrent where real)
            *(
                self.runs(run_id)(RunObject.append, e["checkpoints"], e["steps"], e["logs"])
                for run_id, e in objects.items()
            ),
            return_exceptions=True,
        )
        for run_id, result in zip(objects, appended, strict=True):
            if isinstance(result, BaseException):
                log.error("the records of run %s could not be written: %s", run_id, result)
                failed[run_id] = result
        finishing = {o["id"] for o, _, _ in outcomes}
        progress = [{"id": r, **fields} for r, fields in updates.items() if r not in finishing]
        for shard, group in self.index.group(progress, lambda u: str(u["id"])).items():
            write = functools.partial(self._progress, shard, now)
            for part, exc in await _one_by_one(group, write):
                failed[part["id"]] = exc
        for entry in outcomes:
            entry[0].update(updates.get(entry[0]["id"], {}))
        watched: dict[str, str] = {}
        for shard, entries in self.index.group(outcomes, lambda e: str(e[0]["id"])).items():
            # shard by shard, each outcome with its next message: should a later shard fail,
            # the runs written so far still have theirs
            write = functools.partial(self._finish, shard, now, watched)
            await _one_by_one(entries, write, fail=_fail_entry)
        if watched:  # only runs with live-log subscribers (Cloudflare): end their streams
            await asyncio.gather(*(self._tell_finished(r, s) for r, s in watched.items()))

    async def _progress(self, shard: int, now: float, group: list[dict[str, Any]]) -> None:
        await self.index.update_progress(shard, group, self.token, now)

    async def _finish(
        self, shard: int, now: float, watched: dict[str, str], entries: list[Outcome]
    ) -> None:
        async def write() -> tuple[Finished, Callable[[], None] | None]:
            # the outcomes, the next attempts' messages and the slots they free: one unit
            # (locally one transaction: a process killed after it loses no retry message)
            outcomes = [o for o, _, _ in entries]
            res = await self.index.finish_many(shard, outcomes, self.token, now)
            applied = res.applied
            await self.platform.queue.send_all(
                [
                    OutMessage(nxt.message._replace(dispatch=applied[o["id"]]).to_body(), nxt.delay)
                    for o, nxt, _ in entries
                    if nxt is not None and o["id"] in applied
                ]
            )
            hook = self.on_finish
            return res, (await hook([o["id"] for o in outcomes]) if hook else None)

        res, then = await self.platform.unit(write)
        applied = res.applied
        watched.update(res.watched)
        try:  # resumed runs' messages, parents' waitpoints (housekeeping repairs a loss)
            await self.waits.after_finish(res)
        except Exception:
            log.exception("could not resume the runs waiting on shard %d's outcomes", shard)
        for outcome, _, fut in entries:
            if not fut.done():
                fut.set_result(applied.get(outcome["id"]))
        if then is not None:
            then()

    async def _tell_finished(self, run_id: str, state: str) -> None:
        """Best effort: the outcome is durable already; a lost call is caught by the run
        object's own safety-net check."""
        try:
            await self.runs(run_id)(RunObject.finished, state)
        except Exception:
            log.warning("could not tell the run object of %s that it ended", run_id)


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
        fut.exception()  # mark retrieved: a run that no longer waits must not warn


def _fail_entry(entry: Any, exc: BaseException) -> None:
    _fail(entry[2], exc)


async def _one_by_one(
    items: list[Any],
    write: Callable[[list[Any]], Awaitable[Any]],
    fail: Callable[[Any, BaseException], None] | None = None,
) -> list[tuple[Any, BaseException]]:
    """`write(items)` as one call; should it fail, each item alone (an object call is one
    transaction, so the failed call wrote nothing), so that only the items that fail by
    themselves fail. Returns those, each with its error (handed to `fail` too)."""
    try:
        await write(items)
        return []
    except Exception as exc:
        if len(items) == 1:
            failures: list[tuple[Any, BaseException]] = [(items[0], exc)]
        else:
            log.warning("a coalesced write of %d runs failed (%s); writing them one by one",
                        len(items), exc)  # fmt: skip
            failures = []
            for item in items:
                try:
                    await write([item])
                except Exception as one:
                    failures.append((item, one))
    for item, error in failures:
        if fail is not None:
            fail(item, error)
    return failures
