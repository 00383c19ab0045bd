"""Electric's shape long-polling, HTTP-agnostic: a request (`offset`, `handle`, `live`,
`skipColumns`) on a feed gives a response (the messages and the `electric-*` headers).

- `offset=-1` (or no handle): a snapshot, every row an `insert`, with `electric-schema`.
- a handle, not live: the current rows again (catching up; re-sending a row is idempotent).
- live: held until the feed's offset differs from the client's (`Watcher.wait`), then the
  rows that changed (`update`; in a set, `insert` for a run new to it), else, after `hold`
  seconds, a bare `up-to-date`. Both carry `electric-cursor`.

A tag or batch feed remembers the versions a subscriber holds at each offset it was given (in
this process, the newest `MAX_HANDLES`), so a live answer holds only the runs that changed;
an offset it does not know (another process, a restart) gets the runs updated since the
offset's time (all of them if that picks none). A single-run feed needs no memory: its offset is the
run's version."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from . import rows as wire
from .feeds import Feed, Snapshot
from .watcher import Watcher

HOLD = 20.0  # seconds a live request is held (Electric's), jittered by +-15%
JITTER = 0.15
MAX_HANDLES = 10_000
_cursor = itertools.count(1)


@dataclass(frozen=True)
class ShapeRequest:
    offset: str = wire.INITIAL_OFFSET
    handle: str | None = None
    live: bool = False
    skip: frozenset[str] = frozenset()

    @property
    def initial(self) -> bool:
        return self.offset == wire.INITIAL_OFFSET or not self.handle


@dataclass
class ShapeResponse:
    messages: list[Any]
    offset: str
    handle: str
    schema: str | None = None  # on snapshots and catch-ups (not live)
    cursor: str | None = None  # on live answers
    changed: list[str] = field(default_factory=list)  # the run ids it carries

    def headers(self) -> dict[str, str]:
        out = {
            "electric-offset": self.offset,
            "electric-handle": self.handle,
            # what clients that do not send `x-trigger-electric-version` read
            "electric-chunk-last-offset": self.offset,
            "electric-shape-id": self.handle,
            "cache-control": "no-store",
            "access-control-allow-origin": "*",
            "access-control-expose-headers": "*",
        }
        if self.schema is not None:
            out["electric-schema"] = self.schema
        if self.cursor is not None:
            out["electric-cursor"] = self.cursor
        return out


class WorkingSets:
    """What a subscriber of a tag or batch feed holds once it has a response: `{run id:
    version}` by `(handle, offset)` of that response (the newest `limit` of this process).
    Keyed by the offset too, not the handle alone: a client may drop a response (Electric's
    client aborts a catch-up request now and then) and ask again from its older offset."""

    def __init__(self, limit: int = MAX_HANDLES) -> None:
        self.limit = limit
        self._sets: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()

    def get(self, handle: str, offset: str) -> dict[str, int] | None:
        found = self._sets.get((handle, offset))
        if found is not None:
            self._sets.move_to_end((handle, offset))
        return found

    def put(self, handle: str, offset: str, seen: dict[str, int]) -> None:
        self._sets[(handle, offset)] = seen
        self._sets.move_to_end((handle, offset))
        while len(self._sets) > self.limit:
            self._sets.popitem(last=False)


class ShapeServer:
    """Answers shape requests on feeds, through one `Watcher`."""

    def __init__(self, watcher: Watcher, *, hold: float = HOLD) -> None:
        self.watcher = watcher
        self.hold = hold
        self.sets = WorkingSets()

    def mint_handle(self, feed: Feed) -> str:
        """A run's shape never changes columns: a stable handle. A set's is per subscriber
        (its working set); a tag feed's pins its `createdAt` bound (ms) so that it never
        drifts between polls: `tags-<ms>-<random>`."""
        if feed.kind == "run":
            return f"run-{feed.key[0]}"
        if feed.kind == "tags":
            return f"tags-{int((feed.created_from or 0) * 1000)}-{uuid.uuid4().hex[:16]}"
        return f"{feed.kind}-{uuid.uuid4().hex[:16]}"

    async def serve(self, feed: Feed, req: ShapeRequest) -> ShapeResponse:
        if req.initial or not req.live:
            snap = await self.watcher.snapshot(feed)
            handle = req.handle if req.handle and not req.initial else self.mint_handle(feed)
            if feed.kind != "run":
                self.sets.put(handle, snap.offset, snap.versions())
            return ShapeResponse(
                wire.body([(r, "insert") for r in snap.rows], req.skip),
                snap.offset,
                handle,
                schema=wire.schema_header(req.skip),
                changed=[r["id"] for r in snap.rows],
            )
        assert req.handle is not None
        timeout = self.hold * (1 - JITTER + 2 * JITTER * random.random())
        found = await self.watcher.wait(feed, req.offset, timeout)
        cursor = str(next(_cursor))
        if found is None:
            return ShapeResponse([wire.UP_TO_DATE], req.offset, req.handle, cursor=cursor)
        changes = self._changes(feed, req, found)
        return ShapeResponse(
            wire.body(changes, req.skip),
            found.offset,
            req.handle,
            cursor=cursor,
            changed=[r["id"] for r, _ in changes],
        )

    def _changes(
        self, feed: Feed, req: ShapeRequest, snap: Snapshot
    ) -> list[tuple[dict[str, Any], str]]:
        if feed.kind == "run":
            return [(r, "update") for r in snap.rows]
        assert req.handle is not None
        seen = self.sets.get(req.handle, req.offset)
        self.sets.put(req.handle, snap.offset, snap.versions())
        if seen is None:  # not this process's handle: what changed since the offset's time
            floor = wire.offset_floor(req.offset)
            picked = [(r, "update") for r in snap.rows if r["updated_at"] >= floor]
            return picked or [(r, "update") for r in snap.rows]
        out: list[tuple[dict[str, Any], str]] = []
        for row in snap.rows:
            before = seen.get(row["id"])
            if before is None:
                out.append((row, "insert"))
            elif before != wire.version(row):
                out.append((row, "update"))
        return out
