"""The ports: the few IO contracts the engine is written against.

Every platform implements exactly these (``platform/local`` on SQLite and processes,
``platform/cloudflare`` on Worker bindings). The engine never imports a platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, cast

from .errors import SqlRuleError

T = TypeVar("T")
JSON = Any  # a JSON-native value: dict, list, str, int, float, bool or None

MAX_SQL_PARAMS = 100  # a Durable Object's sql.exec binds at most 100 parameters
MAX_ROW_BYTES = 2_000_000  # a Durable Object row (and a bound string) stays under 2 MB
MAX_SEND_BATCH = 100  # Cloudflare Queues: at most 100 messages per sendBatch
MAX_MESSAGE_BYTES = 128_000  # Cloudflare Queues: 128 KB per message


_TX_WORDS = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")


MAX_SAFE_INTEGER = 2**53 - 1
_TEXT = (str, bytes)  # (a tuple: `str | bytes` would build a union on every check)


def check_statement(query: str, params: tuple[Any, ...]) -> None:
    """The rules every `Sql` implementation enforces (a Durable Object's storage does):
    no transaction control in engine SQL, at most `MAX_SQL_PARAMS` parameters, no bound
    value over `MAX_ROW_BYTES`, no int a double cannot hold (a Durable Object binds every
    number as one). Raises `SqlRuleError`."""
    check_query(query)
    check_params(params)


def check_query(query: str) -> None:
    """`check_statement`'s rule on the statement itself (its text alone decides: a caller
    may check each distinct statement once)."""
    first = query.lstrip()[:10].split(None, 1)
    if first and first[0].upper().rstrip(";") in _TX_WORDS:
        raise SqlRuleError(f"engine SQL may not manage transactions: {query[:40]!r}")


def check_params(params: tuple[Any, ...]) -> None:
    """`check_statement`'s rules on the values bound."""
    if len(params) > MAX_SQL_PARAMS:
        raise SqlRuleError(f"{len(params)} bound parameters, over {MAX_SQL_PARAMS}")
    for p in params:
        if isinstance(p, _TEXT) and len(p) > MAX_ROW_BYTES:
            raise SqlRuleError(f"a bound value of {len(p)} bytes, over {MAX_ROW_BYTES}")
        if isinstance(p, int) and not -MAX_SAFE_INTEGER <= p <= MAX_SAFE_INTEGER:
            raise SqlRuleError(f"cannot bind {p}: past 2**53, a Durable Object rounds it")


