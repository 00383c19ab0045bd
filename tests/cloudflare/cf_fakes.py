"""CPython fakes of the Cloudflare bindings trigger.do uses, mirroring their documented
shapes and limits as the Python Workers SDK (`workers-runtime-sdk`) hands them to Python:
JS-style method names, `retry({delaySeconds})`, alarms in epoch milliseconds, and values
already converted by the SDK's wrappers (a message's Date as a naive `datetime`, JS null as
None, an ArrayBuffer as a `memoryview`, an integral number as an `int`; bindings and bodies
taken as plain Python values). `ctx.storage.sql` is a real SQLite connection, one per object.

They keep the contract tests fast. The same scenarios also run under real Pyodide through the
real SDK over JS stand-ins with workerd's class names (tests/pyodide/sdk_cloud.py,
workerd.mjs): that run is the one that proves the shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import itertools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


# --- the value boundary, as the SDK crosses it ------------------------------------------------


def _numbers(value: Any) -> Any:
    """A JS number as Pyodide hands it to Python: an int when it is a safe integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return float(value)  # a JS number is a double: precision is lost past 2**53
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return memoryview(value)  # an ArrayBuffer, through python_from_rpc
    return value


def js_value(value: Any) -> Any:
    """A JSON-native Python value as the SDK hands back what a runtime API returned."""
    return _numbers(json.loads(json.dumps(value)))


def js_date(ms: float) -> datetime.datetime:
    """A JS Date through the SDK: `datetime.fromtimestamp(ms / 1000)`, naive, local time."""
    return datetime.datetime.fromtimestamp(ms / 1000)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


class JsError(Exception):
    """An exception thrown by a JS runtime API (its `Error` message kept verbatim)."""


class OffsetClock:
    """Wall time plus an offset the test can advance (queue visibility, alarms, the engine)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


# --- ctx.storage.sql ---------------------------------------------------------------------
# Mirrors https://developers.cloudflare.com/durable-objects/api/sql-storage/ (exec, cursor
# raw()/toArray()/one()/columnNames/rowsRead/rowsWritten), the SQL limits on
# https://developers.cloudflare.com/durable-objects/platform/limits/ (100 bound parameters,
# 2 MB strings/BLOBs/rows, 100 KB statements, 100 columns, 32 function arguments, 50-byte
# LIKE patterns), and workerd's src/workerd/api/sql.c++ (`SqlStorage::allowTransactions`
# refuses BEGIN/SAVEPOINT with the message below; names starting `_cf_` are refused;
# bindings are `kj::Maybe<kj::OneOf<kj::Array<byte>, kj::String, double>>`; every value
# comes back as a JS number, string, ArrayBuffer or null).

TRANSACTION_ERROR = (
    "To execute a transaction, please use the state.storage.transaction() or "
    "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The JavaScript API is safer because it will automatically roll back on "
    "exceptions, and because it interacts correctly with Durable Objects' automatic atomic "
    "write coalescing."
)
SQL_LIMITS = {
    "SQLITE_LIMIT_VARIABLE_NUMBER": 100,
    "SQLITE_LIMIT_LENGTH": 2_000_000,
    "SQLITE_LIMIT_SQL_LENGTH": 100_000,
    "SQLITE_LIMIT_COLUMN": 100,
    "SQLITE_LIMIT_FUNCTION_ARG": 32,
    "SQLITE_LIMIT_LIKE_PATTERN_LENGTH": 50,
}
_ALLOWED_PRAGMAS = {"table_info", "table_list", "index_info", "index_list", "foreign_keys"}


class FakeCursor:
    def __init__(self, columns: list[str], rows: list[list[Any]], read: int, written: int):
        self.columnNames = columns
        self._rows = rows
        self.rowsRead = read
        self.rowsWritten = written

    def raw(self) -> Any:
        """Rows as arrays (an iterator, as in JS)."""
        return iter([_numbers(list(r)) for r in self._rows])

    def toArray(self) -> Any:
        return js_value([dict(zip(self.columnNames, r, strict=True)) for r in self._rows])

    def one(self) -> Any:
        if len(self._rows) != 1:
            got = "no results" if not self._rows else "more than one row"
            raise JsError(f"Expected exactly one result from SQL query, but got {got}.")
        return js_value(dict(zip(self.columnNames, self._rows[0], strict=True)))

    def __iter__(self) -> Any:
        return iter(self.toArray())


class FakeSqlStorage:
    """`ctx.storage.sql` over one real SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._internal = False
        for name, value in SQL_LIMITS.items():
            conn.setlimit(getattr(sqlite3, name), value)
        conn.set_authorizer(self._authorize)
        self.statements: list[str] = []  # every statement run, for the tests' inspection

    def _authorize(self, action: int, arg1: Any, arg2: Any, db: Any, trigger: Any) -> int:
        if self._internal:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            self._denied = TRANSACTION_ERROR
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            self._denied = "not authorized"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA and str(arg1).lower() not in _ALLOWED_PRAGMAS:
            self._denied = f"not authorized: PRAGMA {arg1}"
            return sqlite3.SQLITE_DENY
        for name in (arg1, arg2):
            if isinstance(name, str) and name.startswith("_cf_"):
                self._denied = "access to _cf_ tables is not allowed"
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def exec(self, query: str, *bindings: Any) -> FakeCursor:
        if len(bindings) > SQL_LIMITS["SQLITE_LIMIT_VARIABLE_NUMBER"]:
            raise JsError("too many SQL variables: SQLITE_ERROR")
        params = [_binding(b) for b in bindings]
        self._denied: str | None = None
        before = self.conn.total_changes
        try:
            cur = self.conn.execute(query, params)
            rows = [list(r) for r in cur.fetchall()]
        except sqlite3.Error as exc:
            raise JsError(self._denied or f"{exc}: SQLITE_ERROR") from None
        self.statements.append(query)
        columns = [d[0] for d in cur.description or []]
        written = self.conn.total_changes - before
        return FakeCursor(columns, rows, max(len(rows), 1) if columns else written, written)

    @property
    def databaseSize(self) -> int:
        self._internal = True
        try:
            (pages,) = self.conn.execute("PRAGMA page_count").fetchone()
            (size,) = self.conn.execute("PRAGMA page_size").fetchone()
        finally:
            self._internal = False
        return int(pages * size)


