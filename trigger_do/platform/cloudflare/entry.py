"""The Worker's entry points: one `WorkerEntrypoint` (fetch = the HTTP API, queue = the
consumer, scheduled = the cron heartbeat) and one `DurableObject` class per object kind,
each a thin adapter over the engine's class. A user's Worker module re-exports them:

    import tasks  # noqa: F401  (registers the user's tasks)
    from trigger_do.platform.cloudflare.entry import (
        Coordinator, Default, Events, Registry, Run, RunIndex, Scheduler, Waitpoints,
    )

Durable Objects never run task code; only `queue` (the consumer) does.
"""

from __future__ import annotations

import logging
from typing import Any

from ...consumer.consumer import Consumer
from ...coordinator.coordinator import CoordinatorObject
from ...engine import Engine
from ...events.store import EventStoreObject
from ...ports import Remote
from ...runs import client as runs_client
from ...runs.index import RunIndexObject
from ...runs.index_metrics import COUNT_TRIGGERS
from ...runs.registry import RegistryObject
from ...runs.run_object import RunObject
from ...schedules.scheduler import SchedulerObject
from ...schedules.service import ScheduleService
from ...sdk.client import EmbeddedClient, client_scope
from ...shared.serialization import dumps, loads
from ...shared.subscriptions import registry_options
from ...task import registered_tasks
from ...waitpoints.store import TokenStoreObject
from ...waits.service import Waits
from . import ffi, live_logs
from . import realtime as realtime_routes
from .live_logs import LiveLogs
from .objects import HostStub, ObjectHost
from .platform import BINDINGS, WorkerClock, cloudflare_platform
from .queue import settle_unsettled, wrap_batch

log = logging.getLogger("trigger_do.cloudflare")

try:  # pragma: no cover - only a Python Worker (or the Pyodide harness) has the `workers` SDK
    from workers import DurableObject as _DurableObjectBase
    from workers import WorkerEntrypoint as _WorkerEntrypointBase
except ImportError as exc:
    if ffi.IN_PYODIDE:  # a Worker built without the SDK would never run a handler
        raise ImportError(
            "trigger_do on Cloudflare needs the Python Workers SDK (the `workers` package of "
            "workers-runtime-sdk, which pywrangler vendors into the Worker): deploy with "
            f"`trigger-do deploy` or `pywrangler deploy` ({exc})"
        ) from exc

    class _WorkerEntrypointBase:  # type: ignore[no-redef]
        """Stand-in with the SDK's constructor, so this module imports off Workers."""

        def __init__(self, ctx: Any, env: Any) -> None:
            self.ctx = ctx
            self.env = env

    class _DurableObjectBase:  # type: ignore[no-redef]
        def __init__(self, ctx: Any, env: Any) -> None:
            self.ctx = ctx
            self.env = env


class Default(_WorkerEntrypointBase):  # type: ignore[misc]
    """The Worker: HTTP API, run-queue consumer, cron heartbeat. (Its public methods are the
    Worker's handlers and RPC surface, so helpers stay private.)"""

    clock: Any = None  # the platform's clock (None: the Worker's); tests substitute one

    def _engine(self) -> Engine:
        return Engine(cloudflare_platform(self.env, clock=self.clock))

    async def fetch(self, request: Any, *_: Any) -> Any:
        subscribed = realtime_routes.route(request)
        if subscribed is not None:  # Realtime: the run's (or the feed's) Durable Object answers
            ns = getattr(self.env, BINDINGS["run"])
            return await ns.get(ns.idFromName(subscribed)).fetch(ffi.js_request(request))
        run_id = live_logs.route(request)
        if run_id is not None and live_logs.authorized(
            request, str(ffi.to_py(getattr(self.env, "TRIGGER_SECRET_KEY", None)) or "")
        ):  # live logs end in the run's Durable Object (hibernatable WebSockets)
            ns = getattr(self.env, BINDINGS["run"])
            return await ns.get(ns.idFromName(run_id)).fetch(ffi.js_request(request))
        # (without the key, the app answers as it does to any unauthenticated `/api` call)
        engine = self._engine()
        from ...api.app import create_app  # type: ignore[import-not-found,unused-ignore]

        app = create_app(engine, engine.platform.settings.get("TRIGGER_SECRET_KEY") or "")
        # a streaming response (live logs over SSE) runs on in a task the bridge started
        # inside this scope: it keeps the client after this handler has returned
        with client_scope(EmbeddedClient(engine)):
            return await ffi.asgi_fetch()(app, request, self.env, self.ctx)

    async def queue(self, batch: Any, *_: Any) -> None:
        """A batch from the run queue (or its dead-letter queue). Every message is settled
        explicitly: whatever the consumer left unsettled is retried, never implicitly acked."""
        messages = wrap_batch(batch)
        platform = cloudflare_platform(self.env, clock=self.clock)
        consumer = Consumer(platform, registered_tasks())
        try:
            with client_scope(EmbeddedClient(Engine(platform, consumer.config))):
                if is_dead_letter_queue(str(batch.queue), platform.settings.get("TRIGGER_DO_DLQ")):
                    await consumer.handle_dead_letters(messages)
                else:
                    await consumer.handle_batch(messages)
                # nothing may outlive the invocation (its I/O belongs to this request): write
                # what is coalesced, and free the coordinator slots released in this batch
                await consumer.writer.flush()
                await consumer.gate.drain()
        except Exception:
            log.exception("a batch failed; its unsettled messages will be redelivered")
        finally:
            settle_unsettled(messages, delay=1.0)

    async def scheduled(self, controller: Any = None, *_: Any) -> None:
        """The cron heartbeat: register this Worker's tasks, then housekeeping (expire,
        re-dispatch overdue runs, purge past retention)."""
        engine = self._engine()
        tasks = registered_tasks().values()
        await engine.registry.register(
            [
                {
                    "id": t.id,
                    "module": t.module,
                    "queue": t.queue_name,
                    "options": registry_options(t.subscription),  # events it subscribes to
                }
                for t in tasks
            ],
            engine.now(),
        )
        await engine.schedules.sync_declarative(tasks)  # the tasks' `cron=`, as deployed
        await engine.housekeeping()


