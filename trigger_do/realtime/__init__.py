"""Realtime: runs watched live.

- `rows`: a run as Electric's wire shape (the columns, statuses and offsets the official
  client's `SubscribeRunRawShape` reads); pure.
- `feeds`: what is watched, `Feed.run(id)`, `Feed.tags([...], created_from)`,
  `Feed.batch(id)`, and its `Snapshot` (rows and offset).
- `watcher`: one per process and engine; the reusable wait:

      from trigger_do.realtime import Feed, watcher_for

      watcher = watcher_for(engine)
      snap = await watcher.snapshot(Feed.run(run_id))          # rows now, and an offset
      changed = await watcher.wait(Feed.run(run_id), snap.offset, timeout=20)
      # a Snapshot whose offset differs (something in the feed changed), or None

- `protocol`: Electric's shape long-polling on feeds, HTTP-agnostic (`ShapeServer`).

The HTTP routes are `api/realtime.py`; the Python iterator is `sdk/realtime.py`
(`trigger_do.runs.subscribe`); on Cloudflare `platform/cloudflare/realtime.py`."""

from .feeds import Feed, Snapshot
from .protocol import ShapeRequest, ShapeResponse, ShapeServer
from .watcher import Watcher, watcher_for

__all__ = [
    "Feed",
    "ShapeRequest",
    "ShapeResponse",
    "ShapeServer",
    "Snapshot",
    "Watcher",
    "watcher_for",
]
