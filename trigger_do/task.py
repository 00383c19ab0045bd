"""Task declarations: `task(id=..., run=fn)` or `@task(id=...)`, and the process's registry."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Generic, Protocol, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import (
    NonFiniteNumberError,
    PayloadValidationError,
    TaskDefinitionError,
    TriggerDoError,
)
from .sdk.handles import BatchHandle, Client, RunHandle
from .sdk.sync import run_sync
from .shared.current import current_run, outside_run_options
from .shared.durations import Duration, parse_duration
from .shared.options import BatchItem, errors_of
from .shared.retry import Retry, as_retry
from .shared.serialization import dumps, dumps_checked, has_non_finite
from .shared.specs import (
    Concurrency,
    QueueSpec,
    RateLimit,
    as_concurrency,
    as_rate_limit,
)
from .shared.subscriptions import as_subscription

R = TypeVar("R")
Hook = Callable[..., Any]
_TASK_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,127}$"

_REGISTRY: dict[str, Task[Any]] = {}


class Task(Generic[R]):
    """A declared task. Trigger it with `await t.trigger(payload)` and friends."""

    def __init__(
        self,
        *,
        id: str,
        run: Callable[..., Awaitable[R] | R],
        retry: Retry | dict[str, Any] | None = None,
        max_duration: Duration | None = None,
        queue: QueueSpec | str | None = None,
        concurrency: Concurrency | dict[str, Any] | int | None = None,
        rate_limit: RateLimit | dict[str, Any] | str | None = None,
        on_start: Hook | None = None,
        on_success: Hook | None = None,
        on_failure: Hook | None = None,
        event: str | None = None,
        source: str | None = None,
        secret: str | None = None,
    ) -> None:
        import re

        if not isinstance(id, str) or not re.match(_TASK_ID, id):
            raise TaskDefinitionError(
                f"invalid task id {id!r}: 1-128 letters, digits and - _ . : /"
            )
        if not callable(run):
            raise TaskDefinitionError(f"task {id!r}: run must be a function, not {run!r}")
        for name, hook in (
            ("on_start", on_start),
            ("on_success", on_success),
            ("on_failure", on_failure),
        ):
            if hook is not None and not callable(hook):
                raise TaskDefinitionError(f"task {id!r}: {name} must be callable, not {hook!r}")
        self.id = id
        self.fn = run
        self.retry = as_retry(retry)
        self.max_duration = (
            None if max_duration is None else parse_duration(max_duration, allow_zero=False)
        )
        if isinstance(queue, str):
            queue = QueueSpec(name=queue)
        if queue is not None and not isinstance(queue, QueueSpec):
            raise TaskDefinitionError(
                f"task {id!r}: queue must come from trigger_do.queue(...) or be a name"
            )
        self.queue = queue
        self.concurrency = as_concurrency(concurrency)
        self.rate_limit = as_rate_limit(rate_limit)
        # the events or webhook deliveries that start it (trigger_do/events/)
        self.subscription = as_subscription(id, event, source, secret)
        self.on_start, self.on_success, self.on_failure = on_start, on_success, on_failure
        self.is_async = inspect.iscoroutinefunction(run)
        self.module = getattr(run, "__module__", None) or ""
        self._adapter, self.payload_model = _payload_adapter(run)
        self._arity = arity(run)
        # whether a run needs its context built: the run function or a hook takes it
        self.takes_context = self._arity >= 2 or any((on_start, on_success, on_failure))
        _register(self)

    def __repr__(self) -> str:
        return f"<Task {self.id}>"

    @property
    def queue_name(self) -> str:
        return self.queue.name if self.queue else f"task/{self.id}"

    # --- payloads ------------------------------------------------------------------------

    def payload_json(self, payload: Any) -> str:
        """Validate against the run function's annotation; return the payload's JSON text."""
        if self._adapter is None:
            try:
                return dumps(payload)
            except TypeError as exc:
                raise PayloadValidationError(f"task {self.id!r}: payload {exc}") from None
            except NonFiniteNumberError as exc:
                raise PayloadValidationError(f"task {self.id!r}: payload: {exc}") from None
        try:
            value = self._adapter.validate_python(payload)
        except ValidationError as exc:
            errors = errors_of(exc)
            where = ", ".join(f"{e['loc']}: {e['msg']}" for e in errors)
            raise PayloadValidationError(
                f"task {self.id!r}: payload failed its schema: {where}", errors=errors
            ) from None
        if has_non_finite(value):  # pydantic's JSON mode would write them as null
            raise PayloadValidationError(f"task {self.id!r}: payload: {NonFiniteNumberError()}")
        return dumps_checked(self._adapter.dump_python(value, mode="json"))

    def parse_payload(self, payload: Any) -> Any:
        """The value the run function receives (a model instance when it asks for one)."""
        if self._adapter is None:
            return payload
        return self._adapter.validate_python(payload)

    def invoke(self, payload: Any, ctx: Any) -> Any:
        """Call the run function with as many of (payload, ctx) as it takes."""
        return self.fn(*(payload, ctx)[: self._arity])

    # --- triggering (the client decides where calls go: embedded or remote) -------------

    async def trigger(self, payload: Any = None, **options: Any) -> RunHandle:
        run = current_run.get()  # inside a run: a child of it (waits/)
        options = run.child_options(options) if run else outside_run_options(options)
        return await _current_client().trigger(self.id, payload, options, task=self)

    async def trigger_and_wait(
        self,
        payload: Any = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
        **options: Any,
    ) -> R:
        """Trigger a run and return its output. Inside an async task the caller suspends
        (WAITING, no worker, no slot) until the child ends (`timeout` does not apply);
        elsewhere it waits on the result (`key`: checked on a replay, waits/)."""
        run = current_run.get()
        if run is not None:

            async def start(extra: list[dict[str, Any]], _: str | None) -> list[tuple[str, bool]]:
                made = await _current_client().trigger(self.id, payload, extra[0], task=self)
                return [(made.id, made.is_cached)]

            done = await run.wait_children("run", 1, [options], start, key)
            return typing.cast(R, done[0])
        handle = await self.trigger(payload, **options)
        return typing.cast(R, await handle.result(timeout=timeout))

    async def batch_trigger(
        self, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> BatchHandle:
        return await batch_trigger_of(self.id, items, idempotency_key, self)

    async def batch_trigger_and_wait(
        self, items: Iterable[Any], *, timeout: float | None = None, key: str | None = None
    ) -> list[R]:
        """Every run's output in input order (`RunFailedError` for the first that did not
        complete). Inside an async task the caller suspends until the last one ends."""
        done = await batch_trigger_and_wait_of(self.id, items, timeout, key, self)
        return typing.cast(list[R], done)

    # sync twins, for code outside an event loop (Django, Flask, scripts)
    def trigger_sync(self, payload: Any = None, **options: Any) -> RunHandle:
        return run_sync(self.trigger(payload, **options))

    def trigger_and_wait_sync(
        self, payload: Any = None, *, timeout: float | None = None, **options: Any
    ) -> R:
        return run_sync(self.trigger_and_wait(payload, timeout=timeout, **options))

    def batch_trigger_sync(
        self, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> BatchHandle:
        return run_sync(self.batch_trigger(items, idempotency_key=idempotency_key))

    def batch_trigger_and_wait_sync(
        self, items: Iterable[Any], *, timeout: float | None = None
    ) -> list[R]:
        return run_sync(self.batch_trigger_and_wait(items, timeout=timeout))


_resolver: Callable[[], Client] | None = None


def set_client_resolver(resolver: Callable[[], Client]) -> None:
    """Where a task's own trigger calls go (`sdk/client.py` sets `current_client` when it is
    imported: this module then needs nothing above it)."""
    global _resolver
    _resolver = resolver


async def batch_trigger_of(
    task_id: str, items: Iterable[Any], idempotency_key: str | None, task: Task[Any] | None
) -> BatchHandle:
    """A batch of `task_id` (its `Task`, when the caller has it, validates the payloads
    here); inside a run, the batch's runs are its children."""
    pairs = [(task_id, item) for item in items]
    run = current_run.get()
    if run is not None:
        split = [as_batch_item(i) for _, i in pairs]
        pairs = [(task_id, BatchItem(p, **run.child_options(o))) for p, o in split]
    tasks = {task_id: task} if task is not None else None
    return await _current_client().batch_trigger(
        pairs, idempotency_key=idempotency_key, tasks=tasks
    )