def _binding(value: Any) -> Any:
    """A `sql.exec` binding as workerd takes it: string, number, ArrayBuffer(View) or null.
    A JS boolean would be coerced to the string "true"/"false" (`kj::String` in the OneOf):
    refused here so that the adapter must convert it."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise JsError("a boolean binding would be bound as the string 'true'/'false'")
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise JsError("a binding past 2**53 is not a JS number")
        return value
    if isinstance(value, float | str):
        if isinstance(value, str) and len(value.encode()) > SQL_LIMITS["SQLITE_LIMIT_LENGTH"]:
            raise JsError("string or blob too big: SQLITE_TOOBIG")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes(value)
    raise JsError(f"TypeError: cannot bind a {type(value).__name__}")


# --- ctx.storage: transactionSync and alarms ------------------------------------------------
# Mirrors https://developers.cloudflare.com/durable-objects/api/sqlite-storage-api/
# (`transactionSync(callback)`: runs callback synchronously in a transaction, returns its
# value, rolls back and rethrows if it throws; nested calls are savepoints) and
# https://developers.cloudflare.com/durable-objects/api/alarms/ (`setAlarm(epochMs)`,
# `getAlarm()` -> ms or null, `deleteAlarm()`; one alarm per object; each returns a Promise).


class FakeStorage:
    def __init__(self, conn: sqlite3.Connection, clock: OffsetClock) -> None:
        self.sql = FakeSqlStorage(conn)
        self.clock = clock
        self.alarm_ms: float | None = None
        self._depth = 0
        self.transactions = 0

    def transactionSync(self, callback: Callable[[], Any]) -> Any:
        sql = self.sql
        name = f"tx{self._depth}"
        sql._internal = True
        sql.conn.execute("BEGIN" if self._depth == 0 else f"SAVEPOINT {name}")
        sql._internal = False
        self._depth += 1
        try:
            result = callback()
        except BaseException:
            self._depth -= 1
            sql._internal = True
            sql.conn.execute("ROLLBACK" if self._depth == 0 else f"ROLLBACK TO {name}")
            sql._internal = False
            raise
        self._depth -= 1
        sql._internal = True
        sql.conn.execute("COMMIT" if self._depth == 0 else f"RELEASE {name}")
        sql._internal = False
        self.transactions += 1
        return result

    async def setAlarm(self, scheduled_ms: Any) -> None:
        ms = float(scheduled_ms)
        if ms != ms or ms < 0:
            raise JsError("TypeError: setAlarm() takes epoch milliseconds")
        self.alarm_ms = ms

    async def getAlarm(self) -> Any:
        return None if self.alarm_ms is None else self.alarm_ms

    async def deleteAlarm(self) -> None:
        self.alarm_ms = None


# --- WebSockets and the Hibernation API ------------------------------------------------------
# Mirrors https://developers.cloudflare.com/workers/runtime-apis/websockets/ (`new
# WebSocketPair()`, whose `Object.values()` are [client, server]; `send`, `close(code,
# reason)`: code 1000, 1001-1003, 1007-1014 or 3000-4999, reason at most 123 bytes; `send`
# after close throws), https://developers.cloudflare.com/durable-objects/best-practices/websockets/
# (hibernation: the object may be evicted whenever no event handler runs while its accepted
# sockets stay open; the constructor runs again on the next event; `serializeAttachment`
# keeps a structured clone of at most 16,384 bytes, `deserializeAttachment()` returns it or
# null) and https://developers.cloudflare.com/durable-objects/api/state/ (`acceptWebSocket(ws,
# tags)`: a server end not already `accept()`ed, at most 10 tags of at most 256 characters,
# at most 32,768 sockets per object; `getWebSockets(tag?)`: the accepted sockets still
# connected, with that tag; `getTags(ws)`). Handlers: `webSocketMessage(ws, message)`,
# `webSocketClose(ws, code, reason, wasClean)`, `webSocketError(ws, error)`. With
# compatibility date 2026-04-07 or later (`web_socket_auto_reply_to_close`) the runtime
# answers a client's Close frame itself; calling `close()` afterwards is allowed.
# In Pyodide a JS `WebSocketPair` is built with `WebSocketPair.new()` and destructured with
# `.object_values()` (the JsProxy method for `Object.values`).

ATTACHMENT_LIMIT = 16_384
MAX_TAGS, MAX_TAG_CHARS, MAX_SOCKETS = 10, 256, 32_768
_CLOSE_CODES = {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}


class FakeWebSocket:
    """One end of a `WebSocketPair`. The server end goes to the Durable Object; the client
    end is what the caller (here: the test, as the remote client) holds."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.peer: FakeWebSocket | None = None
        self.accepted = False  # `accept()` (standard API) or `acceptWebSocket` (hibernation)
        self.hibernatable = False
        self.closed: tuple[int, str] | None = None  # the close this end received or sent
        self.received: list[Any] = []  # messages that arrived at this end
        self._attachment: str | None = None
        self.arrived = asyncio.Event()  # set whenever a message or the close arrives

    # -- the standard API -------------------------------------------------------------------
    def accept(self) -> None:
        if self.accepted:
            raise JsError("TypeError: WebSocket already accepted")
        self.accepted = True

    def send(self, message: Any) -> None:
        if self.role == "server" and not self.accepted:
            raise JsError("TypeError: You must call accept() on this WebSocket before sending")
        if self.closed is not None:
            raise JsError("TypeError: Can't call WebSocket send() after close().")
        assert self.peer is not None
        text = (message)
        if not isinstance(text, str | bytes):
            raise JsError("TypeError: WebSocket send() takes a string or an ArrayBuffer")
        self.peer.received.append(text)
        self.peer.arrived.set()
        if self.peer.hub is not None:  # a client's message: the object's handler runs later
            self.peer.hub.events.append(("message", self.peer, text))

    def close(self, code: Any = 1000, reason: Any = "") -> None:
        code, reason = int(code), str((reason) or "")
        if code not in _CLOSE_CODES:
            raise JsError(f"TypeError: Invalid WebSocket close code: {code}.")
        if len(reason.encode()) > 123:
            raise JsError("TypeError: the close reason is longer than 123 bytes")
        if self.closed is not None:
            return  # closing twice (e.g. after the runtime's auto-reply) does nothing
        self.closed = (code, reason)
        assert self.peer is not None
        if self.peer.closed is None:
            self.peer.closed = (code, reason)
            self.peer.arrived.set()
            if self.peer.role == "server":  # a client closing: the object hears of it
                hub = self.peer.hub
                if hub is not None:
                    hub.events.append(("close", self.peer, code, reason))

    hub: FakeSocketHub | None = None

    # -- the hibernation extensions --------------------------------------------------------
    def serializeAttachment(self, value: Any) -> None:
        text = json.dumps(value)
        if len(text.encode()) > ATTACHMENT_LIMIT:
            raise JsError(f"serializeAttachment: over {ATTACHMENT_LIMIT} bytes serialized")
        self._attachment = text

    def deserializeAttachment(self) -> Any:
        return None if self._attachment is None else js_value(json.loads(self._attachment))

    # -- for the tests (the remote client's view) ------------------------------------------
    def messages(self) -> list[Any]:
        return [json.loads(m) for m in self.received]


