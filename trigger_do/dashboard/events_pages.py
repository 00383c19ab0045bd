"""Pages for events and webhook deliveries (issue 17's `engine.events`): lists, newest
first, filtered by name (events) or source (deliveries), each with a replay button (a POST
with the session's CSRF token, like every dashboard action). Added through `nav.register`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidEventError
from ..events.shapes import cursor_of, parse_cursor
from . import nav, web

PAGE = 50
MAX_FILTER = 200  # characters in a name or source filter


def _filter(request: Request, name: str) -> str | None:
    value = (request.query_params.get(name) or "").strip()
    if len(value) > MAX_FILTER:
        raise web.FormError(f"{name}: at most {MAX_FILTER} characters")
    return value or None


async def _page(request: Request, *, webhooks: bool) -> dict[str, Any]:
    key = "source" if webhooks else "name"
    value = _filter(request, key)
    cursor = request.query_params.get("cursor")
    try:
        after = parse_cursor(cursor) if cursor else None
    except InvalidEventError as exc:
        raise web.FormError(f"cursor: {exc}") from None
    events = web.engine_of(request).events
    if webhooks:
        rows = await events.page(webhooks=True, source=value, after=after, limit=PAGE)
    else:
        rows = await events.page(name=value, after=after, limit=PAGE)
    older = cursor_of(rows[-1]) if len(rows) == PAGE else ""
    return {"rows": rows, "value": value or "", "older": older}


@web.guarded
async def events_page(request: Request) -> Response:
    """`GET /events?name=&cursor=`: events sent, newest first."""
    return web.render(request, "events.html", **await _page(request, webhooks=False))


@web.guarded
async def webhooks_page(request: Request) -> Response:
    """`GET /webhooks?source=&cursor=`: accepted webhook deliveries, newest first."""
    return web.render(request, "webhooks.html", **await _page(request, webhooks=True))


@web.guarded
async def replay_event(request: Request) -> Response:
    """`POST /events/{id}/replay`: send it again to its subscribers (new runs, a new id)."""
    found = await web.engine_of(request).events.get(request.path_params["event_id"])
    await web.engine_of(request).events.replay(found["id"])
    return web.redirect(request, "/events")


@web.guarded
async def replay_delivery(request: Request) -> Response:
    """`POST /webhooks/{source}/{delivery id}/replay`: its event again, as a new delivery."""
    events = web.engine_of(request).events
    found = await events.find_delivery(
        request.path_params["delivery_id"], request.path_params["source"]
    )
    await events.replay(found["id"], found["source"])
    return web.redirect(request, "/webhooks")


def routes() -> list[BaseRoute]:
    """The replay actions (the list pages come in through `nav.register`)."""
    return [
        Route("/events/{event_id}/replay", replay_event, methods=["POST"]),
        Route("/webhooks/{source}/{delivery_id}/replay", replay_delivery, methods=["POST"]),
    ]


nav.register("Events", "/events", events_page)
nav.register("Webhooks", "/webhooks", webhooks_page)
