"""The engine facade shared by the embedded SDK client, the HTTP API and the CLI:
trigger (through the producer), read, list, cancel, reschedule, replay, logs, dead letters."""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .bulk import BulkActions
from .coordinator.controls import QueueControls
from .errors import (
    InvalidArgumentError,
    InvalidDurationError,
    PayloadValidationError,
    RunNotFoundError,
)
from .events.service import EventService
from .ports import OutMessage, Platform
from .producer.producer import BatchTriggered, Producer, Triggered, TriggerRequest
from .runs.client import Registry, RunIndex, RunObjects
from .runs.index import RunIndexObject
from .runs.run_object import RunObject
from .schedules.scheduler import SchedulerObject
from .schedules.service import ScheduleService
from .shared.config import EngineConfig
from .shared.durations import MAX_DURATION_SECONDS
from .shared.messages import RunMessage
from .shared.options import scoped_key
from .shared.serialization import dumps, loads
from .shared.states import FINAL_STATES
from .task import Task, declared_limits, find_task
from .waitpoints.resume import resume_hook
from .waitpoints.service import TokenService
from .waitpoints.store import TokenStoreObject
from .waits.service import Waits

MAX_HOUSEKEEPING_ROUNDS = 20  # per shard and call: at most 10,000 runs purged at once
UNCHANGED: Any = object()  # `replay`'s default: the run's own payload


