"""What a subscription watches: one run, the runs with any of some tags, or a batch's runs;
and how to read them from the run index (rows as stored: payload and output JSON text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..engine import Engine
from ..runs.index import RunIndexObject
from . import rows as wire

MAX_RUNS = 1_000  # a tag or batch feed shows its newest 1,000 runs (Trigger.dev's cap)


@dataclass(frozen=True)
class Feed:
    """A shape: `Feed.run(id)`, `Feed.tags([...], created_from)` or `Feed.batch(id)`."""

    kind: Literal["run", "tags", "batch"]
    key: tuple[str, ...]
    created_from: float | None = None

    @classmethod
    def run(cls, run_id: str) -> Feed:
        return cls("run", (run_id,))

    @classmethod
    def tags(cls, tags: Sequence[str], created_from: float | None = None) -> Feed:
        return cls("tags", tuple(sorted(set(tags))), created_from)

    @classmethod
    def batch(cls, batch_id: str) -> Feed:
        return cls("batch", (batch_id,))

    def _filters(self) -> dict[str, Any]:
        if self.kind == "batch":
            return {"batch_id": self.key[0]}
        return {"tags": list(self.key) or None, "created_from": self.created_from}

    async def versions(self, engine: Engine) -> Snapshot:
        """The feed's offset now, from its runs' version columns only (`light_row`s: no
        payload or output), newest first: what a watcher compares."""
        if self.kind == "run":
            return (await run_versions(engine, [self.key[0]]))[self.key[0]]
        pages = await engine.index.each(
            lambda s: s(RunIndexObject.feed_versions, limit=MAX_RUNS, **self._filters())
        )
        rows = [wire.light_row(r) for page in pages for r in page]
        rows.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)  # as `list_runs`
        return Snapshot.of(rows[:MAX_RUNS])

    async def read(self, engine: Engine) -> Snapshot:
        """The feed's rows now (newest first for a set) and their offset."""
        if self.kind == "run":
            row = await engine.index.get(self.key[0])
            return Snapshot.of([row] if row is not None else [])
        return Snapshot.of(await engine.index.list_runs(limit=MAX_RUNS, **self._filters()))


@dataclass(frozen=True)
class Snapshot:
    """A feed's rows at one moment, and the offset they make (`rows.offset`)."""

    rows: list[dict[str, Any]]
    offset: str

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> Snapshot:
        return cls(rows, wire.offset(rows))

    def versions(self) -> dict[str, int]:
        """`{run id: version}`: what a subscriber has seen, to diff the next snapshot with."""
        return {r["id"]: wire.version(r) for r in self.rows}


async def read_runs(engine: Engine, run_ids: list[str]) -> dict[str, Snapshot]:
    """Many single-run feeds in one read per shard: `{run id: snapshot}`."""
    found = {r["id"]: r for r in await engine.index.get_many(run_ids)} if run_ids else {}
    return {rid: Snapshot.of([found[rid]] if rid in found else []) for rid in run_ids}


async def run_versions(engine: Engine, run_ids: list[str]) -> dict[str, Snapshot]:
    """Many single-run feeds' offsets, from version columns only, one read per shard."""
    found: dict[str, dict[str, Any]] = {}
    for shard, ids in engine.index.by_shard(run_ids).items():
        for columns in await engine.index.shard(shard)(RunIndexObject.run_versions, ids):
            row = wire.light_row(columns)
            found[row["id"]] = row
    return {rid: Snapshot.of([found[rid]] if rid in found else []) for rid in run_ids}