class _Pair:
    def __init__(self) -> None:
        self.client, self.server = FakeWebSocket("client"), FakeWebSocket("server")
        self.client.peer, self.server.peer = self.server, self.client

    def object_values(self) -> list[FakeWebSocket]:
        return [self.client, self.server]


class FakeWebSocketPair:
    """`WebSocketPair` as Python sees the JS class (`WebSocketPair.new()`)."""

    @staticmethod
    def new() -> _Pair:
        return _Pair()


@dataclass
class FakeUpgradeResponse:
    """`new Response(null, {status: 101, webSocket: client})`."""

    webSocket: FakeWebSocket
    status: int = 101


class FakeSocketHub:
    """The runtime's side of one object's hibernatable sockets: they outlive its instances."""

    def __init__(self) -> None:
        self.sockets: list[tuple[FakeWebSocket, list[str]]] = []
        self.events: list[tuple[Any, ...]] = []  # client messages/closes not yet delivered

    def accept(self, ws: Any, tags: Any = None) -> None:
        if not isinstance(ws, FakeWebSocket) or ws.role != "server":
            raise JsError("TypeError: acceptWebSocket() takes the server end of a WebSocketPair")
        if ws.accepted:
            raise JsError(
                "TypeError: this WebSocket was already accepted (call only one of "
                "accept() and acceptWebSocket())"
            )
        names = [str(t) for t in ((tags) or [])]
        if len(names) > MAX_TAGS or any(len(t) > MAX_TAG_CHARS for t in names):
            raise JsError(f"acceptWebSocket: at most {MAX_TAGS} tags of {MAX_TAG_CHARS} chars")
        if len(self.live()) >= MAX_SOCKETS:
            raise JsError(f"acceptWebSocket: at most {MAX_SOCKETS} WebSockets per object")
        ws.accepted = ws.hibernatable = True
        ws.hub = self
        self.sockets.append((ws, names))

    def live(self, tag: str | None = None) -> list[FakeWebSocket]:
        return [
            ws for ws, tags in self.sockets if ws.closed is None and (tag is None or tag in tags)
        ]


