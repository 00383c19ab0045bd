"""Bulk actions: cancel or replay many runs at once, chosen by run id or by the filters
`Engine.list_runs` takes (Trigger.dev's `runs.bulk.*`).

Where things live. An action's record is a row on run-index shard 0 (`index_bulk.py`):
kind, selection, status, counts, cursor, timestamps, and the lease of whoever processes
it. The runs an action marks (the runs it canceled or tried to, the runs its replays
created) are rows beside those runs on their own shards, which is how `list_runs` filters
by `bulk_action` and how a chunk applied twice reports the same outcomes.

How it is processed. In chunks (never one transaction for all; each chunk is a few object
calls), by whoever holds the action's lease: `process` takes the lease, works for a time
budget, and gives it back; the HTTP API processes within the create request and continues
on every poll, `resume` picks up any open action nobody holds (housekeeping, the CLI).

What a crash does. Before a chunk is applied its run ids are written into the record; after,
its counts are added and the cursor moves past it, in one write that names the lease. A
holder that dies in between leaves the chunk written down: the next holder (its lease ran
out) applies that chunk again, which is idempotent (a canceled run keeps its first
outcome; a replay carries the idempotency key `<action id>:<run id>`, so it is found, not
made twice), then goes on. A lease that runs out counts as an interruption; after
`MAX_INTERRUPTIONS` the action ends ABORTED with the reason in `error`, never silently.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

from .errors import PayloadTooLargeError, PayloadValidationError, TriggerDoError, UnknownTaskError
from .ports import Platform
from .producer.producer import Producer, TriggerRequest
from .runs.client import RunIndex
from .runs.index import RunIndexObject
from .runs.index_filters import RUN_FILTERS
from .shared.ids import new_id
from .shared.serialization import dumps
from .shared.states import RunState
from .waits.service import Waits

log = logging.getLogger("trigger_do.bulk")

KINDS = ("cancel", "replay")
CHUNK = {"cancel": 500, "replay": 50}  # runs per chunk (a replay reads whole rows)
LEASE_SECONDS = 30.0  # a processor renews it at every chunk
MAX_INTERRUPTIONS = 3  # holders that died or failed before the action is aborted
MAX_RUN_IDS = 20_000  # an id selection is stored in its record (a filter has no limit)
MAX_NAME = 255
_TEXT_FILTERS = ("tasks", "tags")
_ID_FILTERS = ("batch_id", "bulk_action", "idempotency_key")
_TIME_FILTERS = ("created_from", "created_to")


class BulkActionError(PayloadValidationError):
    """A bulk action that cannot be made as asked: names the offending field."""


class BulkActionNotFoundError(TriggerDoError, LookupError):
    def __init__(self, bulk_id: str) -> None:
        self.bulk_id = bulk_id
        super().__init__(f"no bulk action with id {bulk_id!r}")


# --- the selection, checked before anything is written ------------------------------------------


def check_selection(
    kind: str, run_ids: Sequence[str] | None, filters: dict[str, Any] | None, now: float
) -> tuple[list[str] | None, dict[str, Any] | None]:
    """The action's selection, normalized: unique run ids in order, or filters with their
    window closed at `now` when no `created_to` is given (runs created later, such as the
    action's own replays, are never selected). Raises `BulkActionError`."""
    if kind not in KINDS:
        raise _bad("kind", f"unknown bulk action {kind!r}: it is one of {', '.join(KINDS)}")
    if (run_ids is None) == (filters is None):
        raise _bad("selection", "select runs by run ids or by a filter: exactly one of them")
    if run_ids is not None:
        if isinstance(run_ids, str) or not all(isinstance(r, str) and r for r in run_ids):
            raise _bad("run_ids", "run ids are a list of non-empty strings")
        unique = list(dict.fromkeys(run_ids))
        if not unique:
            raise _bad("run_ids", "no run ids: select at least one run")
        if len(unique) > MAX_RUN_IDS:
            raise _bad("run_ids", f"{len(unique)} run ids, over {MAX_RUN_IDS}: select by a filter")
        return unique, None
    return None, check_filters(filters or {}, now)


def check_filters(filters: dict[str, Any], now: float) -> dict[str, Any]:
    if not isinstance(filters, dict):
        raise _bad("filters", "a filter is an object of run-index filters")
    unknown = sorted(set(filters) - set(RUN_FILTERS))
    if unknown:
        raise _bad(
            f"filters.{unknown[0]}",
            f"unknown filter {', '.join(map(repr, unknown))}: filters are "
            + ", ".join(RUN_FILTERS),
        )
    out: dict[str, Any] = {}
    for name, value in filters.items():
        if value is None:
            continue
        if name in _TEXT_FILTERS or name == "states":
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list | tuple) or not all(
                isinstance(v, str) and v for v in values
            ):
                raise _bad(f"filters.{name}", f"{name} is a list of non-empty strings")
            if not values:
                raise _bad(f"filters.{name}", f"{name} is empty: it would match no run")
            if name == "states":
                known = {str(s) for s in RunState}
                bad = [v for v in values if str(v) not in known]
                if bad:
                    raise _bad(
                        "filters.states",
                        f"unknown run state {bad[0]!r}: states are {', '.join(sorted(known))}",
                    )
            out[name] = [str(v) for v in dict.fromkeys(values)]
        elif name in _ID_FILTERS:
            if not isinstance(value, str) or not value:
                raise _bad(f"filters.{name}", f"{name} is a non-empty string")
            out[name] = value
        elif name in _TIME_FILTERS:  # epoch seconds
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _bad(f"filters.{name}", f"{name} is a time in epoch seconds")
            if not math.isfinite(value):
                raise _bad(f"filters.{name}", f"{name} is not a finite number")
            out[name] = float(value)
        else:  # a list filter this module does not know yet: refused, never dropped
            raise _bad(f"filters.{name}", f"filter {name!r} is not supported by bulk actions")
    if not out:
        raise _bad("filters", "the filter is empty: name at least one of " + ", ".join(RUN_FILTERS))
    start, end = out.get("created_from"), out.setdefault("created_to", now)
    if start is not None and start > end:
        raise _bad("filters.created_from", "created_from is after created_to: no run matches")
    return out


