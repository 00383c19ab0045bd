"""`ctx`, the run context a task receives: checkpoints, durable steps, progress, logs, metadata."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, InvalidDurationError, MisuseError
from ..ports import Clock, SyncRunner
from ..shared import tracing
from ..shared.checkpoints import Checkpoint
from ..shared.current import RunWaiter, current_run
from ..shared.durations import MAX_DURATION_SECONDS, Duration, parse_duration
from ..shared.limits import (
    MAX_CHECKPOINT_BYTES,
    MAX_LOG_BYTES,
    MAX_METADATA_BYTES,
    check_size,
    truncate,
)
from ..shared.serialization import dumps, loads, to_jsonable
from .writer import Writer

if TYPE_CHECKING:
    from ..waitpoints.resume import WaitResult
    from ..waitpoints.run_tokens import RunToken

LEVELS = ("debug", "info", "warn", "error")
_SYNC_WAIT = (
    "ctx.{name}: only async tasks can wait (a wait suspends the run, which a sync def task "
    "cannot do); make the task `async def` and `await ctx.wait_for(...)`"
)


class RunLogger:
    """Structured run logs: `ctx.logger.info("message", key=value, ...)`."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def log(self, level: str, message: str, /, **extras: Any) -> None:
        if level not in LEVELS:
            raise InvalidArgumentError(f"log level must be one of {LEVELS}, not {level!r}")
        self._ctx._log(level, str(message), extras)

    def debug(self, message: str, /, **extras: Any) -> None:
        self.log("debug", message, **extras)

    def info(self, message: str, /, **extras: Any) -> None:
        self.log("info", message, **extras)

    def warn(self, message: str, /, **extras: Any) -> None:
        self.log("warn", message, **extras)

    warning = warn

    def error(self, message: str, /, **extras: Any) -> None:
        self.log("error", message, **extras)


class RunMetadata:
    """The run's metadata (a JSON object), visible in its status while it runs."""

    def __init__(self, ctx: RunContext, initial: dict[str, Any]) -> None:
        self._ctx = ctx
        self._data = dict(initial)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._change({**self._data, key: to_jsonable(value)})

    def update(self, values: dict[str, Any]) -> None:
        self._change({**self._data, **to_jsonable(values)})

    def _change(self, data: dict[str, Any]) -> None:
        """Adopt `data` unless it is over the limit (then nothing changes)."""
        check_size(dumps(data), MAX_METADATA_BYTES, "metadata")
        self._data = data
        self._ctx._changed_metadata()

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]


