"""Queue controls (Trigger.dev's queues API): list queues with their counts, pause and
resume a queue, override its concurrency limit. The engine exposes these; the HTTP API
serves them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import PayloadValidationError, QueueNotFoundError
from ..ports import OutMessage, Platform
from ..shared.config import EngineConfig
from ..task import Task, registered_tasks
from .gate import KIND, wake_body

log = logging.getLogger("trigger_do.coordinator")
_Runs = list[dict[str, Any]]  # (`list` is a method name in the class below)
_Ids = list[str]


class QueueControls:
    def __init__(
        self,
        platform: Platform,
        config: EngineConfig,
        tasks: Callable[[], dict[str, Task[Any]]] = registered_tasks,
    ) -> None:
        self.platform = platform
        self.config = config
        self.tasks = tasks

    def _coordinator(self, queue: str) -> Any:
        return self.platform.objects(KIND).get(queue)

    async def names(self) -> list[str]:
        """Every queue a registered task uses (this process's and the registry's)."""
        names = {t.queue_name for t in self.tasks().values()}
        rows = await self.platform.objects("registry").get("registry").call("list")
        names.update(r["queue"] for r in rows if r.get("queue"))
        return sorted(names)

    async def list(self) -> list[dict[str, Any]]:
        counts: dict[str, dict[str, int]] = {}
        ns = self.platform.objects("run-index")
        for i in range(self.platform.index_shards):
            for queue, states in (await ns.get(f"shard-{i}").call("queue_counts")).items():
                mine = counts.setdefault(queue, {})
                for state, n in states.items():
                    mine[state] = mine.get(state, 0) + n
        names = sorted(set(await self.names()) | {q for q in counts if q})
        return [await self.get(name, counts.get(name, {})) for name in names]

    async def get(self, name: str, counts: dict[str, int] | None = None) -> dict[str, Any]:
        """One queue: `{name, running, queued, paused, concurrency_limit, limit_override,
        parked}` (running and queued from the run index: the runs' own states)."""
        if counts is None:
            counts = {}
            ns = self.platform.objects("run-index")
            for i in range(self.platform.index_shards):
                found = await ns.get(f"shard-{i}").call("queue_counts")
                for state, n in found.get(name, {}).items():
                    counts[state] = counts.get(state, 0) + n
            if not counts and name not in await self.names():
                raise QueueNotFoundError(name)
        stats = await self._coordinator(name).call("stats", self.platform.clock.now())
        declared = self._declared_limit(name)
        return {
            "name": name,
            "running": counts.get("running", 0),
            "queued": counts.get("queued", 0) + counts.get("waiting_for_retry", 0),
            "paused": stats["paused"],
            "concurrency_limit": stats["limit_override"] or declared,
            "limit_override": stats["limit_override"],
            "parked": stats["parked"],
        }

    def _declared_limit(self, name: str) -> int | None:
        for t in self.tasks().values():
            if t.queue_name != name:
                continue
            if t.queue is not None and t.queue.concurrency_limit is not None:
                return t.queue.concurrency_limit
            if t.concurrency is not None and t.concurrency.key is None:
                return t.concurrency.limit
        return None

    async def pause(self, name: str) -> dict[str, Any]:
        await self._call(name, "pause")
        return await self.get(name)

    async def resume(self, name: str) -> dict[str, Any]:
        await self._call(name, "resume")
        return await self.get(name)

    async def set_limit(self, name: str, limit: int | None) -> dict[str, Any]:
        """Override the queue's concurrency limit; None resets it to the declared one."""
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise PayloadValidationError(
                f"a concurrency limit is a positive integer, not {limit!r}",
                errors=[{"loc": "concurrencyLimit", "msg": "a positive integer"}],
            )
        await self._call(name, "set_limit", limit)
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
                res = await self._coordinator(queue).call("holding", ids, now)
                owned.update(res["held"])
                await self._send(queue, res, now)
            except Exception:
                log.exception("asking the coordinator of %s what it holds failed", queue)
        return [r for r in runs if r["id"] not in owned]

    async def _send(self, name: str, res: dict[str, Any], now: float) -> None:
        out = [OutMessage(body, 0.0) for body in res.get("handback") or []]
        if res.get("alarm") is not None:
            delay = min(max(0.0, res["alarm"] - now), self.config.max_message_delay)
            out.append(OutMessage(wake_body(name), delay))
        if out:
            await self.platform.queue.send_all(out)

    async def _call(self, name: str, method: str, *args: Any) -> None:
        if name not in await self.names():
            raise QueueNotFoundError(name)
        now = self.platform.clock.now()
        res = await self._coordinator(name).call(method, *args, now)
        await self._send(name, res, now)