async def batch_trigger_and_wait_of(
    task_id: str,
    items: Iterable[Any],
    timeout: float | None,
    key: str | None,
    task: Task[Any] | None,
) -> list[Any]:
    """Every run's output in input order; inside an async task the caller suspends (as a
    run waiting on its children) until the last one ends."""
    run = current_run.get()
    if run is None:
        batch = await batch_trigger_of(task_id, items, None, task)
        return await batch.results(timeout=timeout)
    parts = [as_batch_item(i) for i in items]
    tasks = {task_id: task} if task is not None else None

    async def start(extra: list[dict[str, Any]], batch_key: str | None) -> list[tuple[str, bool]]:
        pairs = [(task_id, BatchItem(p, **e)) for (p, _), e in zip(parts, extra, strict=True)]
        batch = await _current_client().batch_trigger(pairs, idempotency_key=batch_key, tasks=tasks)
        return [(r.id, r.is_cached) for r in batch.runs]

    return await run.wait_children("batch", len(parts), [o for _, o in parts], start, key)


def _current_client() -> Client:
    if _resolver is None:  # pragma: no cover - `import trigger_do` sets it
        raise TriggerDoError("no SDK client: import trigger_do (which loads trigger_do.sdk)")
    return _resolver()


class TaskDecorator(Protocol):
    """What `task(id=...)` without `run` returns: it makes the function it decorates a
    `Task` whose output type is the function's (awaited, for an async one)."""

    @overload
    def __call__(  # (an async function: its awaited output)
        self, fn: Callable[..., Coroutine[Any, Any, R]], /
    ) -> Task[R]: ...

    @overload
    def __call__(self, fn: Callable[..., R], /) -> Task[R]: ...