@dataclass
class FakeState:
    """`ctx` of a Durable Object (`DurableObjectState`): `id`, `storage` and the
    WebSocket Hibernation API over the object's `FakeSocketHub`."""

    id: Any
    storage: FakeStorage
    hub: FakeSocketHub = field(default_factory=FakeSocketHub)

    def acceptWebSocket(self, ws: Any, tags: Any = None) -> None:
        self.hub.accept(ws, tags)

    def getWebSockets(self, tag: Any = None) -> Any:
        return self.hub.live(None if tag is None else str(tag))

    def getTags(self, ws: Any) -> Any:
        for sock, tags in self.hub.sockets:
            if sock is ws:
                return list(tags)
        raise JsError("TypeError: getTags() of a WebSocket this object did not accept")


# --- Durable Object namespaces and stubs ---------------------------------------------------
# Mirrors https://developers.cloudflare.com/durable-objects/api/namespace/ (`idFromName(name)`
# -> a DurableObjectId, `get(id)` -> a stub) and .../api/stub/ with Workers RPC
# (https://developers.cloudflare.com/workers/runtime-apis/rpc/): each call's arguments and
# result are structured-cloned (here: JSON-cloned; functions refused) and limited to 32 MiB.
# An object's instance may be evicted at any time; its storage survives (`evict_all`).

RPC_LIMIT = 32 * 1024 * 1024


class FakeId:
    def __init__(self, namespace: str, name: str) -> None:
        self.name = name
        self._hex = hashlib.sha256(f"{namespace}:{name}".encode()).hexdigest()

    def toString(self) -> str:
        return self._hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeId) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)


def _rpc_clone(value: Any) -> Any:
    if callable(value):
        raise JsError("DataCloneError: functions cannot be sent over RPC")
    text = json.dumps(value)
    if len(text) > RPC_LIMIT:
        raise JsError("RPC message too large")
    return json.loads(text)


class FakeStub:
    def __init__(self, namespace: FakeNamespace, object_id: FakeId) -> None:
        self._ns = namespace
        self._id = object_id

    async def fetch(self, request: Any) -> Any:
        """`stub.fetch(request)`: the object's `fetch` gets the Request itself (a WebSocket
        upgrade's 101 response, carrying the client end, comes back unchanged)."""
        async with self._ns.event(self._id) as instance:
            self._ns.rpc_log.append(("fetch", (request.url,)))
            return await instance.fetch(request)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)

        async def rpc(*args: Any) -> Any:
            cloned = [_rpc_clone(a) for a in args]
            async with self._ns.event(self._id) as instance:
                fn = getattr(instance, method, None)
                if fn is None:
                    raise JsError(f"TypeError: The RPC receiver does not implement {method!r}")
                self._ns.calls += 1
                self._ns.rpc_log.append((method, tuple(cloned)))
                result = fn(*cloned)
                if asyncio.iscoroutine(result):
                    result = await result
                return _rpc_clone(result)

        return rpc


