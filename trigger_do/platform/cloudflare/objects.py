"""`ObjectNamespace` on Durable Object namespaces, and the host that runs an engine object
inside a Durable Object.

Caller side: `ns.get(name)` is `binding.get(binding.idFromName(name))`; `stub.call(method,
*args, **kwargs)` is one RPC, `stub.call(name, method, text)`, whose arguments and result
travel as JSON text. Text crosses RPC unchanged in every SDK version (no dict/Map choice,
no integral float turning into an int, no tuple refused), stays JSON-native by
construction, and is checked against the RPC size limit here.

Object side: `ObjectHost` owns the engine object class and the `DurableSql` on the
object's `ctx.storage`; each call is one `transactionSync`. After each call the host keeps
the object's single alarm (`ctx.storage.setAlarm(epoch_ms)`) at the earliest of its timers
(`shared.timers`) and of what the engine object asks for itself (`next_alarm()` -> epoch
seconds or None), or deletes it. When it fires, the object acts (`on_alarm(now)`) and fires
its due timers (`fire_timers(now)`), each in a transaction, and the alarm is set again.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from ...errors import TriggerDoError
from ...shared.serialization import dumps, loads
from ...shared.timers import ObjectTimers
from . import ffi
from .sql import DurableSql, init_schema

MAX_RPC_BYTES = 32 * 1024 * 1024  # Workers RPC: 32 MiB per serialized message
# the object's name (a Durable Object is not told the name it was reached by) and the due time
# its alarm is set to (so that a call which changes no timer costs no alarm operation)
ALARM_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS trigger_do_alarm "
    "(k INTEGER PRIMARY KEY, name TEXT NOT NULL, due REAL)"
)


class ObjectCallError(TriggerDoError):
    """An object method raised; the message names the object, the method and the error."""


class DurableStub:
    def __init__(self, stub: Any, name: str) -> None:
        self._stub = stub
        self.name = name

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        text = dumps([list(args), kwargs])
        if len(text) > MAX_RPC_BYTES:
            raise ObjectCallError(f"{method} arguments of {len(text)} bytes, over the RPC limit")
        result = await self._stub.call(self.name, method, text)
        reply = loads(str(ffi.to_py(result)))
        if "error" in reply:
            raise ObjectCallError(f"{self.name}.{method}: {reply['error']}")
        return reply["ok"]


class DurableNamespace:
    """`ObjectNamespace` on a Durable Object namespace binding (`env.RUN_INDEX`, ...)."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    def get(self, name: str) -> DurableStub:
        return DurableStub(self.binding.get(self.binding.idFromName(name)), name)


class HostStub:
    """An `ObjectStub` on an object's own host: the Durable Object calling its engine object
    in-process (each call a transaction, the alarm kept after it), as a `DurableStub` would
    from outside, without an RPC to itself."""

    def __init__(self, host: ObjectHost, name: str) -> None:
        self.host = host
        self.name = name

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        reply = loads(await self.host.call(self.name, method, dumps([list(args), kwargs])))
        if "error" in reply:
            raise ObjectCallError(f"{self.name}.{method}: {reply['error']}")
        return reply["ok"]


class ObjectHost:
    """Runs calls on instances of an engine object class (`RunIndexObject`, ...) over one
    Durable Object's storage. The schema is created once per instance (constructor)."""

    def __init__(self, cls: type, storage: Any, extra_schema: tuple[str, ...] = ()) -> None:
        self.cls = cls
        self.storage = storage
        self.sql = DurableSql(storage)
        schema = [*cls.schema(), ALARM_SCHEMA, *extra_schema]  # type: ignore[attr-defined]
        init_schema(self.sql, schema)

    async def call(self, name: str, method: str, text: str) -> str:
        """One RPC: returns `{"ok": result}` or `{"error": "Type: message"}` as JSON text
        (an error reply, not a thrown one, so its message survives the RPC boundary)."""
        if method.startswith("_") or method in ("schema", "next_alarm", "on_alarm"):
            return dumps({"error": f"ValueError: {method!r} is not callable remotely"})
        args, kwargs = loads(text)
        obj = self.cls(self.sql, name)
        fn = getattr(obj, method, None)
        if not callable(fn):
            return dumps({"error": f"AttributeError: {self.cls.__name__} has no {method!r}"})
        try:
            result = self.sql.transaction(lambda: fn(*args, **kwargs))
        except Exception as exc:
            return dumps({"error": f"{type(exc).__name__}: {exc}"})
        await self._arm(obj, name)
        return dumps({"ok": result})

    async def alarm(self, now: float) -> None:
        """The object's alarm fired: let it act (`on_alarm(now)`) and fire its due timers
        (`fire_timers(now)`), then re-arm. The name comes from storage: a Durable Object is
        not told the name it was reached by."""
        name = self.fired()
        if name is None:
            return
        obj = self.cls(self.sql, name)
        for method in ("on_alarm", "fire_timers"):
            handler = getattr(obj, method, None)
            if handler is not None:
                self.sql.transaction(functools.partial(handler, now))
        await self._arm(obj, name)

    def fired(self) -> str | None:
        """The alarm has fired: note it (the next `_arm` sets it again even at the same time),
        and return the object's name (None: an object never called, so never armed)."""
        found = self.sql.exec("SELECT name FROM trigger_do_alarm WHERE k = 0")
        if not found:
            return None
        self.sql.exec("UPDATE trigger_do_alarm SET due = NULL WHERE k = 0")
        return str(found[0][0])

    async def _arm(self, obj: Any, name: str) -> None:
        kind = getattr(obj, "KIND", None)
        if kind is None and not hasattr(obj, "next_alarm"):
            return  # an object that never needs waking
        wants = [getattr(obj, "next_alarm", lambda: None)()]
        if kind is not None:
            wants.append(ObjectTimers(self.sql, kind, name).next_due())
        due = min((float(w) for w in wants if w is not None), default=None)
        armed = self.sql.exec("SELECT due FROM trigger_do_alarm WHERE k = 0")
        if armed and armed[0][0] == due:
            return  # unchanged
        self.sql.exec(
            "INSERT OR REPLACE INTO trigger_do_alarm (k, name, due) VALUES (0, ?, ?)", name, due
        )
        if due is None:
            await self.storage.deleteAlarm()
        else:
            await self.storage.setAlarm(math.ceil(due * 1000))  # never before it is due
