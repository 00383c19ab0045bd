"""Checking a webhook delivery: its signature against every secret its source has (compared in
constant time), a timestamped signature's age, then its event name and delivery id. Pure:
`verify` reads only its arguments, and raises `WebhookRejected` (with the HTTP status) for a
delivery that must not be accepted."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TriggerDoError
from ..shared.subscriptions import check_name
from .presets import WebhookSource

MAX_BODY = 10 * 1024 * 1024  # bytes of a delivery's body (413 past it)
KEPT_HEADERS_SKIP = frozenset({"authorization", "cookie", "proxy-authorization"})


class WebhookRejected(TriggerDoError):
    """A delivery refused: `status` 401 (signature), 400 (its body or event name)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Delivery:
    """An accepted delivery: what its runs receive is `envelope()`."""

    source: str
    event: str  # the name stored and shown (`pull_request.opened`)
    names: list[str]  # every name it answers to (`pull_request`, `pull_request.opened`)
    delivery_id: str
    headers: dict[str, str]
    payload: Any

    def envelope(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "delivery_id": self.delivery_id,
            "headers": self.headers,
            "payload": self.payload,
        }


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` under `secret` (what the senders compute)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _hex_signature(src: WebhookSource, header: str, body: bytes, secrets: list[str]) -> bool:
    given = header.strip()
    if src.prefix:
        if not given.startswith(src.prefix):
            return False
        given = given[len(src.prefix) :]
    ok = False
    for secret in secrets:  # every secret is tried: the time taken says nothing of which
        ok |= hmac.compare_digest(sign(secret, body).encode(), given.lower().encode())
    return ok


def _timestamped(
    src: WebhookSource, header: str, body: bytes, secrets: list[str], now: float
) -> None:
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    stamp = (parts.get("t") or [""])[0]
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12 or not parts.get("v1"):
        raise WebhookRejected(401, f"{src.signature_header} must read t=<unix time>,v1=<hex>")
    at = float(stamp)
    if src.tolerance is not None and abs(now - at) > src.tolerance:
        raise WebhookRejected(
            401,
            f"{src.signature_header} is {int(abs(now - at))} s from now: over the "
            f"{int(src.tolerance)} s tolerance (a replayed or delayed delivery)",
        )
    signed = stamp.encode() + b"." + body
    ok = False
    for secret in secrets:
        expected = sign(secret, signed).encode()
        for given in parts["v1"]:
            ok |= hmac.compare_digest(expected, given.strip().lower().encode())
    if not ok:
        raise WebhookRejected(401, f"{src.signature_header} does not match: bad signature")


def verify(
    src: WebhookSource,
    headers: Mapping[str, str],
    body: bytes,
    secrets: list[str],
    now: float,
    parse: Any,
) -> Delivery:
    """The delivery `body` with `headers` is, if its signature holds; else `WebhookRejected`.
    `parse(body)` turns the body into its JSON value (raising `ValueError` if it is not)."""
    if not secrets:
        raise WebhookRejected(
            401,
            f"webhook source {src.name!r} has no secret: set {src.secret_setting} (or "
            "secret= on its task); every delivery is refused until then",
        )
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(src.signature_header.lower())
    if not signature:
        raise WebhookRejected(401, f"missing signature header {src.signature_header}")
    if src.scheme == "timestamped":
        _timestamped(src, signature, body, secrets, now)
    elif not _hex_signature(src, signature, body, secrets):
        raise WebhookRejected(401, f"{src.signature_header} does not match: bad signature")
    try:
        payload = parse(body)
    except ValueError as exc:
        raise WebhookRejected(400, f"the delivery's body is not JSON: {exc}") from None
    fields = payload if isinstance(payload, dict) else {}
    event = _event(src, lower, fields)
    names = [event]
    action = fields.get(src.action_field) if src.action_field else None
    if isinstance(action, str) and action and check_name(f"{event}.{action}") is None:
        event = f"{event}.{action}"
        names.append(event)
    delivery = _delivery_id(src, lower, fields, body, signature)
    kept = {k: v for k, v in lower.items() if k not in KEPT_HEADERS_SKIP}
    return Delivery(src.name, event, names, delivery, kept, payload)


def _event(src: WebhookSource, headers: dict[str, str], fields: dict[str, Any]) -> str:
    name: Any = None
    if src.event_header:
        name = headers.get(src.event_header.lower())
    if not name and src.event_field:
        name = fields.get(src.event_field)
    if not name:
        where = " or ".join(
            w
            for w in (
                src.event_header and f"header {src.event_header}",
                src.event_field and f"body field {src.event_field!r}",
            )
            if w
        )
        raise WebhookRejected(400, f"the delivery names no event ({where})")
    problem = check_name(name)
    if problem:
        raise WebhookRejected(400, f"the delivery's event: {problem}")
    return str(name)


def _delivery_id(
    src: WebhookSource,
    headers: dict[str, str],
    fields: dict[str, Any],
    body: bytes,
    signature: str,
) -> str:
    found: Any = None
    if src.delivery_header:
        found = headers.get(src.delivery_header.lower())
    if not found and src.delivery_field:
        found = fields.get(src.delivery_field)
    if isinstance(found, int | float) and not isinstance(found, bool) and math.isfinite(found):
        found = str(found)
    if isinstance(found, str) and 1 <= len(found) <= 256 and found.isprintable():
        return found
    return "sha256:" + hashlib.sha256(body + b"\n" + signature.encode()).hexdigest()
