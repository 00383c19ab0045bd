"""Trigger and batch-trigger: validate everything, then write runs and enqueue messages in bulk."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..coordinator.intake import Intake
from ..errors import (
    NonFiniteNumberError,
    PayloadTooLargeError,
    PayloadValidationError,
    UnknownTaskError,
)
from ..ports import Meter, OutMessage, Platform
from ..runs.client import Registry, RunIndex
from ..runs.index import RunIndexObject
from ..shared import tracing
from ..shared.config import EngineConfig
from ..shared.ids import new_sharded_id
from ..shared.messages import RunMessage
from ..shared.options import (
    DEFAULT_IDEMPOTENCY_TTL,
    TriggerOptions,
    parse_options,
    scoped_key,
)
from ..shared.serialization import dumps, loads
from ..shared.specs import run_keys
from ..task import Task, registered_tasks

CHILD_OPTIONS = (
    "parent_run_id", "root_run_id", "resume_parent", "waitpoint", "waitpoint_index", "depth",
)  # fmt: skip
CHUNK_RUNS = 1000  # at most this many runs per index call ...
CHUNK_BYTES = 8 * 1024 * 1024  # ... and this many payload bytes (an RPC stays far below 32 MiB)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        n = len(row["payload"] or "")
        if chunk and (len(chunk) >= CHUNK_RUNS or size + n > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += n
    if chunk:
        yield chunk


@dataclass(frozen=True)
class TriggerRequest:
    task_id: str
    payload: Any
    options: dict[str, Any] | TriggerOptions | None = None
    payload_text: str | None = None  # already-validated JSON text (skips re-validation)
    schedule: dict[str, Any] | None = None  # the schedule that fired it (schedules/service.py)
    replay_of: str | None = None  # the run this one replays (`Engine.replay`)
    event: dict[str, Any] | None = None  # the event or webhook delivery that started it (events/)


@dataclass(frozen=True)
class Triggered:
    id: str
    cached: bool


@dataclass(frozen=True)
class BatchTriggered:
    id: str
    runs: list[Triggered]
    cached: bool


class Producer:
    def __init__(
        self,
        platform: Platform,
        config: EngineConfig,
        find_task: Callable[[str], Task[Any] | None],
    ) -> None:
        self.platform = platform
        self.config = config
        self.find_task = find_task
        self.index = RunIndex(platform)
        # a key's backlog waits in its coordinator's line, not in the run queue
        self.intake = Intake(platform, config, find_task)

    async def _known_remote(self) -> set[str]:
        return {r["id"] for r in await Registry(self.platform).tasks()}

    async def trigger(self, req: TriggerRequest) -> Triggered:
        batch = await self.trigger_many([req], batch=False)
        return batch.runs[0]

    async def trigger_many(
        self,
        requests: Sequence[TriggerRequest],
        *,
        batch: bool = True,
        idempotency_key: str | None = None,
    ) -> BatchTriggered:
        """Validate all requests (one bad item rejects all, naming its index), then write."""
        if tracing.active is not None:  # a span for the call; each run's message carries it
            with tracing.active.trigger([r.task_id for r in requests], batch):
                return await self._trigger_many(requests, batch, idempotency_key)
        return await self._trigger_many(requests, batch, idempotency_key)

    async def _trigger_many(
        self, requests: Sequence[TriggerRequest], batch: bool, idempotency_key: str | None
    ) -> BatchTriggered:
        now = self.platform.clock.now()
        prepared = await self.prepare_all(requests, now, batch=batch)
        if not batch:
            results: list[Triggered] = []
            for chunk in _chunks(prepared):
                known = await self._insert(chunk, now)
                await self.intake.send(self._messages(chunk, known, now))
                results += _triggered(chunk, known)
            return BatchTriggered("", results, False)
        made = await self.create_batch(len(prepared), idempotency_key, now)
        batch_id = made["id"]
        present: dict[int, str] = {}
        if made["cached"]:
            if made["sealed"]:
                runs = await self.batch_run_ids(batch_id)
                return BatchTriggered(batch_id, [Triggered(r, True) for r in runs], True)
            if made["run_count"] != len(prepared):
                raise PayloadValidationError(
                    f"idempotency key {idempotency_key!r} names an unfinished batch of "
                    f"{made['run_count']} items, not {len(prepared)}"
                )
            present = dict(await self.index.batch_items(batch_id))  # a retry completes the rest
        for j, row in enumerate(prepared):
            row["batch_id"], row["batch_index"] = batch_id, j
            if j in present:
                row["id"] = present[j]
        fresh = [r for r in prepared if r["batch_index"] not in present]
        cached: dict[str, str] = {}
        for chunk in _chunks(fresh):  # invisible until the batch is sealed
            cached.update(await self._insert(chunk, now))
        shards = {self.index.shard_of(r["id"]) for r in prepared}
        await self.seal(batch_id, shards, self._messages(prepared, cached, now))
        return BatchTriggered(batch_id, _triggered(prepared, cached), False)

    async def seal(
        self, batch_id: str, shards: set[int], messages: list[OutMessage] | None = None
    ) -> None:
        """A batch whose items are all written: seal it (the commit point, on its own shard),
        send its runs' first `messages` (None: read them back from the `shards`, for items
        written by earlier calls), then make its runs visible on every shard holding them."""
        own = self.index.shard_of(batch_id)
        await self.index.shard(own)(RunIndexObject.seal_batch, batch_id)
        now = self.platform.clock.now()
        if messages is None:
            rows: list[list[Any]] = []
            for shard in sorted(shards):
                rows += await self.index.shard(shard)(RunIndexObject.batch_dispatch, batch_id)
            if tracing.active is not None and rows:  # the span of the batch's runs, sent now
                with tracing.active.trigger([r[1] for r in rows], True) as span:
                    span.set_attribute("trigger_do.batch_id", batch_id)
                    await self.intake.send(self.dispatch_rows(rows, now))
            else:
                await self.intake.send(self.dispatch_rows(rows, now))
        else:
            await self.intake.send(messages)
        for shard in sorted(shards | {own}):
            await self.index.shard(shard)(RunIndexObject.release_batch, batch_id)

    async def create_batch(
        self, run_count: int, idempotency_key: str | None, now: float
    ) -> dict[str, Any]:
        """Record a batch on the shard its id names (its key's shard, with a key); with a
        key already used, that batch (`cached`)."""
        batch_id = new_sharded_id("batch", idempotency_key, self.index.count)
        return await self.index.on(batch_id)(
            RunIndexObject.create_batch, batch_id, run_count, idempotency_key, now
        )

    async def trigger_into_batch(
        self, batch_id: str, items: Sequence[tuple[int, TriggerRequest]]
    ) -> list[Triggered]:
        """Add items at their indexes to a batch created beforehand (the HTTP API's
        two-phase batch). One bad item rejects all, naming its index; nothing is written."""
        now = self.platform.clock.now()
        prepared = await self.prepare_all([r for _, r in items], now, batch=True)
        for (index, _), row in zip(items, prepared, strict=True):
            row["batch_id"], row["batch_index"] = batch_id, index
        cached: dict[str, str] = {}
        for chunk in _chunks(prepared):  # invisible until the batch is sealed (`seal`)
            cached.update(await self._insert(chunk, now))
        return _triggered(prepared, cached)

    async def prepare_all(
        self, requests: Sequence[TriggerRequest], now: float, *, batch: bool
    ) -> list[dict[str, Any]]:
        """Validate and prepare every request's row; raise on the first bad one (or, for a
        batch, once for all bad items, naming their indexes)."""
        prepared: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        remote: set[str] | None = None
        for i, req in enumerate(requests):
            try:
                task = self.find_task(req.task_id)
                if task is None:
                    if remote is None:
                        remote = await self._known_remote()
                    if req.task_id not in remote:
                        raise UnknownTaskError(
                            req.task_id, sorted(remote | set(registered_tasks()))
                        )
                prepared.append(self._prepare(req, task, now))
            except (PayloadValidationError, UnknownTaskError, PayloadTooLargeError) as exc:
                if not batch:
                    raise
                sub = getattr(exc, "errors", None) or [{"loc": "$", "msg": str(exc)}]
                errors += [{"index": i, **e} for e in sub]
        if errors:
            raise PayloadValidationError.for_batch(errors)
        return prepared

    async def batch_run_ids(self, batch_id: str) -> list[str]:
        """A batch's run ids in input order, gathered from every shard at once."""
        return [rid for _, rid in await self.index.batch_items(batch_id)]

    def _prepare(self, req: TriggerRequest, task: Task[Any] | None, now: float) -> dict[str, Any]:
        opts = parse_options(req.options)
        if req.payload_text is not None:
            text = req.payload_text
        elif task is not None:
            text = task.payload_json(req.payload)
        else:
            text = _json(req.payload)
        size = len(text.encode())
        if size > self.config.payload_limit:
            raise PayloadTooLargeError(size, self.config.payload_limit)
        delay_until = opts.delay_until(now)
        key = scoped_key(req.task_id, opts.idempotency_key) if opts.idempotency_key else None
        run_id = new_sharded_id("run", key, self.index.count)
        options: dict[str, Any] = {}
        if opts.max_attempts is not None:
            options["max_attempts"] = opts.max_attempts
        if opts.max_duration is not None:
            options["max_duration"] = opts.max_duration
        queue = opts.queue or (task.queue_name if task else None)
        concurrency_key, rate_key = run_keys(
            task, lambda: loads(text), opts.tags, opts.metadata, opts.concurrency_key
        )
        if rate_key is not None:
            options["rate_key"] = rate_key
        for name in CHILD_OPTIONS:  # a child run's links (waits/)
            value = getattr(opts, name)
            if value is not None:
                options[name] = value
        if "parent_run_id" in options:  # named by id alone: a child of a root
            options.setdefault("root_run_id", options["parent_run_id"])
            options.setdefault("depth", 1)
        if req.schedule is not None:  # shown on the run, and what `filter[schedule]` matches
            options["schedule"] = req.schedule
        if req.event is not None:  # `{id, name, source}` of the event that started it
            options["event"] = req.event
        return {
            "id": run_id,
            "task": req.task_id,
            "state": "delayed" if delay_until else "queued",
            "queue": queue,
            "concurrency_key": concurrency_key,
            "rate_key": rate_key,
            "payload": text,
            "tags": dumps(opts.tags) if opts.tags else "[]",
            "metadata": dumps(opts.metadata) if opts.metadata else "{}",
            "options": dumps(options) if options else "{}",
            "idempotency_key": key,
            "key_expires_at": now + (opts.idempotency_key_ttl or DEFAULT_IDEMPOTENCY_TTL)
            if key
            else None,
            "delay_until": delay_until,
            "ttl": opts.ttl,
            "expires_at": (delay_until or now) + opts.ttl if opts.ttl else None,
            "replay_of": req.replay_of,
        }

    async def _insert(self, rows: list[dict[str, Any]], now: float) -> dict[str, str]:
        """Write runs (payloads over the packet threshold to blobs first). Returns the rows
        whose idempotency key named a live run: `{row id: that run's id}` (not written)."""
        for row in rows:
            if row["payload"] is not None and len(row["payload"]) > self.config.packet_threshold:
                key = f"packets/{row['id']}/payload.json"
                await self.platform.blobs.put(key, row["payload"].encode())
                row["payload_packet"], row["payload"] = key, None
        cached = await self.index.insert_runs(rows, now)
        _count_triggered(self.platform.meter, rows, cached)
        return cached

    def _messages(
        self, rows: list[dict[str, Any]], cached: dict[str, str], now: float
    ) -> list[OutMessage]:
        """The first message of each run written (the payload inline when small)."""
        inline = self.config.inline_message_limit
        if tracing.active is not None:
            traced = self._traced(rows, cached, now, inline)
            if traced is not None:
                return traced
        return [
            OutMessage(
                RunMessage.first_body(
                    row["id"],
                    row["task"],
                    payload if payload is not None and len(payload) <= inline else None,
                    row["queue"],
                    row["concurrency_key"],
                    row.get("rate_key"),
                ),
                self._delay(row["delay_until"], now) if row["delay_until"] else 0.0,
            )
            for row in rows
            if row["id"] not in cached
            for payload in (row["payload"],)
        ]

    def _traced(
        self, rows: list[dict[str, Any]], cached: dict[str, str], now: float, inline: int
    ) -> list[OutMessage] | None:
        """The first messages, each carrying the current trace context (None: no span)."""
        assert tracing.active is not None
        parent = tracing.active.carrier()
        if parent is None:
            return None
        span = tracing.active.current()
        if span is not None and len(rows) == 1:
            span.set_attribute("trigger_do.run_id", rows[0]["id"])
        out: list[OutMessage] = []
        for row in rows:
            if row["id"] in cached:
                continue
            payload = row["payload"]
            msg = RunMessage(
                row["id"],
                row["task"],
                1,
                payload=payload if payload is not None and len(payload) <= inline else None,
                queue=row["queue"],
                key=row["concurrency_key"],
                rate_key=row.get("rate_key"),
                trace=parent,
            )
            delay = self._delay(row["delay_until"], now) if row["delay_until"] else 0.0
            out.append(OutMessage(msg.to_body(), delay))
        return out

    def dispatch_rows(self, rows: list[list[Any]], now: float) -> list[OutMessage]:
        """First messages from run-index rows (`index_batches._FIRST_DISPATCH`): for a
        batch sealed after its items were written by other calls. Traced: each carries the
        current span's context."""
        trace = tracing.active.carrier() if tracing.active is not None else None
        return [
            OutMessage(
                RunMessage(
                    run_id, task, 1, dispatch, queue=queue, key=key, rate_key=rate_key, trace=trace
                ).to_body(),
                delay_seconds=self._delay(delay_until, now),
            )
            for run_id, task, dispatch, queue, key, rate_key, delay_until in rows
        ]

    def _delay(self, delay_until: float | None, now: float) -> float:
        if not delay_until:
            return 0.0
        return max(0.0, min(delay_until - now, self.config.max_message_delay))


def _count_triggered(meter: Meter, rows: list[dict[str, Any]], cached: dict[str, str]) -> None:
    """Metrics: the runs written (not those an idempotency key found), by task."""
    by_task: dict[str, int] = {}
    for row in rows:
        if row["id"] not in cached:
            by_task[row["task"]] = by_task.get(row["task"], 0) + 1
    for task, n in by_task.items():
        meter.count("triggered", task, n)
    meter.flush()


def _triggered(rows: list[dict[str, Any]], cached: dict[str, str]) -> list[Triggered]:
    """Each row's run: its own, or the live run its idempotency key named."""
    return [Triggered(cached.get(r["id"], r["id"]), r["id"] in cached) for r in rows]


def _json(value: Any) -> str:
    """The JSON text of a payload for a task this process does not define."""
    try:
        return dumps(value)
    except TypeError as exc:
        raise PayloadValidationError(f"payload is not JSON-serializable: {exc}") from None
    except NonFiniteNumberError as exc:
        raise PayloadValidationError(f"payload: {exc}") from None
