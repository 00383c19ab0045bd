"""Events and webhook deliveries as the HTTP API (and the SDK, embedded) show them, and the
list's query parameters (`name`, `source`, `from`, `to`, `cursor`, `limit`), checked."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidEventError

MAX_LIMIT = 100


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def event_object(row: dict[str, Any], *, payload: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "runs": row["runs"] or [],
        "status": row["status"],
        "createdAt": iso(row["created_at"]),
    }
    if row.get("source"):
        out["source"] = row["source"]
    if row.get("replay_of"):
        out["replayOf"] = row["replay_of"]
    if payload:
        out["payload"] = row.get("payload")
    return out


def delivery_object(row: dict[str, Any], *, payload: bool = False) -> dict[str, Any]:
    """A webhook delivery: `{id (its delivery id), source, event, status, runs, createdAt}`."""
    out = event_object(row, payload=payload)
    out["event"] = out.pop("name")
    return out


def cursor_of(row: dict[str, Any]) -> str:
    return f"{row['created_at']!r}_{row['uid']}"


def parse_cursor(text: str) -> list[Any]:
    head, _, uid = text.partition("_")
    try:
        at = float(head)
    except ValueError:
        at = math.nan
    if not uid or not math.isfinite(at) or len(text) > 200:
        raise InvalidEventError(f"cursor {text[:60]!r} is not one this API gave", "cursor")
    return [at, uid]


def _date(value: str, name: str) -> float:
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or len(value) > 40:
            raise InvalidEventError(
                f"{name} must be an ISO 8601 date or seconds since the epoch, not {value[:40]!r}",
                name,
            ) from None
        return number
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def list_filters(params: Mapping[str, Any], *, webhooks: bool) -> dict[str, Any]:
    """`EventService.page`'s arguments from query parameters; `InvalidEventError` naming
    the bad one."""
    out: dict[str, Any] = {"webhooks": webhooks}
    raw_limit = params.get("limit")
    limit = 25
    if raw_limit is not None and raw_limit != "":
        text = str(raw_limit)
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
            raise InvalidEventError(
                f"limit must be from 1 to {MAX_LIMIT}, not {text[:20]!r}", "limit"
            )
        limit = int(text)
    out["limit"] = limit
    field = "source" if webhooks else "name"
    for key in (field, "event") if webhooks else (field,):
        value = params.get(key)
        if value:
            if len(str(value)) > 256:
                raise InvalidEventError(f"{key} is at most 256 characters", key)
            out["name" if key in ("name", "event") else "source"] = str(value)
    # inclusive, to the microsecond the dates are shown with (a stored time has more digits)
    for key, arg, slack in (("from", "created_from", -1e-6), ("to", "created_to", 1e-6)):
        value = params.get(key)
        if value:
            out[arg] = _date(str(value), key) + slack
    cursor = params.get("cursor")
    if cursor:
        out["after"] = parse_cursor(str(cursor))
    return out


async def page_of(service: Any, params: Mapping[str, Any], *, webhooks: bool) -> dict[str, Any]:
    """`{data, nextCursor}`: one page of events (or deliveries) for these query parameters."""
    filters = list_filters(params, webhooks=webhooks)
    rows = await service.page(**filters)
    shape = delivery_object if webhooks else event_object
    more = len(rows) == filters["limit"]
    return {"data": [shape(r) for r in rows], "nextCursor": cursor_of(rows[-1]) if more else None}