class FakeNamespace:
    """A Durable Object namespace binding over a DurableObject class (constructed
    `cls(ctx, env)`, as the runtime does) with one SQLite database per object."""

    def __init__(self, name: str, cls: type, env: Any, clock: OffsetClock) -> None:
        self.name = name
        self.cls = cls
        self.env = env
        self.clock = clock
        self.databases: dict[FakeId, sqlite3.Connection] = {}
        self.storages: dict[FakeId, FakeStorage] = {}
        self.instances: dict[FakeId, Any] = {}
        self.hubs: dict[FakeId, FakeSocketHub] = {}
        self.calls = 0
        self.rpc_log: list[tuple[str, tuple[Any, ...]]] = []  # (method, args) of each call
        # hibernation at its most eager: drop an object's instance whenever no event
        # handler of it runs, so every handler must rebuild its state from storage and
        # the sockets' attachments
        self.evict_between_events = False
        self._running: dict[FakeId, int] = {}
        self.cpu_seconds = 0.0  # CPU spent in this namespace's objects (elsewhere on Workers)

    def idFromName(self, name: str) -> FakeId:
        return FakeId(self.name, str(name))

    def get(self, object_id: FakeId, options: Any = None) -> FakeStub:
        return FakeStub(self, object_id)

    def instance(self, object_id: FakeId) -> Any:
        found = self.instances.get(object_id)
        if found is None:
            storage = self.storages.get(object_id)
            if storage is None:
                conn = sqlite3.connect(":memory:", isolation_level=None)
                self.databases[object_id] = conn
                storage = self.storages[object_id] = FakeStorage(conn, self.clock)
            hub = self.hubs.setdefault(object_id, FakeSocketHub())
            state = FakeState(object_id, storage, hub)
            found = self.instances[object_id] = self.cls(state, self.env)
        return found

    @contextlib.asynccontextmanager
    async def event(self, object_id: FakeId) -> Any:
        """One event handler run on the object (an RPC, a fetch, an alarm, a WebSocket
        event); with `evict_between_events`, the instance is dropped when none runs."""
        started = time.process_time()
        self._running[object_id] = self._running.get(object_id, 0) + 1
        try:
            yield self.instance(object_id)
        finally:
            self.cpu_seconds += time.process_time() - started
            self._running[object_id] -= 1
            if self.evict_between_events and not self._running[object_id]:
                self.instances.pop(object_id, None)

    def evict_all(self) -> None:
        """Drop every in-memory instance (as an eviction or a deploy would); storage and
        accepted hibernatable WebSockets stay."""
        self.instances.clear()

    async def deliver_socket_events(self) -> int:
        """Deliver the clients' closes to the objects' `webSocketClose` handlers (waking
        hibernated objects: the constructor runs first). Returns how many."""
        delivered = 0
        for object_id, hub in list(self.hubs.items()):
            events, hub.events = hub.events, []
            for kind, ws, *rest in events:
                async with self.event(object_id) as instance:
                    if kind == "close":
                        await instance.webSocketClose(ws, rest[0], rest[1], True)
                    else:
                        await instance.webSocketMessage(ws, rest[0])
                delivered += 1
        return delivered

    async def fire_alarms(self) -> int:
        """Run `alarm()` on every object whose alarm is due (at most once each)."""
        now_ms = self.clock.now() * 1000
        fired = 0
        for object_id, storage in list(self.storages.items()):
            if storage.alarm_ms is not None and storage.alarm_ms <= now_ms:
                storage.alarm_ms = None
                async with self.event(object_id) as instance:
                    await instance.alarm()
                fired += 1
        return fired


# --- Queues ------------------------------------------------------------------------------
# Producer: https://developers.cloudflare.com/queues/configuration/javascript-apis/
# (`send(body, {contentType, delaySeconds})`, `sendBatch([{body, contentType, delaySeconds}],
# {delaySeconds})`), limits from https://developers.cloudflare.com/queues/platform/limits/
# (128 KB per message, 100 messages and 256 KB per sendBatch, delaySeconds at most 43200).
# Consumer: `MessageBatch {queue, messages, ackAll(), retryAll({delaySeconds})}` and
# `Message {id, timestamp: Date, body, attempts, ack(), retry({delaySeconds})}`;
# .../queues/configuration/batching-retries/: a message neither acked nor retried is acked
# when the handler returns and retried when it throws; explicit calls win; after
# `max_retries` retries a message goes to the dead-letter queue (attempts start at 1).

MAX_MESSAGE_BYTES = 128_000
MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 256_000
MAX_DELAY_SECONDS = 43_200
CONTENT_TYPES = {"json", "text", "bytes", "v8"}