@overload
def task(id: str, run: None = None, **options: Any) -> TaskDecorator: ...


@overload
def task(  # (an async function: its awaited output)
    id: str, run: Callable[..., Coroutine[Any, Any, R]], **options: Any
) -> Task[R]: ...


@overload
def task(id: str, run: Callable[..., R], **options: Any) -> Task[R]: ...


def task(
    id: str, run: Callable[..., Any] | None = None, **options: Any
) -> Task[Any] | TaskDecorator:
    """Declare a task: `task(id="x", run=fn, ...)` returns a `Task`; without `run` it is a
    decorator: `@task(id="x", retry=Retry(max_attempts=5))`."""
    allowed = set(inspect.signature(Task.__init__).parameters) - {"self", "id", "run"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TaskDefinitionError(
            f"task {id!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(sorted(allowed))})"
        )
    if run is not None:
        return Task(id=id, run=run, **options)

    def decorate(fn: Callable[..., Any]) -> Task[Any]:
        return Task(id=id, run=fn, **options)

    return decorate


def _register(t: Task[Any]) -> None:
    old = _REGISTRY.get(t.id)
    if old is not None and (_origin(old.fn) != _origin(t.fn)):
        raise TaskDefinitionError(
            f"duplicate task id {t.id!r}: already defined by {_origin(old.fn)}"
        )
    _REGISTRY[t.id] = t


def _origin(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def find_task(task_id: str) -> Task[Any] | None:
    return _REGISTRY.get(task_id)


def registered_tasks() -> dict[str, Task[Any]]:
    return dict(_REGISTRY)


def declared_limits() -> dict[str, int | None]:
    """Each queue this process's tasks use, with the concurrency limit they declare for the
    whole queue (a shared queue's limit, or an unkeyed concurrency limit), else None."""
    out: dict[str, int | None] = {}
    for t in registered_tasks().values():
        limit = None
        if t.queue is not None and t.queue.concurrency_limit is not None:
            limit = t.queue.concurrency_limit
        elif t.concurrency is not None and t.concurrency.key is None:
            limit = t.concurrency.limit
        if out.get(t.queue_name) is None:
            out[t.queue_name] = limit
    return out


def tasks_in(module: Any) -> dict[str, Task[Any]]:
    """The tasks a module defines (its attributes that are `Task`s)."""
    return {v.id: v for v in vars(module).values() if isinstance(v, Task)}


def _payload_adapter(fn: Callable[..., Any]) -> tuple[TypeAdapter[Any] | None, type | None]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except NameError as exc:  # Python 3.14 evaluates annotations here
        raise TaskDefinitionError(f"an annotation of {_name(fn)} does not resolve: {exc}") from None
    except (TypeError, ValueError):
        return None, None
    if not params:
        return None, None
    ann = _payload_annotation(fn, params[0])
    if ann is None or ann is Any or ann is object:
        return None, None
    model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    try:
        return TypeAdapter(ann), model
    except Exception as exc:
        raise TaskDefinitionError(
            f"the payload annotation {ann!r} of {fn!r} is not a type pydantic can validate: {exc}"
        ) from None


def _payload_annotation(fn: Callable[..., Any], param: inspect.Parameter) -> Any:
    """The payload parameter's annotation, resolved. One that does not resolve fails here,
    where the task is defined (silently validating nothing would accept any payload); the
    other parameters' annotations (`ctx`, perhaps imported only for type checking) may."""
    try:
        return typing.get_type_hints(fn).get(param.name)
    except Exception:
        raw = param.annotation
    if raw is inspect.Parameter.empty:
        return None
    try:
        while isinstance(raw, str):  # "'T'" under `from __future__ import annotations`
            raw = eval(raw, getattr(fn, "__globals__", {}))  # as get_type_hints does
        return raw
    except Exception as exc:
        raise TaskDefinitionError(
            f"the payload annotation {raw!r} of {_name(fn)} does not resolve: {exc} (import "
            "the type where the task is defined, or annotate with dict or Any)"
        ) from None


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", fn))


def arity(fn: Callable[..., Any], most: int = 2) -> int:
    """How many of `most` positional arguments `fn` takes (of (payload, ctx) for a run
    function; of (payload, output, ctx) for a hook)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return most
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return most
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(len(positional), most)


def as_batch_item(item: Any) -> tuple[Any, dict[str, Any]]:
    if isinstance(item, BatchItem):
        return item.payload, item.options
    return item, {}
