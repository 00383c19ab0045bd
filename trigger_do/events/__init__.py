"""Events: a custom event fanned out to every task subscribed to its name, one run each.

    @task(id="welcome", event="user.created")
    async def welcome(event: UserCreated, ctx): ...

    await trigger_do.events.send("user.created", {"user_id": "u1"}, id="evt-123")

The engine side: `store.py` (the event store object: events, their runs, 24-hour id
deduplication, lookup by name and time), `service.py` (`Engine.events`: send, fan-out,
replay, housekeeping), `shapes.py` (the HTTP API's shapes). Webhooks deliver through the
same service (`trigger_do/webhooks/`).
"""

from .api import Event, EventPage, SentEvent, list, replay, retrieve, send, send_sync

__all__ = ["Event", "EventPage", "SentEvent", "list", "replay", "retrieve", "send", "send_sync"]