class Engine:
    def __init__(
        self,
        platform: Platform,
        config: EngineConfig | None = None,
        find: Callable[[str], Task[Any] | None] = find_task,
    ) -> None:
        self.platform = platform
        self.config = config or EngineConfig.from_settings(platform.settings)
        self.index = RunIndex(platform)  # the run index's shards (runs/client.py)
        self.runs = RunObjects(platform)  # one object per run with checkpoints, steps, logs
        self.registry = Registry(platform)
        self.producer = Producer(platform, self.config, find)
        self.queues = QueueControls(platform, self.config, declared_limits)
        self.waits = Waits(platform)  # suspended runs and their children (waits/)

    def now(self) -> float:
        return self.platform.clock.now()

    @functools.cached_property
    def schedules(self) -> ScheduleService:
        """Cron and imperative schedules (schedules/service.py): made when first used, so a
        platform without a scheduler binding serves everything else."""
        return ScheduleService(self.platform, self.producer)

    @functools.cached_property
    def events(self) -> EventService:
        """Events and webhook deliveries, fanned out to their subscribers (events/)."""
        service = EventService(self.platform, self.producer, self.config)
        service.on_sent.append(lambda event: self.tokens.event_sent(event))  # event waits
        return service

    @functools.cached_property
    def tokens(self) -> TokenService:
        """Wait tokens (waitpoints/service.py): Trigger.dev's waitpoint tokens, and tokens
        an event completes (`wait_for_event`, read from the event store)."""
        service = TokenService(self.platform)
        service.lookup_events = lambda name, since: self.events.lookup(name, since)
        service.hooks.append(resume_hook(Waits(self.platform).complete))  # resume waiting runs
        return service

    # --- trigger -------------------------------------------------------------------------

    async def trigger(self, req: TriggerRequest) -> Triggered:
        return await self.producer.trigger(req)

    async def batch_trigger(
        self, requests: Sequence[TriggerRequest], idempotency_key: str | None = None
    ) -> BatchTriggered:
        return await self.producer.trigger_many(requests, idempotency_key=idempotency_key)

    async def create_batch(
        self, run_count: int, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """An empty batch whose runs `add_batch_items` adds later (the HTTP API's two-phase
        batch). With an idempotency key already used: that batch, `cached`."""
        return await self.producer.create_batch(run_count, idempotency_key, self.now())

    async def add_batch_items(
        self, batch_id: str, items: Sequence[tuple[int, TriggerRequest]]
    ) -> dict[str, Any] | None:
        """Add `(index, request)` items to a batch; an index it already has is skipped
        (a resent stream). The items stay invisible until the last one is written, which
        seals the batch and sends its runs. None if there is no such batch. Returns
        `{accepted, deduplicated, present, run_count}` (`present`: distinct indexes now
        written)."""
        return await self.add_batch_stream(batch_id, _once(items))

    async def add_batch_stream(
        self, batch_id: str, chunks: AsyncIterator[Sequence[tuple[int, TriggerRequest]]]
    ) -> dict[str, Any] | None:
        """`add_batch_items` for items that arrive in chunks (a streamed NDJSON body): each
        chunk is written as it comes, invisible until the batch is complete. A chunk that
        raises (a bad item) stops the stream: the chunks before it stay written, and a
        resend skips them. None, before any chunk is read, if there is no such batch."""
        # the batch's own row only (get_batch would also gather its runs' states)
        batch = await self.index.on(batch_id)(RunIndexObject.get_batch, batch_id)
        if batch is None:
            return None
        count = batch["run_count"]
        present = {i for i, _ in await self.index.batch_items(batch_id)}
        accepted = deduplicated = 0
        async for items in chunks:
            bad = [i for i, _ in items if not 0 <= i < count]
            if bad:
                raise PayloadValidationError(
                    f"batch {batch_id} has {count} items: index {bad[0]} is out of range",
                    errors=[{"index": i, "loc": "index", "msg": "out of range"} for i in bad],
                )
            fresh: dict[int, TriggerRequest] = {}
            for index, req in items:
                if index not in present and index not in fresh:
                    fresh[index] = req
            if fresh:
                await self.producer.trigger_into_batch(batch_id, sorted(fresh.items()))
                present.update(fresh)
            accepted += len(fresh)
            deduplicated += len(items) - len(fresh)
        if len(present) == count and not batch["sealed"]:
            # every item is written: seal it, then its runs become visible and are sent
            await self.producer.seal(batch_id, set(range(self.platform.index_shards)))
        return {
            "accepted": accepted,
            "deduplicated": deduplicated,
            "present": len(present),
            "run_count": count,
        }

    # --- reads ---------------------------------------------------------------------------

    async def get_run(self, run_id: str, *, details: bool = True) -> dict[str, Any]:
        """A run's row with decoded payload/output; with `details`, its checkpoints too."""
        row = await self.index.get(run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        await self._decode_row(row)
        row["checkpoints"], row["steps"] = [], {}
        if details and row["has_object"]:
            state = await self.runs(run_id)(RunObject.state)
            row["checkpoints"] = state["checkpoints"]
            row["steps"] = state["steps"]  # name -> its result (JSON text)
        return row

    async def _decode_row(self, row: dict[str, Any]) -> None:
        """The row's payload and output as values (read from their packets if offloaded)."""
        row["payload"] = await self._decode(row["payload"], row["payload_packet"])
        row["output"] = await self._decode(row["output"], row["output_packet"])

    async def _decode(self, text: str | None, packet: str | None) -> Any:
        if packet:
            data = await self.platform.blobs.get(packet)
            return loads(data) if data is not None else None
        return loads(text) if text is not None else None

    async def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Many runs' rows (payload and output decoded), by id; unknown ids are absent."""
        out: dict[str, dict[str, Any]] = {}
        for row in await self.index.get_many(run_ids):
            await self._decode_row(row)
            out[row["id"]] = row
        return out

    async def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]:
        return await self.index.get_states(run_ids)

    async def list_runs(self, *, limit: int = 25, **filters: Any) -> list[dict[str, Any]]:
        """Newest first across every shard, merged on (created_at, id)."""
        return await self.index.list_runs(limit=limit, **filters)

    async def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        found = await self.index.on(batch_id)(RunIndexObject.get_batch, batch_id)
        if found is not None and self.index.count > 1:  # its runs are on every shard
            found["runs"] = [rid for _, rid in await self.index.batch_items(batch_id)]
            states = await self.get_states(found["runs"])
            found["finished"] = sum(1 for s, _ in states.values() if s in FINAL_STATES)
        return found

    async def logs(self, run_id: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        return await self.runs(run_id)(RunObject.logs, after, limit)

    # --- control -------------------------------------------------------------------------

    async def cancel(self, run_id: str) -> dict[str, Any]:
        res = await self.index.on(run_id)(RunIndexObject.cancel, run_id, self.now())
        if not res["found"]:
            raise RunNotFoundError(run_id)
        if res["canceled"]:  # its waiting children end too; a parent waiting on it resumes
            await self.waits.canceled([run_id])
        return dict(res)

    async def reschedule(self, run_id: str, delay_until: float) -> bool:
        """Move a delayed run's start to `delay_until` (epoch seconds, at most 10 years on:
        `InvalidDurationError` past that)."""
        if not math.isfinite(delay_until) or delay_until - self.now() > MAX_DURATION_SECONDS:
            raise InvalidDurationError(delay_until, "more than 10 years ahead")
        moved = await self.index.on(run_id)(
            RunIndexObject.reschedule, run_id, delay_until, self.now()
        )
        if moved is None:
            return False
        await self._dispatch([moved], delay_until)
        return True

    async def replay(self, run_id: str, *, payload: Any = UNCHANGED) -> Triggered:
        """A new run of the run's task with its payload, tags and metadata; with `payload`,
        that payload instead (validated against the task, as a trigger's is)."""
        row = await self.get_run(run_id, details=False)
        same = payload is UNCHANGED
        return await self.producer.trigger(
            TriggerRequest(
                row["task"],
                None if same else payload,
                {"tags": row["tags"], "metadata": row["metadata"] or None},
                payload_text=dumps(row["payload"]) if same else None,
                replay_of=run_id,
            )
        )

    async def update_run(
        self,
        run_id: str,
        *,
        add_tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        ok = await self.index.on(run_id)(
            RunIndexObject.update_tags_metadata, run_id, add_tags, metadata, self.now()
        )
        if not ok:
            raise RunNotFoundError(run_id)

    async def reset_idempotency_key(self, task_id: str, key: str) -> str | None:
        """Forget `task_id`'s idempotency key `key`: the next trigger with it makes a new
        run. Returns the run that held it (None: none did)."""
        scoped = scoped_key(task_id, key)  # its row is on the key's shard, beside its run
        return await self.index.on(scoped)(RunIndexObject.reset_idempotency_key, scoped)

    async def redispatch(self, runs: list[dict[str, Any]]) -> None:
        """Send again the messages of runs that lost theirs (`{..., due_at}` each: when it is
        due; a message is a duplicate at worst, which its dispatch number absorbs)."""
        by_due: dict[float, list[dict[str, Any]]] = {}
        for run in runs:
            by_due.setdefault(float(run.get("due_at") or 0.0), []).append(run)
        for due, group in by_due.items():
            await self._dispatch(group, due or None)

    async def _dispatch(self, runs: list[dict[str, Any]], due: float | None = None) -> None:
        now = self.now()
        delay = max(0.0, min((due or now) - now, self.config.max_message_delay))
        msgs = [  # with its queue and keys: without them it would bypass its queue's limits
            OutMessage(
                RunMessage(
                    r["id"],
                    r["task"],
                    r["attempt"],
                    r["dispatch"],
                    queue=r.get("queue"),
                    key=r.get("concurrency_key"),
                    rate_key=r.get("rate_key"),
                ).to_body(),
                delay,
            )
            for r in runs
        ]
        await self.platform.queue.send_all(msgs)

    # --- queues (concurrency limits, pause) ---------------------------------------------

    async def list_queues(self) -> list[dict[str, Any]]:
        """Every queue with `{name, running, queued, paused, concurrency_limit,
        limit_override, parked}`."""
        return await self.queues.list()

    async def get_queue(self, name: str) -> dict[str, Any]:
        return await self.queues.get(name)

    async def pause_queue(self, name: str) -> dict[str, Any]:
        """No run of the queue starts until it is resumed (its runs wait, parked)."""
        return await self.queues.pause(name)

    async def resume_queue(self, name: str) -> dict[str, Any]:
        return await self.queues.resume(name)

    async def set_queue_limit(self, name: str, limit: int | None) -> dict[str, Any]:
        """Override the queue's concurrency limit (None: back to the declared one)."""
        return await self.queues.set_limit(name, limit)

    # --- bulk actions: cancel or replay many runs (bulk.py) ---------------------------------

    @property
    def bulk(self) -> BulkActions:
        """The bulk actions' own calls (`process` in chunks, `purge`, ...)."""
        return BulkActions(self)

    async def create_bulk_action(
        self,
        kind: str,
        *,
        run_ids: Sequence[str] | None = None,
        filters: dict[str, Any] | None = None,
        name: str | None = None,
        request_key: str | None = None,
        process_for: float | None = 0.0,
    ) -> dict[str, Any]:
        """Record a bulk action, `kind` "cancel" or "replay", over `run_ids` or `filters`
        (those of `list_runs`; without `created_to`, the runs created until now), then work
        on it for up to `process_for` seconds (None: until it ends). Returns its record."""
        action = await self.bulk.create(
            kind, run_ids=run_ids, filters=filters, name=name, request_key=request_key
        )
        if action["cached"] or process_for == 0:
            return action
        return await self.bulk.process(action["id"], process_for)

    async def get_bulk_action(self, bulk_id: str, *, process_for: float = 0.0) -> dict[str, Any]:
        """A bulk action's record; with `process_for`, after going on with it for up to that
        many seconds if it is open and nobody else is working on it."""
        if process_for > 0:
            return await self.bulk.process(bulk_id, process_for)
        return await self.bulk.get(bulk_id)

    async def list_bulk_actions(
        self, *, limit: int = 25, after: str | None = None, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; `after`/`before` an action id to page from."""
        return await self.bulk.list_actions(limit, after, before)

    async def abort_bulk_action(self, bulk_id: str) -> dict[str, Any]:
        """Stop an open bulk action. Returns `{aborted, action}` (`aborted` false: it had
        already ended)."""
        return await self.bulk.abort(bulk_id)

    async def resume_bulk_actions(self, budget: float | None = None) -> list[dict[str, Any]]:
        """Go on with every open bulk action nobody is working on (one whose processor died
        included), each for up to `budget` seconds (None: until it ends)."""
        return await self.bulk.resume(budget)

    async def bulk_housekeeping(self, budget: float = 10.0) -> dict[str, int]:
        """What housekeeping does for bulk actions: go on with the open ones nobody works on
        (each for up to `budget` seconds), delete ended ones past retention. Idempotent."""
        resumed = await self.bulk.resume(budget)
        purged = await self.bulk.purge(self.config.retention)
        return {"bulk_resumed": len(resumed), "bulk_purged": purged}

    # --- dead letters and housekeeping ----------------------------------------------------

    async def dead_letters(self) -> list[dict[str, Any]]:
        pages = await self.index.each(lambda s: s(RunIndexObject.list_dead_letters))
        return sorted((d for page in pages for d in page), key=lambda d: d["dead_at"])

    async def requeue_dead(self, run_ids: list[str] | None = None) -> list[str]:
        now = self.now()
        pages = await self.index.each(lambda s: s(RunIndexObject.requeue_dead, run_ids, now))
        revived = [r for page in pages for r in page]
        await self._dispatch(revived)
        return [r["id"] for r in revived]

    # --- timers ------------------------------------------------------------------------------

    async def fire_due_timers(self) -> int:
        """Fire every timer due now, where one database holds every object's timers (the
        local runtime's supervisor calls this a few times a second; on Cloudflare each
        Durable Object's alarm fires its own). Returns how many objects had timers due."""
        timers = self.platform.timers
        if timers is None:
            return 0
        due = timers.due(self.now())
        for kind, name in due:
            await self.fire_timers(kind, name)
        return len(due)

    async def fire_timers(self, kind: str, name: str) -> dict[str, Any]:
        """Let the object `name` of `kind` act on its due timers (in its transaction)."""
        if kind == SchedulerObject.KIND:  # claims what is due, triggers through the producer
            return {"fired": await self.schedules.fire_due()}
        if kind == TokenStoreObject.KIND:  # wait tokens timing out
            return await self.tokens.fire_timers(name)
        if kind != RunIndexObject.KIND:
            raise InvalidArgumentError(f"no timers on {kind!r} objects")
        # ttl expiry, and waits that came due: their runs sent (waits/)
        return await self.waits.fire(self.index.shard(int(name.removeprefix("shard-"))), self.now())

    async def _release_stale_batches(self) -> int:
        """Runs of a sealed batch still hidden on a shard (whoever sealed it died before
        sending and releasing them): send those not started, and release them. Returns how
        many were sent."""
        sent = 0
        for n in range(self.index.count):
            shard = self.index.shard(n)
            for batch_id in await shard(RunIndexObject.stale_pending_batches, self.now()):
                batch = await self.index.on(batch_id)(RunIndexObject.get_batch, batch_id)
                if batch is not None and not batch["sealed"]:
                    continue  # still being written, or abandoned: a retry completes it
                rows = await shard(RunIndexObject.batch_dispatch, batch_id)
                await self.platform.queue.send_all(self.producer.dispatch_rows(rows, self.now()))
                await shard(RunIndexObject.release_batch, batch_id)
                sent += len(rows)
        return sent

    async def housekeeping(self) -> dict[str, int]:
        """Expire, re-dispatch overdue runs, purge what is past retention. Idempotent."""
        totals = {"expired": 0, "redispatched": 0, "purged": 0}
        for n in range(self.index.count):
            for _ in range(MAX_HOUSEKEEPING_ROUNDS):  # a backlog is worked off in rounds
                res = await self.index.shard(n)(
                    RunIndexObject.housekeeping,
                    self.now(),
                    self.config.stale_after,
                    self.config.retention,
                )
                # not the runs a coordinator holds parked: it hands them back itself
                overdue = await self.queues.unparked(res["overdue"])
                await self._dispatch(overdue)
                for run_id in res["objects"]:  # runs without an object have none to purge
                    await self.runs(run_id)(RunObject.purge)
                if res["purged"]:  # and their waitpoints (waits/)
                    await self.index.shard(n)(RunIndexObject.purge_waits, res["purged"])
                for key in res["packets"]:
                    await self.platform.blobs.delete(key)
                totals["expired"] += len(res["expired"])
                totals["redispatched"] += len(overdue)
                totals["purged"] += len(res["purged"])
                if not res["more"]:
                    break
        totals["batches_released"] = await self._release_stale_batches()
        # parents whose children's ends were lost on the way (a process died): resume them
        totals["waits_completed"] = await self.waits.sweep(self.config.stale_after)
        # bulk actions nobody drives (their processor died): a few seconds each, then later
        bulk = await self.bulk_housekeeping(budget=2.0)
        totals["bulk_resumed"], totals["bulk_purged"] = bulk["bulk_resumed"], bulk["bulk_purged"]
        totals.update(await self.events.housekeeping())  # events: kept as long as runs
        totals["tokens_redelivered"] = await self.tokens.redeliver()  # a token's cut-short hooks
        totals["event_waits_rechecked"] = await self.tokens.recheck_event_waits()
        return totals


async def _once(
    items: Sequence[tuple[int, TriggerRequest]],
) -> AsyncIterator[Sequence[tuple[int, TriggerRequest]]]:
    yield items
