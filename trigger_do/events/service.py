"""Events as the engine serves them (`Engine.events`): send one event to every task subscribed
to its name, one run each; list, look up and replay them. Webhook deliveries come through the
same path (`source` set; `trigger_do/webhooks/`).

Sending: check the name, id and payload (nothing is written for a bad one); claim the event in
the store (a live id returns the first event's runs); then one run per subscriber, each
with the idempotency key `event:<uid>` so that a fan-out done twice (a resend after its sender
died, housekeeping) makes no second run. A subscriber whose schema refuses the payload gets a
run created directly in FAILED (the transition table's `CREATED_IN`), its error naming the
field; the other subscribers still run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..errors import (
    EventNotFoundError,
    InvalidEventError,
    NonFiniteNumberError,
    PayloadTooLargeError,
    PayloadValidationError,
    TriggerDoError,
    UnknownTaskError,
)
from ..ports import Platform, Remote
from ..producer.producer import Producer, TriggerRequest
from ..runs.client import Registry
from ..runs.index import RunIndexObject
from ..shared.config import EngineConfig
from ..shared.ids import new_id
from ..shared.serialization import dumps, loads
from ..shared.states import RunState
from ..shared.subscriptions import Subscription, check_name
from ..task import Task, registered_tasks
from .store import DEDUP_WINDOW, EventStoreObject

log = logging.getLogger("trigger_do.events")

MAX_ID = 256  # characters of an event id or delivery id
PENDING_GRACE = 60.0  # seconds before housekeeping completes a fan-out its sender left
MAX_PAGE = 100


def check_id(event_id: object) -> str:
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_ID:
        raise InvalidEventError(f"an event id is a string of 1 to {MAX_ID} characters", "id")
    if not event_id.isprintable():
        raise InvalidEventError("an event id holds no control characters", "id")
    return event_id


def run_key(uid: str) -> str:
    """The idempotency key of the runs an event starts (scoped to each task)."""
    return f"event:{uid}"


class EventService:
    """The engine's events (`Engine.events`)."""

    def __init__(
        self,
        platform: Platform,
        producer: Producer,
        config: EngineConfig,
        tasks: Callable[[], Iterable[Task[Any]]] | None = None,
        store: Remote[EventStoreObject] | None = None,
    ) -> None:
        self.platform = platform
        self.producer = producer
        self.config = config
        self.tasks = tasks or (lambda: registered_tasks().values())
        if store is None:
            ns = platform.objects(EventStoreObject.KIND)
            store = Remote[EventStoreObject](ns.get(EventStoreObject.NAME))
        self.store = store
        # told of every event sent, after its fan-out (`{id, name, payload, created_at,
        # source}`, payload decoded): waits for events (waitpoints/events.py)
        self.on_sent: list[Callable[[dict[str, Any]], Awaitable[Any]]] = []

    def now(self) -> float:
        return self.platform.clock.now()

    async def subscribers(
        self, source: str | None, names: list[str]
    ) -> list[tuple[str, Task[Any] | None]]:
        """The tasks an event from `source` (None: a custom event) answering to `names`
        starts, by id: those this process declares (their schemas check the payload), and
        those only the workers registered (`None`: their run checks it when it starts)."""
        found: dict[str, Task[Any] | None] = {
            t.id: t
            for t in self.tasks()
            if t.subscription is not None
            and t.subscription.wants(source, names)
            and self.producer.find_task(t.id) is t  # a task this engine serves
        }
        for entry in await Registry(self.platform).subscriptions():
            if entry["id"] not in found:
                sub = Subscription(entry["event"], entry["source"])
                if sub.wants(source, names):
                    found[entry["id"]] = None
        return [(k, found[k]) for k in sorted(found)]

    # --- sending ------------------------------------------------------------------------------

    async def send(
        self,
        name: str,
        payload: Any = None,
        *,
        id: str | None = None,
        source: str | None = None,
        names: list[str] | None = None,
        replay_of: str | None = None,
    ) -> dict[str, Any]:
        """Send an event. Returns `{id, runs, cached}` (`cached`: the id was sent within
        24 hours; `runs` are that event's). `InvalidEventError` for a bad name or id,
        `PayloadValidationError` for a payload that is not JSON, `PayloadTooLargeError`."""
        problem = check_name(name)
        if problem:
            raise InvalidEventError(problem, "name")
        if id is not None:
            check_id(id)
        try:
            text = dumps(payload)
        except (TypeError, NonFiniteNumberError) as exc:
            raise PayloadValidationError(f"event payload: {exc}") from None
        size = len(text.encode())
        if size > self.config.payload_limit:
            raise PayloadTooLargeError(size, self.config.payload_limit)
        uid = new_id("evt")
        event: dict[str, Any] = {
            "uid": uid,
            "id": id or uid,
            "name": name,
            "names": names or [name],
            "source": source,
            "payload": text,
            "replay_of": replay_of,
        }
        if size > self.config.packet_threshold:
            event["payload_packet"], event["payload"] = f"events/{uid}/payload.json", None
            await self.platform.blobs.put(event["payload_packet"], text.encode())
        claimed = await self.store(EventStoreObject.claim, event, self.now())
        stored = claimed["event"]
        if not claimed["fresh"]:
            if event.get("payload_packet"):  # not ours: the first event's is kept
                await self.platform.blobs.delete(event["payload_packet"])
            if stored["status"] == "delivered":
                return {"id": stored["id"], "runs": stored["runs"], "cached": True}
            text = await self._payload_text(stored)  # its sender died: finish its fan-out
        runs = await self._fan_out(stored, text)
        if self.on_sent:
            sent = {**stored, "payload": loads(text)}
            for hook in self.on_sent:
                await hook(sent)
        return {"id": stored["id"], "runs": runs, "cached": not claimed["fresh"]}

    async def _payload_text(self, stored: dict[str, Any]) -> str:
        if stored["payload_packet"]:
            data = await self.platform.blobs.get(stored["payload_packet"])
            return data.decode() if data is not None else "null"
        return str(stored["payload"])

    async def _fan_out(self, stored: dict[str, Any], text: str) -> list[str]:
        """One run per subscriber (a refused payload: one FAILED run), then the event is
        delivered. Returns the run ids in the subscribers' order."""
        uid = stored["uid"]
        value = loads(text)
        ref = {"id": stored["id"], "name": stored["name"]}
        if stored["source"]:
            ref["source"] = stored["source"]
        options = {"idempotency_key": run_key(uid), "idempotency_key_ttl": DEDUP_WINDOW}
        requests: list[TriggerRequest] = []
        refused: dict[str, TriggerDoError] = {}
        order: list[str] = []
        for task_id, task in await self.subscribers(stored["source"], stored["names"]):
            order.append(task_id)
            try:
                checked = task.payload_json(value) if task is not None else text
            except PayloadValidationError as exc:
                refused[task_id] = exc
                continue
            requests.append(TriggerRequest(task_id, None, options, payload_text=checked, event=ref))
        run_of: dict[str, str] = {}
        if requests:
            try:  # validated before anything is written: all of them, or none
                done = await self.producer.trigger_many(requests, batch=False)
                run_of.update({r.task_id: t.id for r, t in zip(requests, done.runs, strict=True)})
            except (UnknownTaskError, PayloadTooLargeError):
                for req in requests:  # one subscriber's run cannot be: the others still are
                    try:
                        run_of[req.task_id] = (await self.producer.trigger(req)).id
                    except (UnknownTaskError, PayloadTooLargeError) as exc:
                        refused[req.task_id] = exc
        for task_id, error in refused.items():
            try:
                run_of[task_id] = await self._failed_run(task_id, text, options, ref, error)
            except UnknownTaskError:  # gone since it was found: nothing to start
                log.warning("event %s: subscriber %s is no task any more", uid, task_id)
        runs = [run_of[t] for t in order if t in run_of]
        await self.store(EventStoreObject.complete, uid, runs, self.now())
        return runs

    async def _failed_run(
        self,
        task_id: str,
        text: str,
        options: dict[str, Any],
        ref: dict[str, Any],
        exc: TriggerDoError,
    ) -> str:
        """A run created directly in FAILED: its subscriber's schema refused the payload
        (or its run could not be made: a payload its schema made too large)."""
        now = self.now()
        req = TriggerRequest(task_id, None, options, payload_text=text, event=ref)
        (row,) = await self.producer.prepare_all([req], now, batch=False)
        if row["payload"] is not None and len(row["payload"]) > self.config.packet_threshold:
            key = f"packets/{row['id']}/payload.json"
            await self.platform.blobs.put(key, row["payload"].encode())
            row["payload_packet"], row["payload"] = key, None
        row["state"] = str(RunState.FAILED)
        row["error"] = {
            "name": type(exc).__name__,
            "message": str(exc),
            "errors": getattr(exc, "errors", None) or [],
        }
        index = self.producer.index
        (res,) = await index.on(row["id"])(RunIndexObject.insert_failed, [row], now)
        return str(res["id"])

    # --- reads, replay, housekeeping ----------------------------------------------------------

    async def get(self, event_id: str, source: str | None = None) -> dict[str, Any]:
        """The newest event with this id (from `source`), its payload decoded."""
        found = await self.store(EventStoreObject.get, str(event_id), source)
        if found is None:
            raise EventNotFoundError(str(event_id))
        found["payload"] = loads(await self._payload_text(found))
        return found

    async def find_delivery(self, delivery_id: str, source: str | None) -> dict[str, Any]:
        """The newest webhook delivery with this id (from `source`, else from any)."""
        found = await self.store(EventStoreObject.find_delivery, delivery_id, source)
        if found is None:
            raise EventNotFoundError(delivery_id)
        return found

    async def page(
        self,
        *,
        webhooks: bool = False,
        name: str | None = None,
        source: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: list[Any] | None = None,
        limit: int = 25,
    ) -> list[dict[str, Any]]:
        """Events (or webhook deliveries), newest first; `after`: the last `[created_at, uid]`
        seen. Payloads are left out (`get` has them)."""
        rows = await self.store(
            EventStoreObject.page,
            webhooks=webhooks,
            name=name,
            source=source,
            created_from=created_from,
            created_to=created_to,
            after=after,
            limit=min(max(1, int(limit)), MAX_PAGE),
        )
        for row in rows:
            row.pop("payload", None)
        return rows

    async def lookup(
        self, name: str, since: float, until: float | None = None
    ) -> list[dict[str, Any]]:
        """The custom events named `name` sent from `since` to `until`, oldest first, their
        payloads decoded (for a run waiting for an event)."""
        rows = await self.store(EventStoreObject.lookup, name, since, until)
        for row in rows:
            row["payload"] = loads(await self._payload_text(row))
        return rows

    async def replay(self, event_id: str, source: str | None = None) -> dict[str, Any]:
        """Send an event again to its name's subscribers now: new runs, under a new id.
        Returns `{id, runs, cached}`."""
        found = await self.get(event_id, source)
        return await self.send(
            found["name"],
            found["payload"],
            source=found["source"],
            names=found["names"],
            replay_of=found["id"],
        )

    async def housekeeping(self) -> dict[str, int]:
        """Finish fan-outs whose sender died, forget events past the runs' retention."""
        now = self.now()
        finished = 0
        for stored in await self.store(EventStoreObject.pending, now - PENDING_GRACE):
            await self._fan_out(stored, await self._payload_text(stored))
            finished += 1
        purged = 0
        while True:
            res = await self.store(EventStoreObject.purge, now - self.config.retention, now)
            for key in res["packets"]:
                await self.platform.blobs.delete(key)
            purged += res["purged"]
            if not res["more"]:
                return {"events_finished": finished, "events_purged": purged}