class RunContext:
    def __init__(
        self,
        *,
        run_id: str,
        task_id: str,
        attempt: int,
        payload: Any,
        writer: Writer,
        clock: Clock,
        run_sync: SyncRunner | None = None,
        checkpoints: list[dict[str, Any]] | None = None,
        steps: dict[str, str | None] | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.task_id = task_id
        self.attempt = attempt
        self.payload = payload
        self.tags = list(tags or [])
        self._writer = writer
        self._clock = clock
        self._run_sync = run_sync
        self._loop = asyncio.get_running_loop()  # a sync task's thread reports through it
        # (what most runs never touch is made when first used: a noop's context costs
        # a few attribute stores)
        self._checkpoint_records = checkpoints
        self._step_records = steps
        self._initial_metadata = metadata
        self._span = tracing.active.current() if tracing.active is not None else None
        self._tokens_made = 0  # ctx.wait_token calls so far (a replay makes the same again)
        self._events_waited = 0  # ctx.wait_for_event calls so far

    def __repr__(self) -> str:
        return f"<RunContext {self.run_id} {self.task_id} attempt {self.attempt}>"

    @functools.cached_property
    def metadata(self) -> RunMetadata:
        """The run's metadata (`ctx.metadata.set(...)`, `.update(...)`, `.get(...)`)."""
        return RunMetadata(self, self._initial_metadata or {})

    @functools.cached_property
    def logger(self) -> RunLogger:
        """Lines logged to the run (`ctx.logger.info(...)`), durable and streamed live."""
        return RunLogger(self)

    @functools.cached_property
    def _checkpoints(self) -> list[Checkpoint]:
        return [Checkpoint.from_record(c) for c in self._checkpoint_records or []]

    @functools.cached_property
    def _steps(self) -> dict[str, str | None]:
        return dict(self._step_records or {})

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint so far, in order, from earlier attempts and deliveries too."""
        return list(self._checkpoints)

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self._checkpoints[-1] if self._checkpoints else None

    def checkpoint_named(self, name: str) -> Checkpoint | None:
        """The latest checkpoint with this name."""
        for cp in reversed(self._checkpoints):
            if cp.name == name:
                return cp
        return None

    async def checkpoint(self, name: str, data: Any = None) -> None:
        """Record a checkpoint durably (it survives a crash once this returns)."""
        value = to_jsonable(data)
        text = dumps(value)
        check_size(text, MAX_CHECKPOINT_BYTES, f"checkpoint {name!r}")
        now = self._clock.now()
        # shielded: the flush is shared with other runs, and canceling this run (a cancel, a
        # slice's end) must not cancel their writes
        record = {"name": str(name), "data": text, "attempt": self.attempt, "at": now}
        await asyncio.shield(self._writer.append(self.run_id, "checkpoints", record))
        self._checkpoints.append(
            Checkpoint(str(name), value, self.attempt, datetime.fromtimestamp(now, UTC))
        )

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """A durable step: `fn`'s first successful result is stored and returned again,
        without calling `fn`, on every later attempt (as its JSON round-trip)."""
        if tracing.active is not None:
            with tracing.active.step(name, name in self._steps):
                return await self._step(name, fn)
        return await self._step(name, fn)

    async def _step(self, name: str, fn: Callable[[], Any]) -> Any:
        if name in self._steps:
            stored = self._steps[name]
            return loads(stored) if stored is not None else None
        if inspect.iscoroutinefunction(fn) or self._run_sync is None:
            result = fn()
        else:  # a sync step runs off the event loop, which renews the run's lease
            result = await self._run_sync(fn, ())
        if inspect.isawaitable(result):
            result = await result
        text = dumps(result)
        check_size(text, MAX_CHECKPOINT_BYTES, f"the result of step {name!r}")
        record = {"name": name, "result": text, "attempt": self.attempt, "at": self._clock.now()}
        await asyncio.shield(self._writer.append(self.run_id, "steps", record))
        self._steps[name] = text
        return result

    async def progress(self, fraction: float) -> None:
        """Report progress between 0 and 1 (visible in the run's status)."""
        value = float(fraction)
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise InvalidArgumentError(f"progress is a fraction from 0 to 1, not {fraction!r}")
        await asyncio.shield(self._writer.update(self.run_id, progress=value))

    # waits (waits/): the run suspends, WAITING, and replays when the time comes

    def wait_for(self, duration: Duration, *, key: str | None = None) -> Awaitable[None]:
        """Wait `duration` ("3d", seconds, timedelta). Up to 5 s it sleeps in place; longer,
        the run suspends: no worker, no concurrency slot, until it is due. Async tasks only."""
        seconds = parse_duration(duration)
        return self._waiter("wait_for").wait_until(self._clock.now() + seconds, key)

    def wait_until(self, when: datetime | float, *, key: str | None = None) -> Awaitable[None]:
        """Wait until `when` (a datetime, naive meaning UTC, or epoch seconds)."""
        if isinstance(when, datetime):
            at = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        elif isinstance(when, int | float) and not isinstance(when, bool) and math.isfinite(when):
            at = float(when)
        else:
            raise InvalidArgumentError(f"wait_until takes a datetime or epoch seconds: {when!r}")
        if at - self._clock.now() > MAX_DURATION_SECONDS:
            raise InvalidDurationError(when, "more than 10 years ahead")
        return self._waiter("wait_until").wait_until(at, key)

    async def wait_token(
        self,
        *,
        timeout: Any = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Any = None,
        tags: str | list[str] | None = None,
    ) -> RunToken:
        """A wait token (Trigger.dev's `wait.createToken`): hand out `token.url`, then
        `await token.wait()` suspends the run until it is completed (waitpoints/)."""
        from ..waitpoints.run_tokens import create_token

        self._tokens_made += 1
        return await create_token(
            self._waiter("wait_token"),  # type: ignore[arg-type]
            self._tokens_made,
            timeout=timeout,
            idempotency_key=idempotency_key,
            idempotency_key_ttl=idempotency_key_ttl,
            tags=tags,
        )

    async def wait_for_event(
        self,
        name: str,
        *,
        match: dict[str, Any] | None = None,
        timeout: Any = None,
        lookback: Any = None,
    ) -> WaitResult:
        """Suspend the run until the first event `name` whose fields equal `match` (dotted
        paths: `{"payload.account": "a1"}`) is sent, after this call or within `lookback`
        before it: `WaitResult(ok=True, output={id, name, payload, timestamp})`, or
        `ok=False` on `timeout`."""
        from ..waitpoints.run_tokens import wait_for_event

        self._events_waited += 1
        return await wait_for_event(
            self._waiter("wait_for_event"),  # type: ignore[arg-type]
            self._events_waited,
            name,
            match=match,
            timeout=timeout,
            lookback=lookback,
        )

    def wait_for_sync(self, duration: Duration, *, key: str | None = None) -> None:
        raise MisuseError(_SYNC_WAIT.format(name="wait_for_sync"))

    def wait_until_sync(self, when: datetime | float, *, key: str | None = None) -> None:
        raise MisuseError(_SYNC_WAIT.format(name="wait_until_sync"))

    def _waiter(self, name: str) -> RunWaiter:
        if not self._in_loop():
            raise MisuseError(_SYNC_WAIT.format(name=name))
        waiter = current_run.get()
        if waiter is None or waiter.run_id != self.run_id:
            raise MisuseError(f"ctx.{name} works only inside the run's own attempt")
        return waiter

    # sync twins, for sync task functions (they run in a thread on the embedded runtime)

    def checkpoint_sync(self, name: str, data: Any = None) -> None:
        self._from_thread(self.checkpoint(name, data), "checkpoint")

    def step_sync(self, name: str, fn: Callable[[], Any]) -> Any:
        return self._from_thread(self.step(name, fn), "step")

    def progress_sync(self, fraction: float) -> None:
        self._from_thread(self.progress(fraction), "progress")

    def _from_thread(self, coro: Any, name: str) -> Any:
        if self._in_loop():
            coro.close()
            raise MisuseError(f"ctx.{name}_sync is for sync task functions: use await ctx.{name}")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn` on the run's event loop: now if we are on it, else from this thread."""
        if self._in_loop():
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _log(
        self, level: str, message: str, extras: dict[str, Any], *, engine: bool = False
    ) -> None:
        """A user's log line over the limit is refused (`PayloadTooLargeError`); the
        engine's own lines (`engine=True`, e.g. an attempt's error) are truncated."""
        text = dumps(to_jsonable(extras)) if extras else None
        if engine:
            message = truncate(message, MAX_LOG_BYTES // 4)
        else:
            check_size(message + (text or ""), MAX_LOG_BYTES, "log line")
        record = {
            "level": level,
            "message": message,
            "attempt": self.attempt,
            "at": self._clock.now(),
            "extras": text,
        }
        self._soon(self._writer.append, self.run_id, "logs", record)
        if self._span is not None and tracing.active is not None:  # an event on the attempt
            tracing.active.log(self._span, level, message, text)

    def _changed_metadata(self) -> None:
        data = self.metadata.to_dict()
        self._soon(lambda: self._writer.update(self.run_id, metadata=data))