@dataclass
class _Stored:
    id: str
    body_text: str
    enqueued_ms: float
    visible_at: float
    attempts: int = 0


def _delay(options: dict[str, Any] | None, default: int = 0) -> int:
    delay = (options or {}).get("delaySeconds", default)
    if not isinstance(delay, int | float) or isinstance(delay, bool):
        raise JsError("TypeError: delaySeconds must be a number")
    if delay < 0 or delay > MAX_DELAY_SECONDS:
        raise JsError(f"delaySeconds must be between 0 and {MAX_DELAY_SECONDS}")
    return int(delay)


class FakeQueue:
    """One queue: the producer binding (`send`, `sendBatch`) and its stored messages."""

    _ids = itertools.count(1)

    def __init__(self, name: str, clock: OffsetClock) -> None:
        self.name = name
        self.clock = clock
        self.messages: list[_Stored] = []
        self.send_calls = 0

    def _encode(self, body: Any, content_type: str | None) -> str:
        if content_type is not None and content_type not in CONTENT_TYPES:
            raise JsError(f"unknown contentType {content_type!r}")
        text = json.dumps(body)
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise JsError(f"Queue send failed: message length exceeds {MAX_MESSAGE_BYTES} bytes")
        return str(text)

    def _store(self, text: str, delay: int) -> None:
        now = self.clock.now()
        self.messages.append(_Stored(f"msg-{next(self._ids)}", text, now * 1000, now + delay))

    async def send(self, body: Any, options: Any = None) -> None:
        opts = (options) or {}
        text = self._encode(body, opts.get("contentType"))
        self.send_calls += 1
        self._store(text, _delay(opts))

    async def sendBatch(self, messages: Any, options: Any = None) -> None:
        items = list(messages)
        if len(items) > MAX_BATCH_MESSAGES:
            raise JsError(f"sendBatch takes at most {MAX_BATCH_MESSAGES} messages")
        default = _delay(options)
        encoded: list[tuple[str, int]] = []
        total = 0
        for item in items:
            body = item["body"]
            meta = item
            text = self._encode(body, meta.get("contentType"))
            total += len(text.encode())
            encoded.append((text, _delay(meta, default)))
        if total > MAX_BATCH_BYTES:
            raise JsError(f"sendBatch: batch of {total} bytes exceeds {MAX_BATCH_BYTES}")
        self.send_calls += 1
        for text, delay in encoded:
            self._store(text, delay)

    def visible(self) -> list[_Stored]:
        now = self.clock.now()
        return [m for m in self.messages if m.visible_at <= now]


class FakeMessage:
    def __init__(self, stored: _Stored) -> None:
        self._stored = stored
        self.id = stored.id
        self.timestamp = js_date(stored.enqueued_ms)
        self.body = js_value(json.loads(stored.body_text))
        self.attempts = stored.attempts
        self.outcome: tuple[str, int] | None = None

    def ack(self) -> None:
        self.outcome = ("ack", 0)

    def retry(self, options: Any = None) -> None:
        self.outcome = ("retry", _delay(options))


class FakeMessageBatch:
    def __init__(self, queue: str, messages: list[FakeMessage]) -> None:
        self.queue = queue
        self.messages = messages

    def ackAll(self) -> None:
        for m in self.messages:
            m.ack()

    def retryAll(self, options: Any = None) -> None:
        for m in self.messages:
            m.retry(options)


@dataclass
class ConsumerConfig:
    """`[[queues.consumers]]` settings (wrangler.toml)."""

    max_batch_size: int = 100
    max_retries: int = 3
    dead_letter_queue: str | None = None
    retry_delay: int = 0


class FakeQueues:
    """The Queues service: named queues and push delivery to a consumer Worker."""

    def __init__(self, clock: OffsetClock) -> None:
        self.clock = clock
        self.queues: dict[str, FakeQueue] = {}
        self.consumers: dict[str, ConsumerConfig] = {}
        self.deliveries = 0

    def queue(self, name: str) -> FakeQueue:
        return self.queues.setdefault(name, FakeQueue(name, self.clock))

    def consume(self, name: str, config: ConsumerConfig) -> None:
        self.queue(name)
        self.consumers[name] = config
        if config.dead_letter_queue:
            self.queue(config.dead_letter_queue)

    async def deliver(self, name: str, handler: Callable[[Any], Any]) -> int:
        """Deliver one batch of visible messages of queue `name` to `handler(batch)`
        (the Worker's `queue`). Returns how many messages were delivered."""
        queue, config = self.queues[name], self.consumers[name]
        picked = queue.visible()[: config.max_batch_size]
        if not picked:
            return 0
        for stored in picked:
            stored.attempts += 1
            stored.visible_at = float("inf")  # in flight
        messages = [FakeMessage(s) for s in picked]
        threw = False
        try:
            await handler(FakeMessageBatch(name, messages))
        except Exception:
            threw = True
        self.deliveries += 1
        now = self.clock.now()
        for m in messages:
            kind, delay = m.outcome or (("retry", config.retry_delay) if threw else ("ack", 0))
            stored = m._stored
            if kind == "ack":
                queue.messages.remove(stored)
            elif stored.attempts > config.max_retries:
                queue.messages.remove(stored)
                if config.dead_letter_queue:  # arrives there as a new message
                    self.queue(config.dead_letter_queue)._store(stored.body_text, 0)
            else:
                stored.visible_at = now + delay
        return len(messages)

    def pending(self) -> dict[str, int]:
        return {name: len(q.messages) for name, q in self.queues.items()}


