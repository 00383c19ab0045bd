"""Events and webhooks over HTTP.

- `POST /api/v1/events` `{name, payload, id?}` -> `{id, runs, isCached}`: one run per task
  subscribed to `name`; the same `id` within 24 hours starts nothing and answers the first
  event's runs. `GET /api/v1/events?name=&from=&to=&limit=&cursor=` (newest first, a
  `nextCursor` while there are more), `GET /api/v1/events/{id}`, `POST .../{id}/replay`.
- `GET /api/v1/webhooks/deliveries?source=&event=&...` (the deliveries log) and
  `POST /api/v1/webhooks/deliveries/{id}/replay[?source=]`.
- `POST /webhooks/{source}`: a delivery from GitHub, Stripe or any HMAC sender.

Errors: 422 naming the field (`name`, `id`, `payload`), 400 for a query parameter that does
not parse, 404 for an unknown event, delivery or source."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import EventNotFoundError, InvalidEventError
from ..events.shapes import event_object, page_of
from ..webhooks import service as webhooks
from ..webhooks.verify import MAX_BODY, WebhookRejected
from .errors import HTTPError
from .jsonbody import BadJSON, parse_json, read_body, read_json_object
from .requests import Body, engine_of, validate

KIB = 1024


class SendEventBody(Body):
    name: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    payload: Any = None
    id: Annotated[StrictStr, Field(min_length=1, max_length=256)] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def _event_errors(*, query: bool = False) -> Callable[[Handler], Handler]:
    """An unknown event is 404; a bad field 422 naming it (a bad query parameter: 400)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except EventNotFoundError as exc:
                raise HTTPError(404, str(exc), code="event_not_found") from None
            except InvalidEventError as exc:
                if query:
                    raise HTTPError(400, str(exc), code="invalid_query", field=exc.field) from None
                errors = [{"loc": exc.field, "msg": str(exc), "type": "invalid_event"}]
                raise HTTPError(422, str(exc), code="validation", errors=errors) from None

        return wrapped

    return wrap


def _sent(done: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"id": done["id"], "runs": done["runs"], "isCached": done["cached"]})


@_event_errors()
async def send(request: Request) -> Response:
    engine = engine_of(request)
    limit = engine.config.payload_limit + 64 * KIB
    body = validate(SendEventBody, await read_json_object(request, limit, required=True))
    return _sent(await engine.events.send(body.name, body.payload, id=body.id))


@_event_errors(query=True)
async def list_events(request: Request) -> Response:
    page = await page_of(engine_of(request).events, request.query_params, webhooks=False)
    return JSONResponse(page)


@_event_errors()
async def retrieve(request: Request) -> Response:
    found = await engine_of(request).events.get(str(request.path_params["event_id"]))
    return JSONResponse(event_object(found, payload=True))


@_event_errors()
async def replay(request: Request) -> Response:
    return _sent(await engine_of(request).events.replay(str(request.path_params["event_id"])))


@_event_errors(query=True)
async def list_deliveries(request: Request) -> Response:
    page = await page_of(engine_of(request).events, request.query_params, webhooks=True)
    return JSONResponse(page)


@_event_errors()
async def replay_delivery(request: Request) -> Response:
    """Replay a delivery (the newest with this delivery id; `?source=` to pick one source's)."""
    engine = engine_of(request)
    delivery_id = str(request.path_params["delivery_id"])
    source = request.query_params.get("source") or None
    found = await engine.events.find_delivery(delivery_id, source)
    done = await engine.events.replay(found["id"], found["source"])
    return _sent(done)


async def receive_webhook(request: Request) -> Response:
    """`POST /webhooks/{source}`: authenticated by the sender's signature, never by the API
    key. This path is outside `/api/` on purpose: the key check (`auth.Authenticate`)
    covers `/api/...` only, and GitHub or Stripe cannot send a bearer key. A delivery
    without a valid signature (or whose source has no secret) is 401 and writes nothing;
    a body over 10 MiB is 413; the same delivery id within 24 hours is 200 with the first
    delivery's runs (`duplicate: true`). The runs are enqueued, never run here."""
    engine = engine_of(request)
    name = str(request.path_params["source"])
    try:
        webhooks.source_of(name)  # 404 before reading a body for a source nobody serves
        body = await read_body(request, MAX_BODY)
        delivery = webhooks.check(engine.events, name, request.headers, body, _parse)
    except WebhookRejected as exc:
        raise HTTPError(exc.status, str(exc), code="webhook_rejected") from None
    done = await webhooks.receive(engine.events, delivery)
    return JSONResponse(
        {
            "ok": True,
            "id": delivery.delivery_id,
            "event": delivery.event,
            "runs": done["runs"],
            "duplicate": done["cached"],
        }
    )


def _parse(body: bytes) -> Any:
    try:
        return parse_json(body, what="webhook body")
    except BadJSON as exc:
        raise ValueError(str(exc)) from None