class Sql(Protocol):
    """SQLite, one database per object (locally: one file shared by every object)."""

    def exec(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty for writes without RETURNING).
        Never BEGIN/COMMIT/SAVEPOINT; at most `MAX_SQL_PARAMS` parameters."""
        ...

    def transaction(self, fn: Callable[[], T]) -> T:
        """Run the synchronous `fn` atomically: all its statements commit, or none do."""
        ...


@dataclass(frozen=True)
class OutMessage:
    body: JSON
    delay_seconds: float = 0.0


class Queue(Protocol):
    """The producer side of a queue: at-least-once delivery of JSON-native bodies."""

    async def send_batch(self, messages: Sequence[OutMessage]) -> None:
        """Enqueue up to `MAX_SEND_BATCH` messages; each visible after its delay."""
        ...

    async def send_all(self, messages: Sequence[OutMessage]) -> None:
        """Enqueue any number of messages, in `send_batch`-sized chunks (a platform may
        send the chunks concurrently, or in one transaction)."""
        ...


class Message(Protocol):
    """One delivered message. Exactly one of ack/retry should be called; neither means retry."""

    id: str
    attempts: int  # deliveries so far, this one included (1 on the first delivery)
    timestamp: float  # epoch seconds when it was first enqueued
    body: JSON

    def ack(self) -> None: ...

    def retry(self, delay_seconds: float = 0.0) -> None: ...


READS = "__trigger_do_reads__"
M = TypeVar("M", bound=Callable[..., Any])


def reads(method: M) -> M:
    """Mark an object method that only reads its tables. A platform may run its calls on a
    snapshot beside the object's writes instead of in line with them: locally, a read
    transaction of SQLite's, which in WAL mode neither waits for the write lock nor holds
    it (a run's result polled, a page of the dashboard, a load test's progress no longer
    queue with the workers' writes), and a write in it fails. A Durable Object serializes
    its calls all the same."""
    setattr(method, READS, True)
    return method


class ObjectStub(Protocol):
    """A handle to one named object; calls on one object are serialized, each is a transaction
    (a method marked `reads` may run on a snapshot instead)."""

    async def call(self, method: str, *args: JSON, **kwargs: JSON) -> JSON: ...


class ObjectNamespace(Protocol):
    def get(self, name: str) -> ObjectStub: ...


Obj = TypeVar("Obj")
P = ParamSpec("P")
R = TypeVar("R")


class Remote(Generic[Obj]):
    """A typed handle to one object of class `Obj`: `await remote(Obj.method, *args)` is one
    call of `Obj.method` across the object boundary (the port's `call`, named by the method
    itself), so mypy checks the arguments against the method's own signature and types the
    result as what it returns, and go-to-definition leads to the method. The clients the engine uses
    (`runs/client.py`, `coordinator/client.py`) are built on it; nothing else calls a stub."""

    def __init__(self, stub: ObjectStub) -> None:
        self.stub = stub

    async def __call__(
        self, method: Callable[Concatenate[Obj, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        return cast(R, await self.stub.call(method.__name__, *args, **kwargs))


class Blobs(Protocol):
    """Packets: large payloads and outputs."""

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...


class Settings(Protocol):
    """Secrets and configuration (locally os.environ; on Cloudflare the Worker's env)."""

    def get(self, name: str, default: str | None = None) -> str | None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...


class Timers(Protocol):
    """How due timers reach the engine where one database holds many objects (locally).

    A timer is a due time for a key, set by its owning object in its own transaction
    (`shared.timers.ObjectTimers`). Locally the runtime's supervisor asks `due(now)` for the
    objects with a timer due and calls `Engine.fire_timers(kind, name)` for each. On
    Cloudflare there is no such port (`Platform.timers` is None): each Durable Object's one
    alarm is kept at its earliest timer and fires them itself."""

    def due(self, now: float) -> list[tuple[str, str]]:
        """`(kind, name)` of every object with a timer due at `now`."""
        ...


class Changes(Protocol):
    """Whether anything was written since a moment: how held Realtime subscriptions learn
    that they should look again (`realtime/watcher.py`), without reading per request."""

    def version(self) -> int:
        """A number that moves whenever any process commits a write (locally SQLite's
        `PRAGMA data_version` on a connection that never writes)."""
        ...


SyncRunner = Callable[[Callable[..., Any], tuple[Any, ...]], Awaitable[Any]]
"""Runs a sync task function without blocking the event loop (a thread pool locally,
inline on Cloudflare, where there are no threads)."""

UnitRunner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs an async function's object calls and queue sends as one transaction (`Platform.unit`)."""


class Meter(Protocol):
    """Where the engine counts what it causes, in the process that causes it (metrics):
    true counters, never recomputed from rows. Each call is cheap and never raises.
    `count(event, task, n)`: triggered, started, completed, failed, retried, crashed,
    dead_lettered; `observe(what, task, seconds)`: trigger_to_start, duration;
    `observe_many(what, task, values)`: several at once (a batch's, one call).
    `flush()`: what was counted reaches the other processes now (the consumer calls it once
    its outcomes are durable, so a process killed after loses none of their counts);
    `collect()`: prometheus-client metric families of the counts of every process so far."""

    def count(self, event: str, task: str, n: int = 1) -> None: ...

    def observe(self, what: str, task: str, seconds: float) -> None: ...

    def observe_many(self, what: str, task: str, values: Sequence[float]) -> None: ...

    def flush(self) -> None: ...

    def collect(self) -> list[Any]: ...


class NoMeter:
    """Counts nothing (metrics off, or a platform without them)."""

    def count(self, event: str, task: str, n: int = 1) -> None:
        pass

    def observe(self, what: str, task: str, seconds: float) -> None:
        pass

    def observe_many(self, what: str, task: str, values: Sequence[float]) -> None:
        pass

    def flush(self) -> None:
        pass

    def collect(self) -> list[Any]:
        return []


NO_METER = NoMeter()


@dataclass
class Platform:
    """Everything the engine needs from a platform, bundled."""

    queue: Queue
    objects: Callable[[str], ObjectNamespace]  # kind ("run-index", "run", "registry") -> ns
    blobs: Blobs
    settings: Settings
    clock: Clock
    run_sync: SyncRunner
    index_shards: int = 1
    timers: Timers | None = None  # None: objects wake themselves (Durable Object alarms)
    changes: Changes | None = None  # None: Realtime watchers read their feeds every second
    units: UnitRunner | None = None  # None: every object call is a transaction of its own
    meter: Meter = NO_METER  # metrics: what this process causes (platform/local/meter.py)

    async def unit(self, work: Callable[[], Awaitable[T]]) -> T:
        """`await work()` as one unit of work where the platform can make it one: locally
        (every object in one SQLite file) its object calls and queue sends commit together
        or not at all, each call still all or nothing by itself; elsewhere each call is its
        own transaction, in order, so a failure leaves the calls before it done. `work`
        awaits nothing but object calls and queue sends (locally they never suspend)."""
        if self.units is None:
            return await work()
        return cast(T, await self.units(work))