# --- R2 ----------------------------------------------------------------------------------
# Mirrors https://developers.cloudflare.com/r2/api/workers/workers-api-reference/:
# `put(key, value, {httpMetadata})` -> R2Object, `get(key)` -> R2ObjectBody | null
# (`arrayBuffer()`, `text()`, `json()`, `size`, `key`, `httpMetadata`), `delete(key | keys)`.
# Keys are at most 1024 bytes.


@dataclass
class FakeR2Object:
    key: str
    data: bytes
    httpMetadata: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.data)

    async def arrayBuffer(self) -> Any:
        return memoryview(bytes(self.data))

    async def text(self) -> str:
        return self.data.decode()

    async def json(self) -> Any:
        return js_value(json.loads(self.data))


class FakeR2Bucket:
    def __init__(self) -> None:
        self.objects: dict[str, FakeR2Object] = {}

    async def put(self, key: str, value: Any, options: Any = None) -> FakeR2Object:
        key = str(key)
        if len(key.encode()) > 1024:
            raise JsError("R2 keys are at most 1024 bytes")
        meta = ((options) or {}).get("httpMetadata") or {}
        obj = self.objects[key] = FakeR2Object(key, _bytes(value), dict(meta))
        return obj

    async def get(self, key: str, options: Any = None) -> Any:
        found = self.objects.get(str(key))
        return found

    async def delete(self, keys: Any) -> None:
        keys = (keys)
        for key in keys if isinstance(keys, list) else [keys]:
            self.objects.pop(str(key), None)


# --- env ---------------------------------------------------------------------------------
# Mirrors https://developers.cloudflare.com/workers/configuration/environment-variables/ and
# .../secrets/: bindings, `[vars]` and secrets are attributes of `env`; vars are strings.


class FakeEnv:
    def __init__(self, **bindings: Any) -> None:
        for name, value in bindings.items():
            setattr(self, name, value)


class FakeExecutionContext:
    """`ctx` of a Worker invocation (`waitUntil`, `passThroughOnException`)."""

    def __init__(self) -> None:
        self.waiting: list[Any] = []

    def waitUntil(self, promise: Any) -> None:
        self.waiting.append(promise)

    def passThroughOnException(self) -> None:
        pass


@dataclass
class Cloud:
    """One fake account: the Worker's env, its queues, namespaces and bucket, and drivers."""

    env: FakeEnv
    clock: OffsetClock
    queues: FakeQueues
    namespaces: dict[str, FakeNamespace]
    bucket: FakeR2Bucket
    worker: Any

    async def deliver(self, name: str, handler: Any = None) -> int:
        """One batch of queue `name` to `handler` (default: the Worker's `queue`)."""
        return await self.queues.deliver(name, handler or self.worker.queue)

    def engine(self) -> Any:
        """An engine over the env (as the Worker builds its own)."""
        from trigger_do.engine import Engine
        from trigger_do.platform.cloudflare.platform import cloudflare_platform

        return Engine(cloudflare_platform(self.env, clock=self.clock))

    async def drain(self, max_rounds: int = 500, advance: float = 0.0) -> int:
        """Deliver batches (run queue, then dead letters) until both are empty; when only
        delayed messages remain, advance the clock to the next one (at most `advance`
        seconds at a time when given). Returns the number of deliveries."""
        rounds = 0
        for _ in range(max_rounds):
            delivered = 0
            for name in self.queues.consumers:
                delivered += await self.queues.deliver(name, self.worker.queue)
            rounds += 1 if delivered else 0
            if delivered:
                continue
            waiting = [m for q in self.queues.queues.values() for m in q.messages]
            if not waiting:
                return rounds
            step = min(m.visible_at for m in waiting) - self.clock.now()
            self.clock.advance(max(step, 0.0) + 0.001 if not advance else min(advance, step))
        raise AssertionError(f"queues not drained after {max_rounds} rounds")