def is_dead_letter_queue(queue: str, configured: str | None) -> bool:
    return queue == configured if configured else queue.endswith("-dlq")


class _EngineObject(_DurableObjectBase):  # type: ignore[misc]
    """A SQLite Durable Object serving one engine object class over RPC."""

    engine_class: type = object
    extra_schema: tuple[str, ...] = ()
    clock: Any = None  # the time alarms act at (None: the Worker's); tests substitute one

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.host = ObjectHost(self.engine_class, ctx.storage, self.extra_schema)

    async def call(self, name: str, method: str, text: str) -> str:
        return await self.host.call(str(name), str(method), str(text))

    async def alarm(self, *_: Any) -> None:
        await self.host.alarm((self.clock or WorkerClock()).now())


class RunIndex(_EngineObject):
    """One shard of the run index (`shard-0` .. `shard-{n-1}`). Its alarm fires its timers
    in-process (`HostStub`) and sends the runs whose waits came due (waits/)."""

    engine_class = RunIndexObject
    extra_schema = tuple(COUNT_TRIGGERS)  # /metrics' counters, kept in the shard's SQLite

    async def alarm(self, *_: Any) -> None:
        name = self.host.fired()
        if name is None:
            return
        platform = cloudflare_platform(self.env, clock=self.clock)
        shard = Remote[RunIndexObject](HostStub(self.host, name))
        await Waits(platform).fire(shard, platform.clock.now())


class Run(_EngineObject):
    """One run's checkpoints, steps and logs, and the WebSockets of its live-log
    subscribers (hibernatable: live_logs.py). Everything it needs after an eviction is in
    its storage and the sockets' attachments; the constructor only builds adapters."""

    engine_class = RunObject
    extra_schema = (live_logs.LIVE_SCHEMA,)

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self.live = LiveLogs(ctx, self.host.sql)
        self.realtime = realtime_routes.RunRealtime(ctx, env, self.clock)

    def _index_for(self, run_id: str) -> Remote[RunIndexObject]:
        return runs_client.RunIndex(cloudflare_platform(self.env)).on(run_id)

    async def call(self, name: str, method: str, text: str) -> str:
        if str(method) == "finished":  # the writer: this watched run ended
            try:
                (state,), _ = loads(str(text))
                await self.live.finished(str(name), str(state))
                self.realtime.changed()
            except Exception as exc:
                return str(dumps({"error": f"{type(exc).__name__}: {exc}"}))
            return str(dumps({"ok": None}))
        reply = await super().call(name, method, text)
        if str(method) == "append":
            self.live.pushed()
            self.realtime.changed()
        return reply

    async def fetch(self, request: Any, *_: Any) -> Any:
        """A live-log WebSocket (key already checked) or a Realtime subscription (checked
        here, by the API's own routes) the Worker forwarded."""
        if realtime_routes.route(request) is not None:
            return await self.realtime.serve(request)
        run_id = live_logs.run_id_of(ffi.request_url(request)) or ""
        return await self.live.connect(request, self._index_for(run_id))

    async def alarm(self, *_: Any) -> None:
        await self.live.check(self._index_for)

    async def webSocketMessage(self, ws: Any, message: Any) -> None:
        """Subscribers have nothing to say (the local API ignores what they send too)."""

    async def webSocketClose(self, ws: Any, code: Any, reason: Any, was_clean: Any) -> None:
        live_logs.close_reply(ws, int(code), str(ffi.to_py(reason) or ""))

    async def webSocketError(self, ws: Any, error: Any) -> None:
        live_logs.close_reply(ws, 1011, "")


class Registry(_EngineObject):
    """The task registry."""

    engine_class = RegistryObject


class Coordinator(_EngineObject):
    """One queue's concurrency slots, rate windows and parked runs."""

    engine_class = CoordinatorObject


class Events(_EngineObject):
    """The event store (`events`): every event and webhook delivery, with its runs."""

    engine_class = EventStoreObject


class Scheduler(_EngineObject):
    """Every schedule (`scheduler`), its alarm at the next due instant. When it fires, the
    due instants are claimed here (in-process: `HostStub`) and their runs triggered through
    the producer, as the local supervisor does; a claim its alarm never completed (the
    isolate died) lapses and is taken again, the run deduplicated by its idempotency key."""

    engine_class = SchedulerObject

    async def alarm(self, *_: Any) -> None:
        name = self.host.fired()
        if name is None:
            return
        engine = Engine(cloudflare_platform(self.env, clock=self.clock))
        service = ScheduleService(
            engine.platform, engine.producer, Remote[SchedulerObject](HostStub(self.host, name))
        )
        await service.fire_due()


class Waitpoints(_EngineObject):
    """One shard of wait tokens (`waitpoints/store.py`), its alarm at the earliest token
    timeout. When it fires, the due tokens time out here (in-process: `HostStub`) and
    whatever waits on them is told, through the engine's token service."""

    engine_class = TokenStoreObject

    async def alarm(self, *_: Any) -> None:
        name = self.host.fired()
        if name is None:
            return
        engine = Engine(cloudflare_platform(self.env, clock=self.clock))
        shard = Remote[TokenStoreObject](HostStub(self.host, name))
        await engine.tokens.fire_timers(name, shard)
