"""Wait tokens from Python, as Trigger.dev's `wait.createToken`, `wait.completeToken`,
`wait.retrieveToken` and `wait.listTokens`: embedded (straight into the engine on a database,
or inside `trigger_do.local(...)`) or remote (over the HTTP API, with `TRIGGER_API_URL`),
wherever the SDK's other calls go, raising the same errors.

    token = await wait_tokens.create(timeout="1h", idempotency_key="approve-doc-1")
    send_link(token.url)                       # a third party POSTs its answer there
    await wait_tokens.complete(token.id, {"approved": True})   # or complete it yourself
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import (
    ConfigurationError,
    InvalidDurationError,
    InvalidWaitTokenError,
    WaitTokenNotFoundError,
)
from .sdk.resource import RemoteResource
from .shared.durations import parse_duration
from .shared.serialization import loads
from .waitpoints.shapes import page, parse_cursor, token_item


def _date(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass(frozen=True)
class WaitToken:
    """A token just created: its id, its callback URL, and whether an idempotency key found
    it made already (`is_cached`: it may be complete)."""

    id: str
    url: str
    is_cached: bool = False


@dataclass(frozen=True)
class WaitTokenInfo:
    """A token as `retrieve` and `list` give it. `status`: WAITING, COMPLETED or TIMED_OUT;
    `output` the data it was completed with; `error` the timeout error, if it timed out."""

    id: str
    url: str
    status: str
    tags: builtins.list[str]
    created_at: datetime
    completed_at: datetime | None = None
    timeout_at: datetime | None = None
    idempotency_key: str | None = None
    idempotency_key_expires_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> WaitTokenInfo:
        value = loads(item["output"]) if item.get("output") is not None else None
        is_error = bool(item.get("outputIsError"))
        return cls(
            id=item["id"],
            url=item["url"],
            status=item["status"],
            tags=builtins.list(item.get("tags") or []),
            created_at=_date(item["createdAt"]) or datetime.min,
            completed_at=_date(item.get("completedAt")),
            timeout_at=_date(item.get("timeoutAt")),
            idempotency_key=item.get("idempotencyKey"),
            idempotency_key_expires_at=_date(item.get("idempotencyKeyExpiresAt")),
            output=None if is_error else value,
            error=value if is_error else None,
        )


@dataclass(frozen=True)
class WaitTokenPage:
    """One page of tokens, newest first; `next`: the cursor of the page after it."""

    data: builtins.list[WaitTokenInfo]
    next: str | None = None
    previous: str | None = None


class Backend(Protocol):
    """Where token calls go; each answers in the API's shapes."""

    async def create(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def complete(self, token_id: str, data: Any) -> None: ...

    async def retrieve(self, token_id: str) -> dict[str, Any]: ...

    async def list(self, params: dict[str, str]) -> dict[str, Any]: ...


class EmbeddedTokens:
    """Token calls straight into an engine."""

    def __init__(self, engine: Any) -> None:
        self.tokens = engine.tokens

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        token, cached = await self.tokens.create(
            idempotency_key=body.get("idempotencyKey"),
            idempotency_key_ttl=body.get("idempotencyKeyTTL"),
            timeout=body.get("timeout"),
            tags=body.get("tags"),
        )
        return {"id": token["id"], "isCached": cached, "url": self.tokens.url(token["id"])}

    async def complete(self, token_id: str, data: Any) -> None:
        await self.tokens.complete(token_id, data)

    async def retrieve(self, token_id: str) -> dict[str, Any]:
        token = await self.tokens.get(token_id)
        return token_item(token, self.tokens.url(token_id), details=True)

    async def list(self, params: dict[str, str]) -> dict[str, Any]:
        size = int(params.get("page[size]", 25))
        after = params.get("page[after]")
        period = params.get("filter[createdAt][period]")
        filters: dict[str, Any] = {
            "statuses": params["filter[status]"].split(",") if "filter[status]" in params else None,
            "idempotency_key": params.get("filter[idempotencyKey]"),
            "tags": params["filter[tags]"].split(",") if "filter[tags]" in params else None,
        }
        if period:
            try:
                filters["created_from"] = self.tokens.now() - parse_duration(period)
            except InvalidDurationError as exc:
                raise InvalidWaitTokenError(f"period: {exc}") from None
        rows = await self.tokens.list(
            limit=size + 1, after=parse_cursor(after) if after else None, **filters
        )
        rows, pagination = page(rows, size, after=bool(after), before=False)
        data = [token_item(r, self.tokens.url(r["id"])) for r in rows]
        return {"data": data, "pagination": pagination}


class RemoteTokens(RemoteResource):
    """Token calls over a trigger.do server's HTTP API (Trigger.dev's paths)."""

    BASE = "/api/v1/waitpoints/tokens"

    def invalid(self, message: str) -> Exception:
        return InvalidWaitTokenError(message)

    def not_found(self, resource_id: str) -> Exception:
        return WaitTokenNotFoundError(resource_id)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/v1/waitpoints/tokens", json=body))

    async def complete(self, token_id: str, data: Any) -> None:
        await self._call("POST", self._path(token_id, "/complete"), json={"data": data})

    async def retrieve(self, token_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", self._path(token_id)))

    async def list(self, params: dict[str, str]) -> dict[str, Any]:
        return dict(await self._call("GET", "/api/v1/waitpoints/tokens", params=params))


def backend() -> Backend:
    """Where the SDK's calls go now (`trigger_do.sdk.client.current_client`)."""
    from .sdk.client import EmbeddedClient, current_client
    from .sdk.remote import RemoteClient

    client = current_client()
    if isinstance(client, EmbeddedClient):
        return EmbeddedTokens(client.engine)
    if isinstance(client, RemoteClient):
        return RemoteTokens(client)
    raise ConfigurationError(f"wait tokens cannot go to {client!r}")  # pragma: no cover


Period = str | int | float | timedelta | datetime


def _period(value: Period | None, name: str) -> str | None:
    """A timeout or TTL as the API takes it: "30s", "1h", "3d", "4w", or an ISO date."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds()}s"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{float(value)}s"
    raise InvalidWaitTokenError(f'{name}: a duration ("1h", seconds) or a date, not {value!r}')


async def create(
    *,
    timeout: Period | None = None,
    idempotency_key: str | None = None,
    idempotency_key_ttl: Period | None = None,
    tags: str | builtins.list[str] | None = None,
) -> WaitToken:
    """A wait token. With `timeout` it completes by itself then, with the
    TRIGGER_WAITPOINT_TIMEOUT error; with a live `idempotency_key` (default TTL 30 days)
    the token it made before is returned (`is_cached`), completed or not."""
    body: dict[str, Any] = {}
    for name, value in (
        ("timeout", _period(timeout, "timeout")),
        ("idempotencyKey", idempotency_key),
        ("idempotencyKeyTTL", _period(idempotency_key_ttl, "idempotency_key_ttl")),
        ("tags", tags),
    ):
        if value is not None:
            body[name] = value
    got = await backend().create(body)
    return WaitToken(str(got["id"]), str(got["url"]), bool(got["isCached"]))


async def complete(token: str | WaitToken, data: Any = None) -> None:
    """Complete a token with `data` (any JSON value); what waits on it continues. A token
    completed already stays as it was (no error)."""
    token_id = token.id if isinstance(token, WaitToken) else token
    await backend().complete(token_id, data)


async def retrieve(token: str | WaitToken) -> WaitTokenInfo:
    """A token, with its output once completed (`WaitTokenNotFoundError` if none)."""
    token_id = token.id if isinstance(token, WaitToken) else token
    return WaitTokenInfo.from_api(await backend().retrieve(token_id))


async def list(
    *,
    status: str | builtins.list[str] | None = None,
    idempotency_key: str | None = None,
    tags: str | builtins.list[str] | None = None,
    period: str | None = None,
    limit: int = 25,
    after: str | None = None,
) -> WaitTokenPage:
    """One page of tokens, newest first (`limit` at most 100); `after`: a page's `next`."""
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidWaitTokenError(f"limit must be from 1 to 100, not {limit!r}")
    params: dict[str, str] = {"page[size]": str(limit)}
    for name, value in (("filter[status]", status), ("filter[tags]", tags)):
        if value:
            params[name] = value if isinstance(value, str) else ",".join(value)
    if idempotency_key:
        params["filter[idempotencyKey]"] = idempotency_key
    if period:
        params["filter[createdAt][period]"] = period
    if after:
        params["page[after]"] = after
    got = await backend().list(params)
    pagination = got.get("pagination") or {}
    return WaitTokenPage(
        data=[WaitTokenInfo.from_api(t) for t in got["data"]],
        next=pagination.get("next"),
        previous=pagination.get("previous"),
    )


__all__ = [
    "WaitToken",
    "WaitTokenInfo",
    "WaitTokenPage",
    "complete",
    "create",
    "list",
    "retrieve",
]