def _bad(loc: str, msg: str) -> BulkActionError:
    return BulkActionError(msg, errors=[{"loc": loc, "msg": msg}])


def replay_request(row: dict[str, Any], bulk_id: str) -> TriggerRequest:
    """The replay of a run (a decoded row), as `Engine.replay` makes it, keyed so that
    replaying it again for the same action finds this replay instead of making another."""
    return TriggerRequest(
        row["task"],
        None,
        {
            "tags": row["tags"],
            "metadata": row["metadata"] or None,
            "idempotency_key": f"{bulk_id}:{row['id']}",
        },
        payload_text=dumps(row["payload"]),
        replay_of=row["id"],
    )


# --- the run index, as bulk actions call it ------------------------------------------------------


class BulkIndex:
    """The run-index objects' bulk-action methods, routed: the record on shard 0, runs on
    their own shards, selections gathered from every shard and merged."""

    def __init__(self, platform: Platform) -> None:
        self.index = RunIndex(platform)
        self.home = self.index.shard(0)

    # the record
    async def create(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        return await self.home(RunIndexObject.bulk_create, action, now)

    async def get(self, bulk_id: str) -> dict[str, Any] | None:
        return await self.home(RunIndexObject.bulk_get, bulk_id)

    async def list_actions(
        self, limit: int, after: str | None, before: str | None
    ) -> list[dict[str, Any]]:
        return await self.home(RunIndexObject.bulk_list, limit, after, before)

    async def open(self) -> list[str]:
        return await self.home(RunIndexObject.bulk_open)

    async def run_ids(self, bulk_id: str, start: int, count: int) -> list[str]:
        return await self.home(RunIndexObject.bulk_run_ids, bulk_id, start, count)

    async def claim(self, bulk_id: str, token: str, now: float) -> dict[str, Any]:
        return await self.home(
            RunIndexObject.bulk_claim, bulk_id, token, now, LEASE_SECONDS, MAX_INTERRUPTIONS
        )

    async def begin_chunk(
        self, bulk_id: str, token: str, run_ids: list[str], cursor: Any, now: float
    ) -> str | None:
        return await self.home(
            RunIndexObject.bulk_begin_chunk, bulk_id, token, run_ids, cursor, now, LEASE_SECONDS
        )

    async def advance(
        self,
        bulk_id: str,
        token: str,
        cursor: Any,
        counts: tuple[int, int],
        done: bool,
        now: float,
    ) -> str | None:
        return await self.home(
            RunIndexObject.bulk_advance,
            bulk_id, token, cursor, counts[0], counts[1], done, now, LEASE_SECONDS,
        )  # fmt: skip

    async def release(
        self, bulk_id: str, token: str, now: float, error: str | None = None
    ) -> str | None:
        return await self.home(RunIndexObject.bulk_release, bulk_id, token, now, error)

    async def abort(self, bulk_id: str, now: float) -> dict[str, Any] | None:
        return await self.home(RunIndexObject.bulk_abort, bulk_id, now)

    async def purge(self, before_id: str) -> int:
        counts = await self.index.each(lambda s: s(RunIndexObject.bulk_purge, before_id))
        return sum(int(n) for n in counts)

    # the runs
    async def count(self, filters: dict[str, Any]) -> int:
        counts = await self.index.each(lambda s: s(RunIndexObject.bulk_count, filters))
        return sum(int(n) for n in counts)

    async def select(
        self, bulk_id: str, filters: dict[str, Any], after: list[Any] | None, limit: int
    ) -> list[list[Any]]:
        """The next `limit` `[created_at, id]` across every shard, newest first."""
        pages = await self.index.each(
            lambda s: s(RunIndexObject.bulk_select, bulk_id, filters, after, limit)
        )
        merged = heapq.merge(*pages, key=lambda r: (r[0], r[1]), reverse=True)
        return [list(r) for r in itertools.islice(merged, limit)]

    async def cancel(self, bulk_id: str, run_ids: list[str], now: float) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        by_shard = self.index.by_shard(run_ids)
        for found in await asyncio.gather(
            *(
                self.index.shard(s)(RunIndexObject.bulk_cancel, bulk_id, ids, now)
                for s, ids in by_shard.items()
            )
        ):
            outcomes.update(found)
        return outcomes

    async def mark(self, bulk_id: str, outcomes: dict[str, str]) -> None:
        by_shard = self.index.by_shard(list(outcomes))
        await asyncio.gather(
            *(
                self.index.shard(s)(
                    RunIndexObject.bulk_mark, bulk_id, {r: outcomes[r] for r in ids}
                )
                for s, ids in by_shard.items()
            )
        )


# --- processing ---------------------------------------------------------------------------------


class Runs(Protocol):
    """What bulk actions need of the engine (`Engine` is one)."""

    platform: Platform
    producer: Producer

    def now(self) -> float: ...

    async def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]: ...


