"""One change watcher per process (per engine and event loop): held subscriptions cost nothing
while nothing changes.

    watcher = watcher_for(engine)
    snapshot = await watcher.wait(Feed.run(run_id), seen=offset, timeout=20)
    # a Snapshot whose offset differs from `seen`, or None when `timeout` passed first

How it notices: the platform's `Changes` port (`ports.py`; locally SQLite's
`PRAGMA data_version` on a connection of its own, which moves when any process commits) is
read once per tick (every `interval` seconds) while anyone waits, never per request. When it
moved, every watched feed's offset is computed once from its runs' version columns (every
single-run feed in one read per shard, each tag or batch feed once, however many wait on
it; no payload or output is read), and only the feeds whose offset now differs from a
waiter's are read whole, their waiters woken with that snapshot. A new waiter is checked on
the next tick, so a change between its caller's last response and its wait is never missed.
Without a `Changes` port (a platform that has none), feeds are read every `fallback` seconds
instead; with a partial one (a Durable Object's, which hears of some writes only), both."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from dataclasses import dataclass

from ..engine import Engine
from ..ports import Changes
from .feeds import Feed, Snapshot, read_runs, run_versions

log = logging.getLogger(__name__)

INTERVAL = 0.05  # how often the change signal is read while anyone waits
FALLBACK = 1.0  # without a change signal: how often every watched feed is read


@dataclass(eq=False)
class _Waiter:
    seen: str
    future: asyncio.Future[Snapshot]
    fresh: bool = True  # not checked yet: checked on the next tick whatever the signal says


@dataclass
class Stats:
    """What the watcher did (for tests and the load figures)."""

    ticks: int = 0  # signal reads
    reads: int = 0  # evaluations of the watched feeds
    woken: int = 0
    waiting: int = 0


class Watcher:
    """Wakes held subscriptions when their feed changed (see the module's doc)."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = INTERVAL,
        fallback: float = FALLBACK,
        changes: Changes | None = None,
        partial: bool = False,
    ) -> None:
        """`changes`: the signal (default: the platform's). `partial`: the signal sees only
        some writes (a run's Durable Object hears of its logs and its end, not of each
        status write), so feeds are also read every `fallback` seconds."""
        self.engine = engine
        self.changes = changes if changes is not None else engine.platform.changes
        self.partial = partial
        self.interval = interval
        self.fallback = fallback
        self.stats = Stats()
        self._waiters: dict[Feed, list[_Waiter]] = {}
        self._task: asyncio.Task[None] | None = None
        self._version: int | None = None
        self._last_read = 0.0

    async def snapshot(self, feed: Feed) -> Snapshot:
        """The feed now."""
        return await feed.read(self.engine)

    async def wait(self, feed: Feed, seen: str, timeout: float) -> Snapshot | None:
        """Until `feed`'s offset differs from `seen` (its snapshot then), or None once
        `timeout` seconds passed with no change."""
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(seen, future)
        self._waiters.setdefault(feed, []).append(waiter)
        self.stats.waiting += 1
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self.stats.waiting -= 1
            waiters = self._waiters.get(feed)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[feed]

    @property
    def waiting(self) -> int:
        return self.stats.waiting

    def _moved(self) -> tuple[bool, int | None]:
        """Whether anything may have changed since the last full read (and the signal's
        value now, to remember once that read succeeded)."""
        due = time.monotonic() - self._last_read >= self.fallback
        if self.changes is None:
            return due, None
        version = self.changes.version()
        return version != self._version or (self.partial and due), version

    async def _run(self) -> None:
        try:
            while self._waiters:
                await asyncio.sleep(self.interval)
                self.stats.ticks += 1
                try:
                    moved, version = self._moved()
                    due = [
                        f for f, ws in self._waiters.items() if moved or any(w.fresh for w in ws)
                    ]
                    if due:
                        await self._evaluate(due)
                    if moved:
                        self._version = version
                        self._last_read = time.monotonic()
                except Exception:  # the next tick tries again; a held request times out
                    log.exception("the realtime watcher could not read its feeds")
        finally:
            self._task = None

    async def _evaluate(self, feeds: list[Feed]) -> None:
        """Compare each feed's offset, from its runs' version columns only, with what its
        waiters saw; read the whole rows of the feeds that changed, and wake their waiters."""
        checking = {f: list(self._waiters.get(f, ())) for f in feeds}
        self.stats.reads += 1
        light = await run_versions(self.engine, [f.key[0] for f in feeds if f.kind == "run"])
        changed: list[Feed] = []
        for feed, waiters in checking.items():
            snap = light[feed.key[0]] if feed.kind == "run" else await feed.versions(self.engine)
            for waiter in waiters:
                waiter.fresh = False
            if any(snap.offset != w.seen and not w.future.done() for w in waiters):
                changed.append(feed)
        if not changed:
            return
        runs = await read_runs(self.engine, [f.key[0] for f in changed if f.kind == "run"])
        for feed in changed:
            snap = runs[feed.key[0]] if feed.kind == "run" else await feed.read(self.engine)
            for waiter in checking[feed]:
                if snap.offset != waiter.seen and not waiter.future.done():
                    waiter.future.set_result(snap)
                    self.stats.woken += 1


_WATCHERS: weakref.WeakKeyDictionary[Engine, weakref.WeakKeyDictionary[object, Watcher]] = (
    weakref.WeakKeyDictionary()
)


def watcher_for(engine: Engine) -> Watcher:
    """This process's watcher for `engine` on the running event loop (made when first asked)."""
    loop = asyncio.get_running_loop()
    per_loop = _WATCHERS.setdefault(engine, weakref.WeakKeyDictionary())
    found = per_loop.get(loop)
    if found is None:
        found = per_loop[loop] = Watcher(engine)
    return found


def install_watcher(watcher: Watcher) -> None:
    """Make `watcher` the one `watcher_for(watcher.engine)` returns on the running loop (a
    platform whose change signal is its own: a run's Durable Object)."""
    loop = asyncio.get_running_loop()
    _WATCHERS.setdefault(watcher.engine, weakref.WeakKeyDictionary())[loop] = watcher
