"""The MCP tools for events and webhooks: `send_event`, `list_events`, `replay_event`,
`list_webhook_deliveries`, `replay_webhook_delivery`, each one call on the events API
(`trigger_do/api/events.py`), so the API's own checks and messages reach the agent."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field

from .backend import Api
from .tools import Args, Result, Tool


class SendEventArgs(Args):
    name: str = Field(description='the event\'s name, e.g. "user.created"')
    payload: Any = Field(None, description="the payload every subscribed task gets")
    id: str | None = Field(None, description="the same id within 24 hours starts nothing new")


class _PageArgs(Args):
    from_: Annotated[str | None, Field(alias="from")] = Field(
        None, description="created at or after: ISO date or epoch ms"
    )
    to: str | None = Field(None, description="created at or before: ISO date or epoch ms")
    cursor: str | None = Field(None, description="the next page's cursor from a previous call")
    limit: int = Field(25, ge=1, le=100)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"limit": self.limit}
        for key, value in (("from", self.from_), ("to", self.to), ("cursor", self.cursor)):
            if value:
                out[key] = value
        return out


class ListEventsArgs(_PageArgs):
    name: str | None = Field(None, description="only events of this name")


class EventArgs(Args):
    eventId: str = Field(description="the event's id")


class ListDeliveriesArgs(_PageArgs):
    source: str | None = Field(None, description='only this source\'s, e.g. "github"')
    event: str | None = Field(None, description="only deliveries of this event")


class DeliveryArgs(Args):
    deliveryId: str = Field(description="the delivery's id (the sender's delivery id)")
    source: str | None = Field(None, description="the source, when two share a delivery id")


def _runs(runs: list[Any]) -> str:
    return ", ".join(str(r) for r in runs) if runs else "no run (no task subscribes to it)"


def _lines(page: dict[str, Any], key: str, empty: str) -> str:
    rows = page["data"]
    if not rows:
        return empty
    lines = [
        f"{r['id']}  {r[key]}  {r.get('source', '') + '  ' if r.get('source') else ''}"
        f"{r['status']}  {r['createdAt']}  runs: {_runs(r['runs'])}"
        for r in rows
    ]
    if page.get("nextCursor"):
        lines.append(f"(more: cursor {page['nextCursor']})")
    return "\n".join(lines)


async def send_event(api: Api, a: SendEventArgs) -> Result:
    body: dict[str, Any] = {"name": a.name, "payload": a.payload}
    if a.id is not None:
        body["id"] = a.id
    done = await api.request("POST", "/api/v1/events", json=body)
    cached = " (an existing event: same id)" if done.get("isCached") else ""
    return f"Sent event {a.name} as {done['id']}{cached}: {_runs(done['runs'])}", done


async def list_events(api: Api, a: ListEventsArgs) -> Result:
    params = a.params()
    if a.name:
        params["name"] = a.name
    page = await api.request("GET", "/api/v1/events", params=params)
    return _lines(page, "name", "No events."), page


async def replay_event(api: Api, a: EventArgs) -> Result:
    done = await api.request("POST", f"/api/v1/events/{quote(a.eventId, safe='')}/replay")
    return f"Replayed event {a.eventId} as {done['id']}: {_runs(done['runs'])}", done


async def list_webhook_deliveries(api: Api, a: ListDeliveriesArgs) -> Result:
    params = a.params()
    for key, value in (("source", a.source), ("event", a.event)):
        if value:
            params[key] = value
    page = await api.request("GET", "/api/v1/webhooks/deliveries", params=params)
    return _lines(page, "event", "No webhook deliveries."), page


async def replay_webhook_delivery(api: Api, a: DeliveryArgs) -> Result:
    path = f"/api/v1/webhooks/deliveries/{quote(a.deliveryId, safe='')}/replay"
    params = {"source": a.source} if a.source else None
    done = await api.request("POST", path, params=params)
    return f"Replayed delivery {a.deliveryId} as {done['id']}: {_runs(done['runs'])}", done


EVENT_TOOLS: list[Tool] = [
    Tool(
        "send_event",
        "Send an event: one run of every task subscribed to its name; the same id within "
        "24 hours answers the first event's runs.",
        SendEventArgs,
        send_event,
        read_only=False,
    ),
    Tool(
        "list_events",
        "Events sent, newest first, filtered by name or creation time; pages with cursor.",
        ListEventsArgs,
        list_events,
        read_only=True,
    ),
    Tool(
        "replay_event",
        "Send an event again with the same name and payload (a new event and new runs).",
        EventArgs,
        replay_event,
        read_only=False,
    ),
    Tool(
        "list_webhook_deliveries",
        "Webhook deliveries received (GitHub, Stripe, HMAC), newest first; pages with cursor.",
        ListDeliveriesArgs,
        list_webhook_deliveries,
        read_only=True,
    ),
    Tool(
        "replay_webhook_delivery",
        "Deliver a received webhook again to its subscribed tasks (new runs).",
        DeliveryArgs,
        replay_webhook_delivery,
        read_only=False,
    ),
]