class BulkActions:
    def __init__(self, engine: Runs) -> None:
        self.engine = engine
        self.index = BulkIndex(engine.platform)

    async def create(
        self,
        kind: str,
        *,
        run_ids: Sequence[str] | None = None,
        filters: dict[str, Any] | None = None,
        name: str | None = None,
        request_key: str | None = None,
    ) -> dict[str, Any]:
        """Record a new action (PENDING); nothing is processed yet. With a `request_key`
        already used, the action that request made (`cached`)."""
        now = self.engine.now()
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise _bad("name", f"a name is a string of at most {MAX_NAME} characters")
        ids, checked = check_selection(kind, run_ids, filters, now)
        total = len(ids) if ids is not None else await self.index.count(checked or {})
        action = {
            "id": new_id("bulk"),
            "kind": kind,
            "name": name,
            "run_ids": ids,
            "filters": checked,
            "total": total,
            "request_key": request_key,
        }
        return await self.index.create(action, now)

    async def get(self, bulk_id: str) -> dict[str, Any]:
        found = await self.index.get(bulk_id)
        if found is None:
            raise BulkActionNotFoundError(bulk_id)
        return found

    async def list_actions(
        self, limit: int = 25, after: str | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        return await self.index.list_actions(limit, after, before)

    async def abort(self, bulk_id: str) -> dict[str, Any]:
        """Stop an open action: no chunk starts after this (the one in flight still counts).
        Returns `{aborted, action}`; `aborted` is false if it had already ended."""
        found = await self.index.abort(bulk_id, self.engine.now())
        if found is None:
            raise BulkActionNotFoundError(bulk_id)
        return found

    async def process(
        self, bulk_id: str, budget: float | None = None, max_chunks: int | None = None
    ) -> dict[str, Any]:
        """Work on the action for up to `budget` seconds (None: until it ends) or
        `max_chunks` chunks, if nobody else holds it; return its record. A failure is
        recorded on the action (`error`, an interruption) and logged, not raised: the next
        `process` goes on from the last recorded chunk."""
        token = new_id("lease")
        claim = await self.index.claim(bulk_id, token, self.engine.now())
        action: dict[str, Any] | None = claim["action"]
        if action is None:
            raise BulkActionNotFoundError(bulk_id)
        if not claim["claimed"]:
            return action
        deadline = None if budget is None else self.engine.now() + budget
        try:
            status = await self._work(action, token, deadline, max_chunks)
        except Exception as exc:
            log.exception("bulk action %s: a chunk failed; the next call goes on", bulk_id)
            await self.index.release(
                bulk_id, token, self.engine.now(), f"{type(exc).__name__}: {exc}"
            )
        else:
            if status in ("running", "aborted"):  # the lease is still ours: give it back
                await self.index.release(bulk_id, token, self.engine.now())
        return await self.get(bulk_id)

    async def resume(self, budget: float | None = None) -> list[dict[str, Any]]:
        """Process every open action nobody holds (one whose holder died included): for
        housekeeping, or a CLI that wants them done. Returns their records."""
        return [await self.process(bulk_id, budget) for bulk_id in await self.index.open()]

    async def purge(self, retention: float) -> int:
        """Delete ended actions older than `retention` seconds, and their run marks."""
        cutoff = f"bulk_{int(max(0.0, self.engine.now() - retention) * 1000):011x}"
        return await self.index.purge(cutoff)

    async def _work(
        self, action: dict[str, Any], token: str, deadline: float | None, max_chunks: int | None
    ) -> str | None:
        bulk_id = action["id"]
        cursor = action["cursor"]
        pending = action["pending"]
        if pending is not None:  # a holder before us died with this chunk in flight
            cursor = pending["cursor"]
            counts = await self._apply(action, pending["run_ids"])
            status = await self.index.advance(
                bulk_id, token, cursor, counts, False, self.engine.now()
            )
            if status != "running":
                return status
        chunks = 0
        while True:
            if deadline is not None and self.engine.now() >= deadline:
                return "running"
            if max_chunks is not None and chunks >= max_chunks:
                return "running"
            run_ids, after = await self._next(action, cursor)
            now = self.engine.now()
            if not run_ids:
                return await self.index.advance(bulk_id, token, None, (0, 0), True, now)
            status = await self.index.begin_chunk(bulk_id, token, run_ids, after, now)
            if status != "running":
                return status
            counts = await self._apply(action, run_ids)
            status = await self.index.advance(
                bulk_id, token, after, counts, False, self.engine.now()
            )
            if status != "running":
                return status
            cursor = after
            chunks += 1

    async def _next(self, action: dict[str, Any], cursor: Any) -> tuple[list[str], Any]:
        """The next chunk's run ids and the cursor past it."""
        size = CHUNK[action["kind"]]
        if action["filters"] is None:  # by id: the cursor is a position in the list
            start = int(cursor or 0)
            ids = await self.index.run_ids(action["id"], start, size)
            return ids, start + len(ids)
        rows = await self.index.select(action["id"], action["filters"], cursor, size)
        return [r[1] for r in rows], (rows[-1] if rows else cursor)

    async def _apply(self, action: dict[str, Any], run_ids: list[str]) -> tuple[int, int]:
        """Apply one chunk; `(succeeded, failed)`."""
        if action["kind"] == "cancel":
            outcomes = await self.index.cancel(action["id"], run_ids, self.engine.now())
            canceled = [r for r in run_ids if outcomes.get(r) == "canceled"]
            await Waits(self.engine.platform).canceled(canceled)  # their waiting children too
            ok = len(canceled)
            return ok, len(run_ids) - ok
        return await self._replay(action["id"], run_ids)

    async def _replay(self, bulk_id: str, run_ids: list[str]) -> tuple[int, int]:
        rows = await self.engine.get_runs(run_ids)
        requests = [replay_request(rows[r], bulk_id) for r in run_ids if r in rows]
        failed = len(run_ids) - len(requests)
        if not requests:
            return 0, failed
        producer = self.engine.producer
        try:
            made = await producer.trigger_many(requests, batch=False)
        except (PayloadValidationError, UnknownTaskError, PayloadTooLargeError):
            # some runs cannot be replayed (their task is gone, their payload no longer
            # valid): find which, as a batch does, and replay the others
            try:
                await producer.prepare_all(requests, self.engine.now(), batch=True)
                bad: set[int] = set()
            except PayloadValidationError as exc:
                bad = set(exc.bad_indexes)
            good = [r for i, r in enumerate(requests) if i not in bad]
            failed += len(requests) - len(good)
            made = await producer.trigger_many(good, batch=False)
        await self.index.mark(bulk_id, {t.id: "replayed" for t in made.runs})
        return len(made.runs), failed
