"""Runs watched live from Python: `trigger_do.runs.subscribe(run_id)` (also
`subscribe_to_tag`, `subscribe_to_batch`) yields a `RunStatus` whenever a run changes.

Embedded, the iterator waits on the process's Realtime watcher (`realtime/watcher.py`: one
reader of the database's change signal, however many iterators wait); remote, it long-polls
the server's shape routes (`/realtime/v1/...`, as the official client does). Either way a
change names the runs that changed, and their statuses are then read whole (output,
checkpoints and all) with the client's ordinary reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from ..errors import RunNotFoundError, TriggerDoError
from ..realtime.feeds import Feed
from ..realtime.rows import INITIAL_OFFSET
from ..realtime.watcher import watcher_for
from .client import EmbeddedClient, current_client
from .handles import Client, RunStatus
from .remote import RemoteClient, _pool, error_from

HOLD = 20.0  # seconds one wait (embedded) or one long poll (remote) lasts before the next
RETRY_FOR = 30.0  # remote: how long an unreachable or failing (5xx) server is retried


class _Changes:
    """Which runs of a feed changed, each call the next batch of them (the first call: every
    run the feed has)."""

    async def next(self) -> list[str]:
        raise NotImplementedError


class _EmbeddedChanges(_Changes):
    def __init__(self, client: EmbeddedClient, feed: Feed) -> None:
        self.client, self.feed = client, feed
        self.offset: str | None = None
        self.seen: dict[str, int] = {}

    async def next(self) -> list[str]:
        watcher = watcher_for(self.client.engine)
        if self.offset is None:
            snap = await watcher.snapshot(self.feed)
            if self.feed.kind == "run" and not snap.rows:
                raise RunNotFoundError(self.feed.key[0])
        else:
            found = await watcher.wait(self.feed, self.offset, HOLD)
            if found is None:
                return []
            snap = found
        versions = snap.versions()
        changed = [rid for rid, v in versions.items() if self.seen.get(rid) != v]
        self.offset, self.seen = snap.offset, versions
        return changed


class _RemoteChanges(_Changes):
    def __init__(self, client: RemoteClient, path: str, params: dict[str, str]) -> None:
        self.client, self.path, self.params = client, path, params
        self.offset, self.handle = INITIAL_OFFSET, ""

    async def next(self) -> list[str]:
        import httpx

        http = _pool(self.client.api_url, self.client.secret_key, HOLD * 2)
        params = {**self.params, "offset": self.offset}
        if self.handle:
            params.update(handle=self.handle, live="true")
        failing_since: float | None = None
        pause = 0.2
        while True:  # a server restarting or busy (5xx) is waited for, up to `RETRY_FOR`
            try:
                resp = await http.get(self.path, params=params, timeout=HOLD * 2)
            except httpx.TimeoutException:  # held longer than we wait: ask again
                return []
            except httpx.HTTPError as exc:
                failure = f"subscription to {self.client.api_url} failed: {exc!r}"
            else:
                if resp.status_code < 500:
                    break
                failure = f"subscription to {self.client.api_url}: HTTP {resp.status_code}"
            now = time.monotonic()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since > RETRY_FOR:
                raise TriggerDoError(failure)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
        try:
            body: Any = resp.json()
        except ValueError:
            body = {"error": resp.text[:500]}
        if resp.status_code >= 400:
            raise error_from(resp.status_code, body)
        self.offset = resp.headers["electric-offset"]
        self.handle = resp.headers["electric-handle"]
        return [m["value"]["id"] for m in body if isinstance(m, dict) and "value" in m]


def _changes(feed: Feed, path: str, params: dict[str, str]) -> tuple[Client, _Changes]:
    client = current_client()
    if isinstance(client, EmbeddedClient):
        return client, _EmbeddedChanges(client, feed)
    if isinstance(client, RemoteClient):
        return client, _RemoteChanges(client, path, params)
    raise TriggerDoError(
        f"Realtime subscriptions need an embedded or remote client, not {client!r}"
    )


async def _follow(
    client: Client, changes: _Changes, *, details: bool, done: Callable[[dict[str, bool]], bool]
) -> AsyncIterator[RunStatus]:
    final: dict[str, bool] = {}
    last: dict[str, RunStatus] = {}
    while True:
        ids = await changes.next()
        if not ids:
            continue
        if details:  # one run: its checkpoints too
            rows = {rid: await client.get_run(rid) for rid in ids}
        else:
            rows = await client.get_runs(ids)
        for rid in ids:
            if rid in rows:
                status = RunStatus.from_row(rows[rid])
                if last.get(rid) == status:  # read after a later change, already yielded
                    continue
                last[rid] = status
                final[rid] = status.is_final
                yield status
        if done(final):
            return


async def subscribe(run_id: str) -> AsyncIterator[RunStatus]:
    """The run's status now, then again whenever it changes (state, attempt, progress,
    metadata, tags...), ending after the status in which it is final. Raises
    `RunNotFoundError` for a run that does not exist."""
    path = f"/realtime/v1/runs/{quote(run_id, safe='')}"
    client, changes = _changes(Feed.run(run_id), path, {})
    async for status in _follow(client, changes, details=True, done=lambda f: all(f.values())):
        yield status


async def subscribe_to_tag(tag: str, *, created_within: str = "24h") -> AsyncIterator[RunStatus]:
    """The status of every run tagged `tag` created within `created_within` (at most a day
    back), then of each one that changes or newly has the tag. Never ends by itself: break
    out of the loop to stop."""
    changes: _Changes
    client = current_client()
    if isinstance(client, EmbeddedClient):
        engine = client.engine
        from ..shared.durations import parse_duration

        since = engine.now() - min(parse_duration(created_within), 86400.0)
        changes = _EmbeddedChanges(client, Feed.tags([tag], since))
    else:
        client, changes = _changes(
            Feed.tags([tag]), "/realtime/v1/runs", {"tags": tag, "createdAt": created_within}
        )
    async for status in _follow(client, changes, details=False, done=lambda f: False):
        yield status


async def subscribe_to_batch(batch_id: str) -> AsyncIterator[RunStatus]:
    """The status of each run of the batch, then of each one that changes, ending once every
    run of the batch is final."""
    path = f"/realtime/v1/batches/{quote(batch_id, safe='')}"
    client, changes = _changes(Feed.batch(batch_id), path, {})
    if isinstance(changes, _EmbeddedChanges):  # as the route: 404 for no such batch
        engine = changes.client.engine
        if await engine.get_batch(batch_id) is None:
            raise TriggerDoError(f"no batch {batch_id!r}")
    done = lambda f: bool(f) and all(f.values())  # noqa: E731
    async for status in _follow(client, changes, details=False, done=done):
        yield status
