"""Coalesced writes: what many concurrent runs produce within a few milliseconds goes to
each object in one call (so a batch of 100 noop runs costs one outcome write, not 100)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from ..ports import OutMessage, Platform
from ..shared.ids import shard_of

log = logging.getLogger("trigger_do.consumer")


class Writer:
    def __init__(self, platform: Platform, token: str, interval: float) -> None:
        self.platform = platform
        self.token = token
        self.interval = interval
        self._objects: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._updates: dict[str, dict[str, Any]] = {}
        self._outcomes: list[tuple[dict[str, Any], OutMessage | None, asyncio.Future[Any]]] = []
        self._next: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    # --- what runs produce -----------------------------------------------------------------

    def append(self, run_id: str, kind: str, record: dict[str, Any]) -> asyncio.Future[None]:
        """Queue a checkpoint, step or log record; the future resolves once it is durable."""
        entry = self._objects.setdefault(run_id, {"checkpoints": [], "steps": [], "logs": []})
        entry[kind].append(record)
        self._updates.setdefault(run_id, {})["has_object"] = 1
        return self.schedule()

    def update(self, run_id: str, **fields: Any) -> asyncio.Future[None]:
        self._updates.setdefault(run_id, {}).update(fields)
        return self.schedule()

    def finish(self, outcome: dict[str, Any], message: OutMessage | None) -> asyncio.Future[Any]:
        """Write an attempt's outcome (and, if it applied, send `message` with the run's new
        dispatch number). The future gives the new dispatch, or None when the outcome was
        stale. (A future, not a coroutine: shielding it costs no task per run.)"""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, message, fut))
        self.schedule()
        return fut

    # --- flushing --------------------------------------------------------------------------

    def schedule(self) -> asyncio.Future[None]:
        if self._next is None:
            loop = asyncio.get_running_loop()
            self._next = loop.create_future()
            loop.call_later(self.interval, lambda: asyncio.ensure_future(self.flush()))
        return self._next

    async def flush(self) -> None:
        fut, self._next = self._next, None
        objects, self._objects = self._objects, {}
        updates, self._updates = self._updates, {}
        outcomes, self._outcomes = self._outcomes, []
        try:
            async with self._lock:
                await self._write(objects, updates, outcomes)
        except BaseException as exc:
            for _, _, f in outcomes:
                if not f.done():
                    f.set_exception(exc)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters re-raise it
            return
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _write(
        self,
        objects: dict[str, dict[str, list[dict[str, Any]]]],
        updates: dict[str, dict[str, Any]],
        outcomes: list[tuple[dict[str, Any], OutMessage | None, asyncio.Future[Any]]],
    ) -> None:
        now = self.platform.clock.now()
        runs = self.platform.objects("run")
        await asyncio.gather(  # one call per run object (concurrent where that is real)
            *(
                runs.get(run_id).call("append", e["checkpoints"], e["steps"], e["logs"])
                for run_id, e in objects.items()
            )
        )
        index = self.platform.objects("run-index")
        shards = self.platform.index_shards
        finishing = {o["id"] for o, _, _ in outcomes}
        by_shard: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for run_id, fields in updates.items():
            if run_id not in finishing:
                by_shard[shard_of(run_id, shards)].append({"id": run_id, **fields})
        for shard, group in by_shard.items():
            await index.get(f"shard-{shard}").call("update_progress", group, self.token, now)
        grouped: dict[int, list[tuple[dict[str, Any], OutMessage | None, asyncio.Future[Any]]]]
        grouped = defaultdict(list)
        for entry in outcomes:
            entry[0].update(updates.get(entry[0]["id"], {}))
            grouped[shard_of(entry[0]["id"], shards)].append(entry)
        watched: dict[str, str] = {}
        for shard, entries in grouped.items():
            # shard by shard, each outcome with its next message: should a later shard fail,
            # the runs written so far still have theirs
            res = await index.get(f"shard-{shard}").call(
                "finish_many", [o for o, _, _ in entries], self.token, now
            )
            applied: dict[str, int] = res["applied"]
            watched.update(res.get("watched") or {})
            messages: list[OutMessage] = []
            for outcome, message, _ in entries:
                if message is not None and outcome["id"] in applied:
                    message.body["d"] = applied[outcome["id"]]
                    messages.append(message)
            await self.platform.queue.send_all(messages)
            for outcome, _, fut in entries:
                if not fut.done():
                    fut.set_result(applied.get(outcome["id"]))
        if watched:  # only runs with live-log subscribers (Cloudflare): end their streams
            await asyncio.gather(*(self._tell_finished(r, s) for r, s in watched.items()))

    async def _tell_finished(self, run_id: str, state: str) -> None:
        """Best effort: the outcome is durable already; a lost call is caught by the run
        object's own safety-net check."""
        try:
            await self.platform.objects("run").get(run_id).call("finished", state)
        except Exception:
            log.warning("could not tell the run object of %s that it ended", run_id)
