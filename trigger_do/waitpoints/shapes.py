"""Wait tokens in Trigger.dev's shapes (`WaitpointTokenItem`, `WaitpointRetrieveTokenResponse`)
and the list's page cursors, shared by the HTTP API and the embedded Python calls. Optional
keys are omitted when empty (the official client refuses `null`)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidWaitTokenError


def iso(ts: float) -> str:
    """Epoch seconds as JavaScript's ISO form (milliseconds, `Z`)."""
    when = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")


def token_item(token: dict[str, Any], url: str, *, details: bool = False) -> dict[str, Any]:
    """A store record as a `WaitpointTokenItem`; with `details`, the retrieve shape (its
    output as JSON text, `outputType`, `outputIsError`)."""
    out: dict[str, Any] = {
        "id": token["id"],
        "url": url,
        "status": token["status"],
        "tags": token["tags"],
        "createdAt": iso(token["created_at"]),
    }
    if token["completed_at"] is not None:
        out["completedAt"] = iso(token["completed_at"])
    if token["timeout_at"] is not None:
        out["timeoutAt"] = iso(token["timeout_at"])
    if token["idempotency_key"] is not None:
        out["idempotencyKey"] = token["idempotency_key"]
        if token["idempotency_key_expires_at"] is not None:
            out["idempotencyKeyExpiresAt"] = iso(token["idempotency_key_expires_at"])
    if details and token["output"] is not None:
        out["output"] = token["output"]
        out["outputType"] = "application/json"
        out["outputIsError"] = token["output_is_error"]
    return out


def cursor(token: dict[str, Any]) -> str:
    raw = f"{token['created_at']!r}|{token['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,17})?(?:e[+-]?[0-9]{1,3})?)\|(waitpoint_\w{1,54})")


def parse_cursor(text: str) -> list[Any]:
    """`[created_at, id]`; `InvalidWaitTokenError` for anything `cursor` does not make."""
    try:
        if len(text) > 200 or not text.isascii():
            raise ValueError(text)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        found = _CURSOR.fullmatch(raw)
        if found is None:
            raise ValueError(raw)
        return [float(found.group(1)), found.group(2)]
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidWaitTokenError(f"invalid page cursor {text[:100]!r}") from None


def page(
    rows: list[dict[str, Any]], size: int, *, after: bool, before: bool
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One page of `rows` (read with `size + 1`, newest first) and its `{next?, previous?}`
    cursors: going `before` a cursor reads newer rows."""
    pagination: dict[str, str] = {}
    if len(rows) > size:
        rows = rows[-size:] if before else rows[:size]
        pagination["previous" if before else "next"] = cursor(rows[0] if before else rows[-1])
    if rows and (after or before):
        pagination["next" if before else "previous"] = cursor(rows[-1] if before else rows[0])
    return rows, pagination
