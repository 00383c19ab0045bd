"""Trigger.dev's waitpoint token API (`wait.createToken`, `wait.listTokens`,
`wait.retrieveToken`, `wait.completeToken`), unchanged:

- `POST /api/v1/waitpoints/tokens {idempotencyKey?, idempotencyKeyTTL?, timeout?, tags?}` ->
  `{id, isCached, url}`
- `GET /api/v1/waitpoints/tokens` with `filter[status|idempotencyKey|tags]`,
  `filter[createdAt][period|from|to]` and cursor pages `page[size|after|before]`
- `GET /api/v1/waitpoints/tokens/{id}` (adds `output`, `outputType`, `outputIsError`)
- `POST /api/v1/waitpoints/tokens/{id}/complete {data}` -> `{success: true}` (a public access
  token with `write:waitpoints:<id>`, what the client signs after `createToken`, may call it)
- `POST /api/v1/waitpoints/tokens/{id}/callback/{hash}`: the token's URL, for third parties
  that hold no key. It is exempt from the key check (`auth.PUBLIC_PATTERNS`): the hash, hex
  HMAC-SHA256 of the token id under the secret key, is its authentication, and it opens that
  one token only. The raw body is the output (not JSON: `{}`); a wrong hash is 401.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidDurationError, InvalidWaitTokenError, WaitTokenNotFoundError
from ..shared.durations import parse_duration
from ..shared.serialization import loads
from ..waitpoints.service import MAX_KEY, MAX_OUTPUT, check_callback
from ..waitpoints.shapes import page, parse_cursor, token_item
from . import auth
from .errors import HTTPError
from .fields import PageSize
from .jsonbody import MAX_DEPTH, depth_of, read_body, read_json_object
from .requests import Body, engine_of, query_value, validate
from .run_list import _csv, _when

Handler = Callable[[Request], Awaitable[Response]]
TOKEN_ID = re.compile(r"waitpoint_[0-9a-zA-Z_]{1,54}")
FILTERS = {"status", "idempotencyKey", "tags", "createdAt][period", "createdAt][from",
           "createdAt][to"}  # fmt: skip


class CreateTokenBody(Body):
    idempotencyKey: Annotated[StrictStr, Field(min_length=1, max_length=MAX_KEY)] | None = None
    idempotencyKeyTTL: Annotated[StrictStr, Field(max_length=100)] | None = None
    timeout: Annotated[StrictStr, Field(max_length=100)] | None = None
    tags: (
        Annotated[StrictStr, Field(max_length=128)]
        | Annotated[list[Annotated[StrictStr, Field(max_length=128)]], Field(max_length=10)]
        | None
    ) = None


def _token_errors(handler: Handler) -> Handler:
    """No such token: 404 "Waitpoint not found"; a request that cannot be: 422."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except WaitTokenNotFoundError:
            raise HTTPError(404, "Waitpoint not found", code="waitpoint_not_found") from None
        except InvalidWaitTokenError as exc:
            raise HTTPError(422, str(exc), code="invalid_waitpoint_token") from None

    return wrapped


def _id(request: Request) -> str:
    token_id = str(request.path_params["token_id"])
    if not TOKEN_ID.fullmatch(token_id):
        raise WaitTokenNotFoundError(token_id[:64])
    return token_id


def base_url(request: Request) -> str:
    """Where this server is reached, as the caller reached it (mounted apps included)."""
    return str(request.base_url).rstrip("/")


def item(request: Request, token: dict[str, Any], *, details: bool = False) -> dict[str, Any]:
    url = engine_of(request).tokens.url(token["id"], base_url(request), auth.secret_of(request))
    return token_item(token, url, details=details)


@_token_errors
async def create(request: Request) -> Response:
    body = validate(CreateTokenBody, await read_json_object(request, 16 * 1024))
    token, cached = await engine_of(request).tokens.create(
        idempotency_key=body.idempotencyKey,
        idempotency_key_ttl=body.idempotencyKeyTTL,
        timeout=body.timeout,
        tags=body.tags,
    )
    url = engine_of(request).tokens.url(token["id"], base_url(request), auth.secret_of(request))
    return JSONResponse({"id": token["id"], "isCached": cached, "url": url})


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    for name in params:
        if name.startswith("filter[") and name.endswith("]") and name[7:-1] not in FILTERS:
            raise HTTPError(400, f"unknown filter {name!r}")
    out: dict[str, Any] = {}
    statuses = [s.upper() for s in _csv(request, "filter[status]")]
    if statuses:
        out["statuses"] = statuses
    key = params.get("filter[idempotencyKey]")
    if key:
        out["idempotency_key"] = key
    tags = _csv(request, "filter[tags]")
    if tags:
        out["tags"] = tags
    now = engine_of(request).now()
    for name, field, parse in (
        ("period", "created_from", lambda raw: now - parse_duration(raw)),
        ("from", "created_from", _when),
        ("to", "created_to", _when),
    ):
        raw = params.get(f"filter[createdAt][{name}]")
        try:
            when = parse(raw) if raw else None
        except (ValueError, InvalidDurationError) as exc:
            raise HTTPError(400, f"filter[createdAt][{name}]: {exc}") from None
        if when is not None:
            both = [w for w in (out.get(field), when) if w is not None]
            out[field] = max(both) if field == "created_from" else min(both)
    return out


@_token_errors
async def list_tokens(request: Request) -> Response:
    params = request.query_params
    size: int = query_value(PageSize, "page[size]", params.get("page[size]"), 25)
    filters = _filters(request)
    after = params.get("page[after]")
    before = None if after else params.get("page[before]")
    rows = await engine_of(request).tokens.list(
        limit=size + 1,
        after=parse_cursor(after) if after else None,
        before=parse_cursor(before) if before else None,
        **filters,
    )
    rows, pagination = page(rows, size, after=bool(after), before=bool(before))
    return JSONResponse({"data": [item(request, r) for r in rows], "pagination": pagination})


@_token_errors
async def retrieve(request: Request) -> Response:
    token = await engine_of(request).tokens.get(_id(request))
    return JSONResponse(item(request, token, details=True))


@auth.accepts_public_tokens
@_token_errors
async def complete(request: Request) -> Response:
    token_id = _id(request)
    auth.require(request, "write", waitpoints=token_id)
    body = await read_json_object(request, MAX_OUTPUT + 1024)
    await engine_of(request).tokens.complete(token_id, body.get("data"))
    return JSONResponse({"success": True})


@_token_errors
async def callback(request: Request) -> Response:
    """No key (`auth.PUBLIC_PATTERNS`): the hash in the path authenticates the caller."""
    token_id = _id(request)
    if not check_callback(auth.secret_of(request), token_id, str(request.path_params["hash"])):
        raise HTTPError(401, "invalid callback URL: the hash does not match this waitpoint")
    raw = await read_body(request, MAX_OUTPUT)
    depth = depth_of(raw)
    if depth > MAX_DEPTH:  # (stored, it could not be written back as JSON)
        raise HTTPError(400, f"callback body is nested {depth} levels deep, over {MAX_DEPTH}")
    try:
        data = loads(raw) if raw.strip() else {}
    except ValueError:
        data = {}
    await engine_of(request).tokens.complete(token_id, data)
    return JSONResponse({"success": True})
