"""The consumer: one call per delivered batch. User code runs only here.

For a batch it asks each run-index shard once which runs it may start (`start_many`),
runs those concurrently under a time slice, keeps their leases alive, notices cancels,
and reports every outcome through the coalescing writer (retries and continuations
are re-enqueued with the outcome). Messages are acked only once their outcome is durable.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..coordinator.gate import Gate
from ..errors import (
    AbortTaskRunError,
    MisuseError,
    NonFiniteNumberError,
    PayloadTooLargeError,
)
from ..ports import Message, Meter, OutMessage, Platform
from ..runs.client import RunIndex, RunObjects, RunStart
from ..runs.index import RunIndexObject
from ..runs.run_object import RunObject
from ..shared import tracing
from ..shared.config import EngineConfig
from ..shared.current import current_run
from ..shared.ids import new_id
from ..shared.limits import MAX_ERROR_MESSAGE_CHARS, MAX_STACK_CHARS, truncate
from ..shared.messages import RunMessage
from ..shared.retry import Finish, decide_failure
from ..shared.serialization import dumps, loads
from ..shared.states import RunState
from ..task import Task, arity
from ..waits.suspend import RunWaits, Suspended
from .context import RunContext
from .writer import Next, Writer

log = logging.getLogger("trigger_do.consumer")
UNKNOWN_TASK_DELIVERIES = 3  # deliveries a run of a task this consumer lacks waits for one
UNKNOWN_TASK_RETRY = 2.0  # seconds between them


@dataclass
class _Running:
    task: asyncio.Task[Any]
    stop_reason: str | None = None  # "slice" | "shutdown" | "lost"
    finishing: bool = False  # the user code returned: nothing may stop it now


def _stop(running: _Running, reason: str) -> None:
    if running.stop_reason is None and not running.finishing:
        running.stop_reason = reason
        running.task.cancel()


@dataclass
class _Attempt:
    message: Message
    msg: RunMessage
    start: RunStart
    recorded: dict[str, Any] | None = None  # a resumed run's waits so far (waits/)
    go: asyncio.Future[None] | None = None  # a standby's: its code starts when it is done
    began: float = 0.0  # (the loop's clock)


class Consumer:
    def __init__(
        self,
        platform: Platform,
        tasks: dict[str, Task[Any]],
        config: EngineConfig | None = None,
    ) -> None:
        self.platform = platform
        self.tasks = tasks
        self.config = config or EngineConfig.from_settings(platform.settings)
        self.token = new_id("lease")
        self.writer = Writer(platform, self.token, self.config.flush_interval)
        self.gate = Gate(platform, tasks, self.config)  # concurrency and rate limits
        self.writer.on_finish = self.gate.finished  # slots freed in the outcomes' write
        self.writer.urgent = self.gate.urgent  # ... written at once
        self.gate.starter = self._start_granted  # the runs granted there start in it too
        self.index = RunIndex(platform)
        self.runs = RunObjects(platform)
        self.running: dict[str, _Running] = {}
        self.stopping = False

    # --- batches ---------------------------------------------------------------------------

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        await (await self.begin(messages))()

    async def begin(self, messages: Sequence[Message]) -> Callable[[], Awaitable[None]]:
        """Admit and start a batch's runs: only object calls and queue sends, so a worker
        can make this one unit of work with the claim of its messages (`Platform.unit`).
        Returns what runs the runs started (call it once that unit committed)."""
        deadline = self.platform.clock.now() + self.config.slice_seconds
        parsed = await self._parse(messages)
        # the coordinators grant or park the runs of limited queues (one call per queue);
        # a granted run starts at the instant its coordinator granted it
        admitted = await self.gate.admit(
            parsed, self.platform.clock.now(), self.handle_batch, lambda: self.stopping
        )
        attempts = await self._start(admitted)
        return functools.partial(self._run_started, attempts, deadline)

    async def _start_granted(
        self, admitted: list[tuple[Message, RunMessage, float]]
    ) -> Callable[[], Awaitable[None]] | None:
        """The gate's hook for runs a release granted this consumer: start them now, in the
        unit of work that granted them; returns what runs them (once it committed)."""
        deadline = self.platform.clock.now() + self.config.slice_seconds
        attempts = await self._start(admitted)
        return functools.partial(self._run_started, attempts, deadline) if attempts else None

    async def _run_started(self, attempts: list[_Attempt], deadline: float) -> None:
        if not attempts:
            return
        # A task per attempt (on Python 3.12+ started eagerly: a run that never waits, a
        # noop or a quick transform, is done before the next one starts, with nothing
        # scheduled); the outcomes are recorded in waves, all the attempts that ended since
        # the last wave in one write of the writer.
        loop = asyncio.get_running_loop()
        ended: list[tuple[_Attempt, asyncio.Task[_Result]]] = []
        wake = loop.create_future()

        def on_end(a: _Attempt, task: asyncio.Task[_Result]) -> None:
            self.gate.standbys.ended(a.msg.run_id, loop.time() - a.began)
            ended.append((a, task))
            if not wake.done():
                wake.set_result(None)

        # (metrics counted here, once the starts are durable, not in the unit that made
        # them: another worker may be waiting for its write lock)
        _count_starts(self.platform.meter, attempts)
        mine: dict[str, _Running] = {}
        waiting: dict[str, _Running] = {}
        for a in attempts:
            a.go, a.began = self.gate.standbys.gate(a.msg.run_id), loop.time()
            run = self._execute(a) if tracing.active is None else self._execute_traced(a)
            task = _start_task(loop, run)
            entry = self.running[a.msg.run_id] = mine[a.msg.run_id] = _Running(task)
            if task.done():
                self.gate.standbys.ended(a.msg.run_id, 0.0)
                ended.append((a, task))
            else:
                task.add_done_callback(functools.partial(on_end, a))
                waiting[a.msg.run_id] = entry
        watcher = asyncio.ensure_future(self._watch(waiting, deadline)) if waiting else None
        left = len(attempts)
        try:
            while left:
                if not ended:
                    await wake
                    wake = loop.create_future()
                wave, ended[:] = list(ended), []
                left -= len(wave)
                try:
                    await self._record_all(wave)
                except Exception:  # the next waves are recorded all the same
                    log.exception("recording %d outcomes failed; they will be redelivered",
                                  len(wave))  # fmt: skip
        finally:
            if watcher is not None:
                watcher.cancel()
            # only this delivery's entries: a run continued or retried at once may be running
            # here again already, on its next message, and its entry is that delivery's
            for run_id, entry in mine.items():
                if self.running.get(run_id) is entry:
                    del self.running[run_id]

    async def _parse(self, messages: Sequence[Message]) -> list[tuple[Message, RunMessage]]:
        """The batch's run messages, once each; coordinator wakes are handled here, malformed
        messages dropped, runs of tasks this consumer lacks put back for a while."""
        parsed: list[tuple[Message, RunMessage]] = []
        wakes: list[Message] = []
        seen: dict[str, int] = {}  # run id -> its place in `parsed`
        for m in messages:
            if self.gate.is_wake(m.body):  # a coordinator's alarm
                wakes.append(m)
                continue
            try:
                msg = RunMessage.from_body(m.body)
            except (ValueError, TypeError) as exc:
                log.error("dropping a malformed message %s: %s", m.id, exc)
                m.ack()
                continue
            if msg.run_id in seen:  # twice in one batch: one start is enough, the newest
                # dispatch's (a message is sent with the dispatch its run's row has then, so
                # the newest is the current one; a stale one would be skipped, and the run
                # left without any)
                at = seen[msg.run_id]
                kept_m, kept = parsed[at]
                if msg.dispatch > kept.dispatch:
                    kept_m.ack()
                    parsed[at] = (m, msg)
                else:
                    m.ack()
                continue
            if msg.task and msg.task not in self.tasks and m.attempts < UNKNOWN_TASK_DELIVERIES:
                # another consumer may serve it (a rolling restart with new task code):
                # look again before ending the run SYSTEM_FAILURE
                m.retry(UNKNOWN_TASK_RETRY)
                continue
            seen[msg.run_id] = len(parsed)
            parsed.append((m, msg))
        if wakes:
            await self.gate.wake(wakes)
        return parsed

    async def _start(self, admitted: list[tuple[Message, RunMessage, float]]) -> list[_Attempt]:
        """Ask each run-index shard once which runs may start (and start them under this
        consumer's lease); settle the messages of the others."""
        by_shard: dict[tuple[int, float], list[tuple[Message, RunMessage]]] = defaultdict(list)
        for m, msg, at in admitted:
            by_shard[(self.index.shard_of(msg.run_id), at)].append((m, msg))
        attempts: list[_Attempt] = []
        again: list[tuple[Message, OutMessage]] = []
        for (shard, now), pairs in by_shard.items():
            decisions = await self.index.start_many(
                shard,
                [[msg.run_id, msg.dispatch] for _, msg in pairs],
                self.token,
                now,
                self.config.lease_seconds,
            )
            resumed = [d.id for d in decisions if d.start is not None and d.start.resumed]
            recorded = (  # their waits, for their replays: one call for the shard's batch
                await self.index.shard(shard)(RunIndexObject.waits_of_many, resumed)
                if resumed
                else {}
            )
            for (message, msg), d in zip(pairs, decisions, strict=True):
                if d.kind == "busy" or (d.kind == "skip" and d.state == RunState.RUNNING):
                    self.gate.forget(msg.run_id)  # its slot is the running holder's: keep it
                elif d.kind != "start":  # nothing starts: free the slot it was granted
                    self.gate.release(msg.run_id)
                if d.start is not None:
                    attempts.append(_Attempt(message, msg, d.start, recorded.get(d.id, {})))
                elif d.kind == "early":
                    # a delay past the queue's maximum: a fresh message, not a retry (retries
                    # count as deliveries, and enough of them would dead-letter the run)
                    delay = min(d.delay, self.config.max_message_delay)
                    again.append((message, OutMessage(msg.to_body(), delay)))
                elif d.kind == "busy" and message.attempts > 1:
                    # a redelivery of a run whose holder may have died: look again once
                    # its lease has run out (a first delivery while busy is a duplicate)
                    message.retry(min(d.delay, self.config.max_message_delay))
                else:  # skip, missing, expired
                    message.ack()
        if again:
            await self.platform.queue.send_all([out for _, out in again])
            for message, _ in again:
                message.ack()
        return attempts

    async def _watch(self, runs: dict[str, _Running], deadline: float) -> None:
        """Renew leases, cancel runs canceled elsewhere, end the slice at its deadline (of
        this delivery's attempts: not of the next delivery of a run continued here)."""
        poll = min(0.5, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(poll)
            live = [r for r, entry in runs.items() if not entry.task.done()]
            if not live:
                return
            now = self.platform.clock.now()
            if now >= deadline or self.stopping:
                for r in live:
                    _stop(runs[r], "shutdown" if self.stopping else "slice")
                continue
            try:
                lost = await self.index.extend_leases(
                    live, self.token, now, self.config.lease_seconds
                )
            except Exception:  # a failed renewal is retried at the next poll
                log.exception("lease renewal failed")
                lost = []
            for r in lost:
                if r in runs:  # (a subset of `live`: an odd reply must not end the watch)
                    _stop(runs[r], "lost")
            await self.gate.extend(live, now)  # and the coordinator slots they hold

    async def shutdown(self, grace: float | None = None) -> None:
        """Let running attempts finish for `grace` seconds, then stop the rest at their next
        await; those are continued (re-enqueued to resume from their checkpoints)."""
        grace = self.config.shutdown_grace if grace is None else grace
        tasks = [r.task for r in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        self.stopping = True
        for running in list(self.running.values()):
            _stop(running, "shutdown")
        tasks = [r.task for r in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=max(grace, 5.0))
        await self.gate.drain()  # the slot releases still coalescing

    # --- one attempt -----------------------------------------------------------------------

    async def _execute_traced(self, a: _Attempt) -> _Result:
        """`_execute` in a span of its own, a child of the run's trigger span (`tracing`)."""
        otel = tracing.active
        assert otel is not None
        with otel.attempt(a.msg.trace, a.start.task, a.msg.run_id, a.start.attempt) as span:
            result = await self._execute(a)
            otel.outcome(span, result[0])
            return result

    async def _execute(self, a: _Attempt) -> _Result:
        """Run one attempt; its outcome to record (no state: canceled or lost, nothing to
        record) and its next message, if any."""
        d, msg = a.start, a.msg
        task = self.tasks.get(d.task)
        outcome: dict[str, Any] = {"id": msg.run_id, "attempt": d.attempt}
        try:
            if task is None:
                raise _SystemFailure(
                    f"task {d.task!r} is not defined in this consumer (known: "
                    f"{', '.join(sorted(self.tasks)) or 'none'})"
                )
            raw = await self._payload(a)
            current_run.set(  # this attempt's task only: its waits and children (waits/)
                RunWaits(
                    self.platform,
                    msg.run_id,
                    d.attempt,
                    resumed=d.resumed,
                    root_run_id=d.options.get("root_run_id"),
                    depth=d.options.get("depth") or 0,
                    recorded=a.recorded,
                )
            )
            ctx = await self._context(a, task, raw) if task.takes_context else None
            return await self._attempt(task, ctx, a, raw)
        except _SystemFailure as exc:
            outcome.update(
                state=RunState.SYSTEM_FAILURE,
                error=dumps({"name": "SystemFailure", "message": str(exc)}),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an engine error: never lose the run
            log.exception("system failure running %s", msg.run_id)
            outcome.update(state=RunState.SYSTEM_FAILURE, error=dumps(_error(exc)))
        return outcome, None

    async def _record_all(self, wave: list[tuple[_Attempt, asyncio.Task[_Result]]]) -> None:
        """Record the outcomes of attempts that ended: one flush of the writer for all,
        waited for once; then each message acked (its outcome is durable) or retried (it
        could not be written: the run is delivered again). An attempt canceled by its own
        code leaves its message alone (redelivered when its lease lapses)."""
        done: list[tuple[_Attempt, _Result]] = []
        for a, task in wave:
            if task.cancelled():  # stopped before it had an outcome, or by its own code
                log.warning("the attempt of run %s was canceled; it is delivered again",
                            a.msg.run_id)  # fmt: skip
            elif task.exception() is not None:  # not raised by _execute; kept apart anyway
                log.error("run %s failed in the engine: %r", a.msg.run_id, task.exception())
            else:
                done.append((a, task.result()))
        gone = [(a, r) for a, r in done if r[0].get("state") is None]
        if gone:
            await self.gate.release_finished(
                [
                    {"run_id": a.msg.run_id, "task": a.start.task, "queue": a.msg.queue}
                    for a, _ in gone
                ]
            )
            for a, _ in gone:
                a.message.ack()
        written: list[tuple[_Attempt, asyncio.Future[Any]]] = []
        states: dict[str, str] = {}  # run -> the state its outcome writes (metrics)
        standbys = self.gate.standbys
        for a, (outcome, message) in done:
            ended_at = standbys.ended_at.pop(a.msg.run_id, None)
            started_at = standbys.started_at.pop(a.msg.run_id, None)
            if outcome.get("state") is not None:
                outcome["state"] = states[a.msg.run_id] = str(outcome["state"])
                # a handoff: the run's end and its standby's start are one instant
                if ended_at is not None:
                    outcome["ended_at"] = ended_at
                if started_at is not None and a.start.attempt == 1:  # (a run's first start)
                    outcome["started_at"] = started_at
                written.append((a, self.writer.finish(outcome, message)))
        if not written:
            return
        # the flush that takes them all (a shared future: waited on, never canceled)
        await asyncio.wait([self.writer.schedule()])
        applied: list[tuple[_Attempt, str]] = []
        for a, fut in written:
            error = fut.exception() if fut.done() else MisuseError("the outcome was not written")
            if error is not None:
                log.error(
                    "could not record the outcome of %s (%s); it will be redelivered",
                    a.msg.run_id, error,
                )  # fmt: skip
                a.message.retry(1.0)
                continue
            self.gate.release(a.msg.run_id)
            a.message.ack()
            if fut.result() is not None:  # applied (not a stale outcome): count it
                applied.append((a, states[a.msg.run_id]))
        _count_outcomes(self.platform.meter, applied, self.platform.clock.now())

    async def _payload(self, a: _Attempt) -> Any:
        text = a.msg.payload if a.msg.payload is not None else a.start.payload
        if text is None and a.start.payload_packet:
            data = await self.platform.blobs.get(a.start.payload_packet)
            text = data.decode() if data is not None else None
        return loads(text) if text is not None else None

    async def _context(self, a: _Attempt, task: Task[Any], raw: Any) -> RunContext:
        state: dict[str, Any] = {"checkpoints": [], "steps": {}}
        if a.start.resumed:
            state = await self.runs(a.msg.run_id)(RunObject.state)
        return self._bare_context(a, task, raw, state["checkpoints"], state["steps"])

    def _bare_context(
        self,
        a: _Attempt,
        task: Task[Any],
        raw: Any,
        checkpoints: list[dict[str, Any]] | None = None,
        steps: dict[str, str | None] | None = None,
    ) -> RunContext:
        """A run's context; without its checkpoints and steps, only to log to the run (a
        task that takes no context gets one only if the engine has a line to log)."""
        return RunContext(
            run_id=a.msg.run_id,
            task_id=task.id,
            attempt=a.start.attempt,
            payload=raw,
            writer=self.writer,
            clock=self.platform.clock,
            run_sync=self.platform.run_sync,
            checkpoints=checkpoints,
            steps=steps,
            metadata=a.start.metadata,
            tags=a.start.tags,
        )

    async def _attempt(
        self, task: Task[Any], ctx: RunContext | None, a: _Attempt, raw: Any
    ) -> _Result:
        """`ctx` is None for a task that takes none (and has no hooks)."""
        run_id, attempt = a.msg.run_id, a.start.attempt
        options = a.start.options
        outcome: dict[str, Any] = {"id": run_id, "attempt": attempt}
        try:
            payload = task.parse_payload(raw)
        except Exception as exc:
            outcome.update(state=RunState.FAILED, error=dumps(_error(exc)))
            return outcome, None
        max_duration = options.get("max_duration", task.max_duration)
        try:
            if a.go is not None and not await _went(a.go):  # a standby never let go
                self.gate.standbys.freed([run_id])
                outcome.update(state=RunState.QUEUED, due_at=self.platform.clock.now())
                return outcome, Next(_next(a.msg, attempt), 0.0)  # (in line again)
            await self._hook(task.on_start, ctx, payload, ctx)
            result = await self._call(task, payload, ctx, run_id, max_duration)
            try:
                output = dumps(result)  # what to_jsonable(result) would write
            except (TypeError, NonFiniteNumberError) as exc:  # it would fail again: no retry
                raise AbortTaskRunError(f"the output is not JSON-serializable: {exc}") from None
            size = len(output.encode())
            if size > self.config.payload_limit:
                raise AbortTaskRunError(
                    str(PayloadTooLargeError(size, self.config.payload_limit, "output"))
                )
        except Suspended:  # it waits: the delivery ends, its slot is released (waits/)
            outcome["state"] = RunState.WAITING
            return outcome, None
        except asyncio.CancelledError:
            running = self.running.get(run_id)
            reason = running.stop_reason if running else None
            if reason in ("slice", "shutdown"):
                (ctx or self._bare_context(a, task, raw)).logger.info(
                    f"attempt {attempt} continued after a {reason}; it resumes "
                    "from its last checkpoint"
                )
                outcome.update(state=RunState.QUEUED, due_at=self.platform.clock.now())
                return outcome, Next(_next(a.msg, attempt), 0.0)
            if reason is None:
                raise
            return {}, None  # canceled or lease lost: nothing to record
        except Exception as exc:
            kind: Literal["error", "abort", "timeout"] = (
                "timeout"
                if isinstance(exc, _Timeout)
                else ("abort" if isinstance(exc, AbortTaskRunError) else "error")
            )
            err = _error(exc)
            decision = decide_failure(
                task.retry, attempt, kind=kind, max_attempts=options.get("max_attempts")
            )
            line = f"attempt {attempt} failed: {err['name']}: {err['message']}"
            (ctx or self._bare_context(a, task, raw))._log("error", line, {}, engine=True)
            outcome["error"] = dumps(err)
            if isinstance(decision, Finish):
                outcome["state"] = decision.state
                await self._hook(task.on_failure, ctx, payload, exc, ctx)
                return outcome, None
            due = self.platform.clock.now() + decision.delay
            outcome.update(state=RunState.WAITING_FOR_RETRY, due_at=due)
            return outcome, Next(
                _next(a.msg, attempt + 1),
                min(decision.delay, self.config.max_message_delay),
            )
        if len(output) > self.config.packet_threshold:
            key = f"packets/{run_id}/output.json"
            await self.platform.blobs.put(key, output.encode())
            outcome["output_packet"] = key
        else:
            outcome["output"] = output
        outcome["state"] = RunState.COMPLETED
        outcome["progress"] = 1.0
        await self._hook(task.on_success, ctx, payload, result, ctx)
        return outcome, None

    async def _call(
        self,
        task: Task[Any],
        payload: Any,
        ctx: RunContext | None,
        run_id: str,
        max_duration: float | None,
    ) -> Any:
        if task.is_async:
            work: Any = task.invoke(payload, ctx)
        else:
            # in the attempt's context: a wait in the thread finds the run, and refuses
            in_run = contextvars.copy_context().run
            work = self.platform.run_sync(in_run, (task.invoke, payload, ctx))
        deadline: asyncio.Timeout | None = None
        try:
            if max_duration is None:
                result = await work
            else:
                async with asyncio.timeout(max_duration) as deadline:
                    result = await work
        except TimeoutError:
            self._finishing(run_id)
            # only the engine's own deadline means TIMED_OUT; a TimeoutError the task raised
            # (an upstream call's timeout) is an ordinary failure, retried as any other
            if deadline is not None and deadline.expired():
                raise _Timeout(f"attempt exceeded max_duration of {max_duration:g}s") from None
            raise
        except asyncio.CancelledError:
            raise
        except (Exception, Suspended):
            self._finishing(run_id)
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... from the task
            self._finishing(run_id)
            raise _TaskExit(exc) from exc  # this run's failure, never the process's
        self._finishing(run_id)
        return result

    def _finishing(self, run_id: str) -> None:
        """The user code is done: its outcome (hooks, packets, the write) must not be cut
        off by a slice's end, a shutdown or a lease check."""
        running = self.running.get(run_id)
        if running is not None:
            running.finishing = True

    async def _hook(self, hook: Any, ctx: RunContext | None, *args: Any) -> None:
        if hook is None:
            return
        assert ctx is not None  # a task with hooks takes a context (Task.takes_context)
        args = args[: arity(hook, len(args))]
        try:
            if inspect.iscoroutinefunction(hook):
                await hook(*args)
            else:  # a sync hook runs off the event loop, which renews the leases
                result = await self.platform.run_sync(hook, args)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # SystemExit too: the hook's failure, not the process's
            name = getattr(hook, "__name__", hook)
            ctx._log("error", f"hook {name} failed: {_describe(exc)}", {}, engine=True)

    # --- dead letters ----------------------------------------------------------------------

    async def handle_dead_letters(self, messages: Sequence[Message]) -> None:
        """Messages whose consumer died on every allowed delivery: record them, end their
        runs CRASHED (once the last consumer's lease has run out)."""
        letters: list[dict[str, Any]] = []
        parsed: list[tuple[Message, RunMessage]] = []
        for m in messages:
            try:
                msg = RunMessage.from_body(m.body)
            except (ValueError, TypeError):
                m.ack()
                continue
            parsed.append((m, msg))
            letters.append(
                {
                    "run_id": msg.run_id,
                    "task": msg.task,
                    "dispatch": msg.dispatch,
                    "body": dumps(m.body),
                    "deliveries": m.attempts,
                    "reason": "max deliveries exceeded",
                }
            )
        held = await self.index.dead_letter(letters, self.platform.clock.now())
        ended: list[dict[str, Any]] = []
        for m, msg in parsed:
            if msg.run_id in held:
                m.retry(min(held[msg.run_id], self.config.max_message_delay))
            else:
                m.ack()
                ended.append({"run_id": msg.run_id, "task": msg.task, "queue": msg.queue})
        await self.gate.release_finished(ended)  # the crashed runs' coordinator slots
        for run in ended:  # metrics: locally a dead-lettered run ends crashed, at once
            self.platform.meter.count("dead_lettered", run["task"])
            self.platform.meter.count("crashed", run["task"])
        self.platform.meter.flush()


_Result = tuple[dict[str, Any], Next | None]  # an attempt's outcome and its next message
_COUNTED = {
    RunState.COMPLETED.value: "completed",
    RunState.FAILED.value: "failed",
    RunState.TIMED_OUT.value: "failed",
    RunState.WAITING_FOR_RETRY.value: "retried",
}


def _count_starts(meter: Meter, attempts: list[_Attempt]) -> None:
    """Metrics: the runs' first starts, and how long after its trigger each came (a batch's
    in one call per task)."""
    waits: dict[str, list[float]] = {}
    for a in attempts:
        s = a.start
        if s.attempt == 1 and not s.resumed:
            waits.setdefault(s.task, []).append(s.started_at - s.created_at)
    for task, values in waits.items():
        meter.count("started", task, len(values))
        meter.observe_many("trigger_to_start", task, values)
    meter.flush()


def _count_outcomes(meter: Meter, applied: list[tuple[_Attempt, str]], now: float) -> None:
    """Metrics: applied outcomes, and the final ones' durations since each run first
    started (a wave's in one call per task and event)."""
    counts: dict[tuple[str, str], int] = {}
    durations: dict[str, list[float]] = {}
    for a, state in applied:
        event = _COUNTED.get(state)
        if event is None:
            continue
        key = (event, a.start.task)
        counts[key] = counts.get(key, 0) + 1
        if event != "retried":
            durations.setdefault(a.start.task, []).append(now - a.start.started_at)
    for (event, task), n in counts.items():
        meter.count(event, task, n)
    for task, values in durations.items():
        meter.observe_many("duration", task, values)
    meter.flush()


async def _went(go: asyncio.Future[None]) -> bool:
    """Wait for a standby's go-ahead (coordinator/standby.py), for `STANDBY_WAIT` at most:
    False if none came (the runs of its key here were not counted as they should be, say).
    A cancel meanwhile (a slice's end, a shutdown) ends the attempt as it would any."""
    try:
        await asyncio.wait_for(asyncio.shield(go), STANDBY_WAIT)
    except TimeoutError:
        return False
    return True


def _start_task(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    """A task for `coro`, started eagerly where Python can (3.12+): its first step runs
    now, as the current task, in a context of its own."""
    if _EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return loop.create_task(coro)


_EAGER = sys.version_info >= (3, 12)
STANDBY_WAIT = 5.0  # seconds a standby waits for a run of its key to end here


def _next(msg: RunMessage, attempt: int) -> RunMessage:
    """The message of a run's next attempt or continuation (its queue and keys kept)."""
    return RunMessage(
        msg.run_id,
        msg.task,
        attempt,
        queue=msg.queue,
        key=msg.key,
        rate_key=msg.rate_key,
        trace=msg.trace,
    )


class _SystemFailure(Exception):
    pass


class _Timeout(Exception):
    pass


class _TaskExit(Exception):
    """A BaseException a task raised (SystemExit, KeyboardInterrupt): its run's failure."""

    def __init__(self, original: BaseException) -> None:
        self.original = original
        super().__init__(_describe(original))


def _describe(exc: BaseException) -> str:
    """`str(exc)`, even when its `__str__` raises."""
    try:
        return str(exc)
    except Exception as broken:
        return f"<{type(exc).__name__}: str() failed with {type(broken).__name__}>"


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, _TaskExit):
        exc = exc.original
    name = "TimeoutError" if isinstance(exc, _Timeout) else type(exc).__name__
    try:
        stack = "".join(traceback.format_exception(exc))
    except Exception:  # a broken __str__ breaks the formatting too
        stack = "".join(traceback.format_tb(exc.__traceback__))
    return {
        "name": name,
        "message": truncate(_describe(exc), MAX_ERROR_MESSAGE_CHARS),
        "stackTrace": truncate(stack, MAX_STACK_CHARS, keep="tail"),
    }