def make_cloud(
    *,
    shards: int = 16,
    max_batch_size: int = 100,
    max_retries: int = 3,
    vars: dict[str, str] | None = None,
) -> Cloud:
    """An env like the one wrangler.toml declares, with the trigger.do entry points."""
    from trigger_do.platform.cloudflare import entry, ffi

    ffi.RUNTIME.update(
        WebSocketPair=FakeWebSocketPair, upgrade_response=FakeUpgradeResponse, asgi_fetch=asgi_fetch
    )
    clock = OffsetClock()
    queues = FakeQueues(clock)
    queues.consume(
        "trigger-do-runs",
        ConsumerConfig(max_batch_size, max_retries, dead_letter_queue="trigger-do-runs-dlq"),
    )
    queues.consume("trigger-do-runs-dlq", ConsumerConfig(max_batch_size, max_retries))
    env = FakeEnv(
        RUN_QUEUE=queues.queue("trigger-do-runs"),
        PACKETS=FakeR2Bucket(),
        TRIGGER_DO_INDEX_SHARDS=str(shards),
        TRIGGER_SECRET_KEY="tr_test_secret",
        **(vars or {}),
    )
    def timed(cls: type) -> type:  # its alarms act at the test's clock
        return type(cls.__name__, (cls,), {"clock": clock})

    namespaces = {
        "RUN_INDEX": FakeNamespace("RUN_INDEX", timed(entry.RunIndex), env, clock),
        "RUN": FakeNamespace("RUN", timed(entry.Run), env, clock),
        "REGISTRY": FakeNamespace("REGISTRY", timed(entry.Registry), env, clock),
        "COORDINATOR": FakeNamespace("COORDINATOR", timed(entry.Coordinator), env, clock),
        "SCHEDULER": FakeNamespace("SCHEDULER", timed(entry.Scheduler), env, clock),
        "EVENTS": FakeNamespace("EVENTS", timed(entry.Events), env, clock),
        "WAITPOINTS": FakeNamespace("WAITPOINTS", timed(entry.Waitpoints), env, clock),
    }
    for binding, ns in namespaces.items():
        setattr(env, binding, ns)

    class TestWorker(entry.Default):
        pass

    TestWorker.clock = clock
    worker = TestWorker(FakeExecutionContext(), env)
    return Cloud(env, clock, queues, namespaces, env.PACKETS, worker)


# --- the Python Workers SDK's ASGI bridge (`workers.asgi.fetch`) ----------------------------
# Mirrors workers-runtime-sdk's workers/asgi.py: `await asgi.fetch(app, request, env, ctx)` runs
# the app's lifespan startup, builds an HTTP scope from the JS Request (method, url,
# headers, body) with `scope["env"] = env`, collects `http.response.*` into a Response, and
# runs lifespan shutdown.


class FakeHeaders:
    """A JS `Headers`: iterable of [name, value] (names lower-cased), `get(name)` -> the
    value or null."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._items = [[k.lower(), v] for k, v in headers.items()]

    def __iter__(self) -> Any:
        return iter(self._items)

    def get(self, name: str) -> Any:
        for k, v in self._items:
            if k == str(name).lower():
                return v
        return None


class FakeRequest:
    """A JS `Request`: method, url, headers (`Headers`), `arrayBuffer()`."""

    def __init__(self, method: str, url: str, headers: dict[str, str], body: bytes = b""):
        self.method = method
        self.url = url
        self.headers = FakeHeaders(headers)
        self._body = body

    async def arrayBuffer(self) -> bytes:
        return self._body


@dataclass
class FakeResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi_fetch(app: Any, req: FakeRequest, env: Any, ctx: Any = None) -> FakeResponse:
    from urllib.parse import urlsplit

    async def lifespan(kind: str) -> None:
        sent = [{"type": f"lifespan.{kind}"}]

        async def receive() -> Any:
            return sent.pop() if sent else await asyncio.Event().wait()

        async def send(message: Any) -> None:
            pass

        task = asyncio.ensure_future(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        )
        await asyncio.sleep(0)
        task.cancel()

    await lifespan("startup")
    url = urlsplit(req.url)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.path.encode(),
        "query_string": url.query.encode(),
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in req.headers],
        "server": (url.hostname, url.port or 443),
        "client": ("127.0.0.1", 0),
        "env": env,
    }
    body = await req.arrayBuffer()
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status, headers, chunks = 500, [], []
    finished = asyncio.Event()

    async def receive() -> Any:  # as the SDK's: the disconnect once the response is done
        if pending:
            return pending.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [(k.decode(), v.decode()) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
    await lifespan("shutdown")
    return FakeResponse(status, headers, b"".join(chunks))
