"""What a subscription watches: one run, the runs with any of some tags, or a batch's runs;
and how to read them from the run index (rows as stored: payload and output JSON text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..engine import Engine
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

    async def read(self, engine: Engine) -> Snapshot:
        """The feed's rows now (newest first for a set) and their offset."""
        if self.kind == "run":
            row = await engine.index.get(self.key[0])
            return Snapshot.of([row] if row is not None else [])
        filters: dict[str, Any] = (
            {"batch_id": self.key[0]}
            if self.kind == "batch"
            else {"tags": list(self.key) or None, "created_from": self.created_from}
        )
        return Snapshot.of(await engine.index.list_runs(limit=MAX_RUNS, **filters))


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
