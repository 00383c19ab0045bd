"""The run index as the engine calls it, across the object boundary: one typed client that
owns shard routing (which shard holds a run, a batch, an idempotency key), groups ids by
shard, fans out to every shard concurrently and merges what they answer. Every call into a
run-index shard, a run object or the task registry goes through here (`Remote`, ports.py:
each is checked by mypy against the object's own method).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

from ..ports import Platform, Remote
from ..shared.ids import shard_of
from .index import RunIndexObject
from .registry import RegistryObject
from .run_object import RunObject

T = TypeVar("T")

StartKind = Literal["start", "skip", "early", "busy", "expired", "missing"]


class RunStart(NamedTuple):
    """What a consumer needs to run an attempt that `start_many` started. (Records made
    per run are named tuples: immutable, and built in a quarter of a frozen dataclass's
    time.)"""

    task: str
    attempt: int
    resumed: bool  # an attempt after another, or a continuation: its run object holds state
    payload: str | None
    payload_packet: str | None
    options: dict[str, Any]
    metadata: dict[str, Any]
    tags: list[str]
    created_at: float
    started_at: float


class StartDecision(NamedTuple):
    """What `start_many` decided for one delivered run (`RunIndexObject.start_many`)."""

    id: str
    kind: StartKind
    state: str | None = None  # skip: the state it is in
    delay: float = 0.0  # early, busy: when to look again
    start: RunStart | None = None  # start: the attempt

    @classmethod
    def of(cls, d: dict[str, Any]) -> StartDecision:
        if d["decision"] != "start":
            return cls(d["id"], d["decision"], d.get("state"), float(d.get("delay", 0.0)))
        start = RunStart(
            d["task"], d["attempt"], d["resumed"], d["payload"], d["payload_packet"],
            d["options"], d["metadata"], d["tags"], d["created_at"], d["started_at"],
        )  # fmt: skip
        return cls(d["id"], "start", start=start)


@dataclass
class Finished:
    """What `finish_many` applied: the new dispatch number of each run that applied (its
    next message carries it), and the runs that ended while live-log subscribers watch."""

    applied: dict[str, int] = field(default_factory=dict)
    watched: dict[str, str] = field(default_factory=dict)
    resumed: list[dict[str, Any]] = field(default_factory=list)  # runs/index_waits.py
    children: list[dict[str, Any]] = field(default_factory=list)


class RunIndex:
    """The run index's shards (`shard-0` .. `shard-{n-1}`)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.count = platform.index_shards
        ns = platform.objects("run-index")
        self._shards = [Remote[RunIndexObject](ns.get(f"shard-{i}")) for i in range(self.count)]

    # --- routing ---------------------------------------------------------------------------

    def shard_of(self, key: str) -> int:
        """The shard that holds a run, a batch or an idempotency key (their ids name it)."""
        return shard_of(key, self.count)

    def shard(self, n: int) -> Remote[RunIndexObject]:
        return self._shards[n]

    def on(self, key: str) -> Remote[RunIndexObject]:
        """The shard holding `key`'s row (a run id, a batch id, a scoped idempotency key)."""
        return self._shards[self.shard_of(key)]

    def by_shard(self, ids: Iterable[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for i in ids:
            groups.setdefault(self.shard_of(i), []).append(i)
        return groups

    def group(self, rows: Iterable[T], key: Callable[[T], str]) -> dict[int, list[T]]:
        """`rows` grouped by the shard of `key(row)`, each group in input order."""
        groups: dict[int, list[T]] = {}
        for row in rows:
            groups.setdefault(self.shard_of(key(row)), []).append(row)
        return groups

    async def each(
        self, call: Callable[[Remote[RunIndexObject]], Awaitable[T]]
    ) -> list[T]:
        """`call` on every shard, concurrently, in shard order."""
        return list(await asyncio.gather(*(call(s) for s in self._shards)))

    # --- producer ----------------------------------------------------------------------------

    async def insert_runs(self, rows: list[dict[str, Any]], now: float) -> dict[str, str]:
        """Insert runs, shard by shard. Returns the rows whose idempotency key named a live
        run: `{row id: that run's id}` (they were not inserted)."""
        cached: dict[str, str] = {}
        for shard, group in self.group(rows, lambda r: str(r["id"])).items():
            results = await self._shards[shard](RunIndexObject.insert_runs, group, now)
            for row, res in zip(group, results, strict=True):
                if res["cached"]:
                    cached[row["id"]] = res["id"]
        return cached

    async def batch_items(self, batch_id: str) -> list[tuple[int, str]]:
        """`(index, run_id)` of every item of a batch written so far (every shard)."""
        pages = await self.each(lambda s: s(RunIndexObject.batch_runs, batch_id))
        return sorted((int(i), str(rid)) for page in pages for i, rid in page)

    # --- reads -------------------------------------------------------------------------------

    async def get(self, run_id: str) -> dict[str, Any] | None:
        return await self.on(run_id)(RunIndexObject.get, run_id)

    async def get_many(self, run_ids: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for shard, ids in self.by_shard(run_ids).items():
            rows += await self._shards[shard](RunIndexObject.get_many, ids)
        return rows

    async def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]:
        """`{id: [state, attempt]}` of many runs."""
        out: dict[str, list[Any]] = {}
        for shard, ids in self.by_shard(run_ids).items():
            out.update(await self._shards[shard](RunIndexObject.get_states, ids))
        return out

    async def list_runs(self, *, limit: int = 25, **filters: Any) -> list[dict[str, Any]]:
        """Newest first across every shard, merged on (created_at, id)."""
        pages = await self.each(lambda s: s(RunIndexObject.list_runs, limit=limit, **filters))
        merged = list(heapq.merge(*pages, key=lambda r: (r["created_at"], r["id"]), reverse=True))
        return merged[-limit:] if filters.get("before") else merged[:limit]

    async def metric_counts(self) -> list[list[Any]]:
        """Every shard's metric counts (`[name, task, le, value]`, summed by the reader)."""
        pages = await self.each(lambda s: s(RunIndexObject.metric_counts))
        return [row for page in pages for row in page]

    async def oldest_queued(self) -> dict[str, float]:
        """Per queue, when its oldest queued run was created (the earliest over the shards)."""
        out: dict[str, float] = {}
        for page in await self.each(lambda s: s(RunIndexObject.oldest_queued)):
            for queue, at in page.items():
                out[queue] = min(at, out.get(queue, at))
        return out

    async def queue_counts(self) -> dict[str, dict[str, int]]:
        """Unfinished runs per queue and state, summed over the shards."""
        out: dict[str, dict[str, int]] = {}
        for page in await self.each(lambda s: s(RunIndexObject.queue_counts)):
            for queue, states in page.items():
                for state, n in states.items():
                    into = out.setdefault(queue, {})
                    into[state] = into.get(state, 0) + n
        return out

    # --- consumer ----------------------------------------------------------------------------

    async def start_many(
        self, shard: int, claims: list[list[Any]], token: str, now: float, lease: float
    ) -> list[StartDecision]:
        """What to do with each delivered `[run_id, dispatch]` of one shard (and the runs
        that may start, started under `token`'s lease)."""
        found = await self._shards[shard](RunIndexObject.start_many, claims, token, now, lease)
        return [StartDecision.of(d) for d in found]

    async def finish_many(
        self, shard: int, outcomes: list[dict[str, Any]], token: str, now: float
    ) -> Finished:
        res = await self._shards[shard](RunIndexObject.finish_many, outcomes, token, now)
        return Finished(
            dict(res["applied"]),
            dict(res.get("watched") or {}),
            list(res.get("resumed") or []),
            list(res.get("children") or []),
        )

    async def update_progress(
        self, shard: int, updates: list[dict[str, Any]], token: str, now: float
    ) -> None:
        await self._shards[shard](RunIndexObject.update_progress, updates, token, now)

    async def extend_leases(
        self, run_ids: list[str], token: str, now: float, lease: float
    ) -> list[str]:
        """Extend `token`'s leases; the runs it no longer holds (canceled, taken over)."""
        lost: list[str] = []
        for shard, ids in self.by_shard(run_ids).items():
            lost += await self._shards[shard](
                RunIndexObject.extend_leases, ids, token, now, lease
            )
        return lost

    async def lapse_leases(self, token: str, now: float) -> list[str]:
        """End now the leases a consumer that is gone held (every shard)."""
        pages = await self.each(lambda s: s(RunIndexObject.lapse_leases, token, now))
        return [r for page in pages for r in page]

    async def dead_letter(self, letters: list[dict[str, Any]], now: float) -> dict[str, float]:
        """Record dead letters and end their runs CRASHED; returns the runs a live lease
        still holds (`{id: seconds until it lapses}`: look again then)."""
        held: dict[str, float] = {}
        for shard, group in self.group(letters, lambda d: str(d["run_id"])).items():
            res = await self._shards[shard](RunIndexObject.dead_letter, group, now)
            held.update(res["held"])
        return held


class RunObjects:
    """One object per run that needs one (checkpoints, steps, logs), by run id."""

    def __init__(self, platform: Platform) -> None:
        self._ns = platform.objects("run")

    def __call__(self, run_id: str) -> Remote[RunObject]:
        return Remote[RunObject](self._ns.get(run_id))


class Registry:
    """The task registry: one object, `registry`."""

    def __init__(self, platform: Platform) -> None:
        self._registry = Remote[RegistryObject](platform.objects("registry").get("registry"))

    async def tasks(self) -> list[dict[str, Any]]:
        """Every task a worker or a Worker has registered: `{id, module, queue, ...}`."""
        return await self._registry(RegistryObject.list)

    async def subscriptions(self) -> list[dict[str, Any]]:
        """The registered tasks events or webhooks start: `{id, event, source}`."""
        return await self._registry(RegistryObject.subscriptions)

    async def register(self, tasks: list[dict[str, Any]], now: float) -> None:
        await self._registry(RegistryObject.register, tasks, now)
