"""Queue controls (Trigger.dev's queues API): list queues with their counts, pause and
resume a queue, override its concurrency limit. The engine exposes these; the HTTP API
serves them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import PayloadValidationError, QueueNotFoundError
from ..ports import Platform
from ..runs.client import Registry, RunIndex
from ..shared.config import EngineConfig
from .client import Coordinators, Reply
from .coordinator import CoordinatorObject

log = logging.getLogger("trigger_do.coordinator")
_Runs = list[dict[str, Any]]  # (`list` is a method name in the class below)
_Ids = list[str]


Declared = Callable[[], dict[str, int | None]]  # queue -> the limit its tasks declare


class QueueControls:
    """`declared` gives this process's queues and the concurrency limit their tasks
    declare (the engine derives it from the registered tasks)."""

    def __init__(self, platform: Platform, config: EngineConfig, declared: Declared) -> None:
        self.platform = platform
        self.config = config
        self.declared = declared
        self.coordinators = Coordinators(platform, config)
        self.index = RunIndex(platform)
        self.registry = Registry(platform)

    async def names(self) -> list[str]:
        """Every queue a registered task uses (this process's and the registry's)."""
        names = set(self.declared())
        names.update(r["queue"] for r in await self.registry.tasks() if r.get("queue"))
        return sorted(names)

    async def list(self) -> list[dict[str, Any]]:
        counts = await self.index.queue_counts()
        names = sorted(set(await self.names()) | {q for q in counts if q})
        return [await self.get(name, counts.get(name, {})) for name in names]

    async def get(self, name: str, counts: dict[str, int] | None = None) -> dict[str, Any]:
        """One queue: `{name, running, queued, paused, concurrency_limit, limit_override,
        parked}` (running and queued from the run index: the runs' own states)."""
        if counts is None:
            counts = (await self.index.queue_counts()).get(name, {})
            if not counts and name not in await self.names():
                raise QueueNotFoundError(name)
        stats = await self.coordinators(name)(CoordinatorObject.stats, self.platform.clock.now())
        declared = self.declared().get(name)
        return {
            "name": name,
            "running": counts.get("running", 0),
            "queued": counts.get("queued", 0) + counts.get("waiting_for_retry", 0),
            "paused": stats["paused"],
            "concurrency_limit": stats["limit_override"] or declared,
            "limit_override": stats["limit_override"],
            "parked": stats["parked"],
        }

    async def pause(self, name: str) -> dict[str, Any]:
        await self._known(name)
        res = await self.coordinators(name)(CoordinatorObject.pause, self.platform.clock.now())
        await self.coordinators.send(name, Reply.of(res))
        return await self.get(name)

    async def resume(self, name: str) -> dict[str, Any]:
        await self._known(name)
        res = await self.coordinators(name)(CoordinatorObject.resume, self.platform.clock.now())
        await self.coordinators.send(name, Reply.of(res))
        return await self.get(name)

    async def set_limit(self, name: str, limit: int | None) -> dict[str, Any]:
        """Override the queue's concurrency limit; None resets it to the declared one."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise PayloadValidationError(
                f"a concurrency limit is a positive integer, not {limit!r}",
                errors=[{"loc": "concurrencyLimit", "msg": "a positive integer"}],
            )
        await self._known(name)
        now = self.platform.clock.now()
        res = await self.coordinators(name)(CoordinatorObject.set_limit, limit, now)
        await self.coordinators.send(name, Reply.of(res))
        return await self.get(name)

    async def unparked(self, runs: _Runs) -> _Runs:
        """Of the overdue runs housekeeping found (`{id, queue, ...}`), those to send again:
        not the ones their queue's coordinator owns (parked, handed back, holding a live
        slot): it hands those back itself, and this call, which also reclaims its lapsed
        leases and sends what that hands back, keeps it going even if its alarms were lost.
        A coordinator that cannot be asked keeps nothing back (a duplicate message is
        harmless; a lost run is not)."""
        by_queue: dict[str, _Ids] = {}
        for r in runs:
            if r.get("queue"):
                by_queue.setdefault(r["queue"], []).append(r["id"])
        owned: set[str] = set()
        for queue, ids in by_queue.items():
            now = self.platform.clock.now()
            try:
                res = Reply.of(
                    await self.coordinators(queue)(CoordinatorObject.holding, ids, now)
                )
                owned.update(res.held)
                await self.coordinators.send(queue, res)
            except Exception:
                log.exception("asking the coordinator of %s what it holds failed", queue)
        return [r for r in runs if r["id"] not in owned]

    async def _known(self, name: str) -> None:
        if name not in await self.names():
            raise QueueNotFoundError(name)
