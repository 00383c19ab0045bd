"""Events from Python: `send`, `list`, `retrieve`, `replay`, embedded (straight into the
engine on a database, or inside `trigger_do.local(...)`) or remote (over the HTTP API, with
`TRIGGER_API_URL`), wherever the SDK's other calls go, raising the same errors.

    sent = await trigger_do.events.send("user.created", {"user_id": "u1"}, id="evt-123")
    sent.runs   # one run id per subscribed task
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from ..errors import (
    ApiError,
    ConfigurationError,
    EventNotFoundError,
    InvalidEventError,
    NonFiniteNumberError,
    PayloadValidationError,
)
from .shapes import event_object

__all__ = ["Event", "EventPage", "SentEvent", "list", "replay", "retrieve", "send", "send_sync"]


@dataclass(frozen=True)
class SentEvent:
    """What `send` and `replay` return: the event's id and the runs it started (one per
    subscribed task, by task id). `cached`: this id was sent within 24 hours, and `runs`
    are that first event's."""

    id: str
    runs: builtins.list[str]
    cached: bool = False


@dataclass(frozen=True)
class Event:
    """A stored event (or webhook delivery: `source` set)."""

    id: str
    name: str
    runs: builtins.list[str]
    status: str  # "delivered", or "pending" while its runs are being made
    created_at: datetime
    source: str | None = None
    replay_of: str | None = None
    payload: Any = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Event:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            runs=[str(r) for r in data.get("runs") or []],
            status=str(data["status"]),
            created_at=datetime.fromisoformat(str(data["createdAt"]).replace("Z", "+00:00")),
            source=data.get("source"),
            replay_of=data.get("replayOf"),
            payload=data.get("payload"),
        )


@dataclass(frozen=True)
class EventPage:
    """One page of `list`: iterate it; `next_cursor` (None on the last page) gives the next."""

    data: builtins.list[Event]
    next_cursor: str | None

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class Backend(Protocol):
    """Where event calls go; each answers in the API's shapes."""

    async def send(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def list(self, params: dict[str, Any]) -> dict[str, Any]: ...

    async def retrieve(self, event_id: str) -> dict[str, Any]: ...

    async def replay(self, event_id: str) -> dict[str, Any]: ...


class EmbeddedEvents:
    """Event calls straight into an engine."""

    def __init__(self, engine: Any) -> None:
        self.events = engine.events

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        done = await self.events.send(body["name"], body.get("payload"), id=body.get("id"))
        return {"id": done["id"], "runs": done["runs"], "isCached": done["cached"]}

    async def list(self, params: dict[str, Any]) -> dict[str, Any]:
        from .shapes import page_of

        return await page_of(self.events, params, webhooks=False)

    async def retrieve(self, event_id: str) -> dict[str, Any]:
        return event_object(await self.events.get(event_id), payload=True)

    async def replay(self, event_id: str) -> dict[str, Any]:
        done = await self.events.replay(event_id)
        return {"id": done["id"], "runs": done["runs"], "isCached": done["cached"]}


class RemoteEvents:
    """Event calls over a trigger.do server's HTTP API."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self.client._call(method, path, **kwargs)
        except PayloadValidationError as exc:  # 422: a bad name or id is what embedded raises
            invalid = [e for e in exc.errors if e.get("type") == "invalid_event"]
            if invalid:
                raise InvalidEventError(str(invalid[0]["msg"]), str(invalid[0]["loc"])) from None
            raise
        except ApiError as exc:
            if exc.status == 404 and path.startswith("/api/v1/events/"):
                raise EventNotFoundError(path.split("/")[4]) from None
            raise

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        from ..shared.serialization import dumps

        try:  # what the engine refuses, refused before sending (as embedded)
            text = dumps(body)
        except (TypeError, NonFiniteNumberError) as exc:
            raise PayloadValidationError(f"event payload: {exc}") from None
        headers = {"content-type": "application/json"}
        return dict(await self._call("POST", "/api/v1/events", content=text, headers=headers))

    async def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("GET", "/api/v1/events", params=params))

    async def retrieve(self, event_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"/api/v1/events/{quote(event_id, safe='')}"))

    async def replay(self, event_id: str) -> dict[str, Any]:
        path = f"/api/v1/events/{quote(event_id, safe='')}/replay"
        return dict(await self._call("POST", path))


def backend() -> Backend:
    """Where the SDK's calls go now (`trigger_do.sdk.client.current_client`)."""
    from ..sdk.client import EmbeddedClient, current_client
    from ..sdk.remote import RemoteClient

    client = current_client()
    if isinstance(client, EmbeddedClient):
        return EmbeddedEvents(client.engine)
    if isinstance(client, RemoteClient):
        return RemoteEvents(client)
    raise ConfigurationError(f"events cannot go to {client!r}")  # pragma: no cover


def _sent(got: dict[str, Any]) -> SentEvent:
    return SentEvent(str(got["id"]), [str(r) for r in got["runs"]], bool(got.get("isCached")))


async def send(name: str, payload: Any = None, *, id: str | None = None) -> SentEvent:
    """Send event `name` to every task subscribed to it (`@task(..., event=...)`), one run
    each. The same `id` again within 24 hours starts nothing and returns the first event's
    runs. A subscriber whose payload schema refuses `payload` gets a FAILED run naming the
    field; the others still run. `InvalidEventError` for a bad name or id."""
    from ..shared.subscriptions import check_name
    from .service import check_id

    problem = check_name(name)  # here, so that remote raises what embedded does
    if problem:
        raise InvalidEventError(problem, "name")
    body: dict[str, Any] = {"name": name, "payload": payload}
    if id is not None:
        check_id(id)
        body["id"] = id
    return _sent(await backend().send(body))


def send_sync(name: str, payload: Any = None, *, id: str | None = None) -> SentEvent:
    """`send` for code outside an event loop (Django, Flask, a webhook view, scripts)."""
    from ..sdk.sync import run_sync

    return run_sync(send(name, payload, id=id))


async def list(
    *,
    name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 25,
    cursor: str | None = None,
) -> EventPage:
    """One page of events, newest first (of one `name`, sent from `since` to `until`)."""
    params: dict[str, Any] = {"limit": limit}
    if name is not None:
        params["name"] = name
    if since is not None:
        params["from"] = since.astimezone(UTC).isoformat()
    if until is not None:
        params["to"] = until.astimezone(UTC).isoformat()
    if cursor is not None:
        params["cursor"] = cursor
    got = await backend().list(params)
    return EventPage([Event.from_api(e) for e in got["data"]], got.get("nextCursor"))


async def retrieve(event_id: str) -> Event:
    """One event, with its payload; `EventNotFoundError` if there is none with this id."""
    return Event.from_api(await backend().retrieve(event_id))


async def replay(event_id: str) -> SentEvent:
    """Send a stored event again to its name's subscribers now: new runs, a new id."""
    return _sent(await backend().replay(event_id))
