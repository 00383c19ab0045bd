"""Webhook sources as data: where a sender puts its signature, what it signs, and where the
event name and delivery id are. Three presets (`github`, `stripe`, `hmac`); a source of your
own is a preset with its fields changed:

    webhooks.source("acme", preset="hmac", signature_header="X-Acme-Signature",
                    prefix="sha256=", event_field="type", delivery_header="X-Acme-Delivery")

`scheme` is how the signature header reads: `hex` (an HMAC-SHA256 hex digest of the raw body,
after `prefix`), or `timestamped` (Stripe's `t=<unix>,v1=<hex>[,v1=...]`, the digest over
`"{t}.{raw body}"`, refused past `tolerance` seconds either way)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import TaskDefinitionError
from ..shared.subscriptions import SOURCE

Scheme = Literal["hex", "timestamped"]


@dataclass(frozen=True)
class WebhookSource:
    """One webhook source (`POST /webhooks/<name>`)."""

    name: str
    signature_header: str
    scheme: Scheme = "hex"
    prefix: str = ""
    tolerance: float | None = None  # seconds, for a timestamped signature
    event_header: str | None = None  # the event name from a header ...
    event_field: str | None = None  # ... or from a top-level field of the JSON body
    action_field: str | None = None  # a body field naming the action: `<event>.<action>` too
    delivery_header: str | None = None  # the delivery id from a header ...
    delivery_field: str | None = None  # ... or a body field; else a hash of body and signature
    secret: str | None = None  # else the subscribed tasks' `secret=`, else <NAME>_WEBHOOK_SECRET

    @property
    def secret_setting(self) -> str:
        """The setting (environment variable, Worker secret) holding its secret."""
        return f"{self.name.upper().replace('-', '_')}_WEBHOOK_SECRET"


PRESETS: dict[str, WebhookSource] = {
    "github": WebhookSource(
        "github",
        signature_header="X-Hub-Signature-256",
        prefix="sha256=",
        event_header="X-GitHub-Event",
        action_field="action",
        delivery_header="X-GitHub-Delivery",
    ),
    "stripe": WebhookSource(
        "stripe",
        signature_header="Stripe-Signature",
        scheme="timestamped",
        tolerance=300.0,
        event_field="type",
        delivery_field="id",
    ),
    "hmac": WebhookSource(
        "hmac",
        signature_header="X-Signature",
        event_header="X-Event",
        event_field="type",
        delivery_header="X-Delivery-Id",
    ),
}

_DECLARED: dict[str, WebhookSource] = {}


def source(name: str, *, preset: str = "hmac", **fields: Any) -> WebhookSource:
    """Declare webhook source `name` (served at `/webhooks/<name>`): `preset`'s fields, with
    those given changed. `TaskDefinitionError` for a bad name, preset or field."""
    if not isinstance(name, str) or not SOURCE.match(name):
        raise TaskDefinitionError(
            f"webhook source {name!r}: 1 to 64 lowercase letters, digits, - and _"
        )
    base = PRESETS.get(preset)
    if base is None:
        raise TaskDefinitionError(
            f"webhook source {name!r}: no preset {preset!r} (known: {', '.join(PRESETS)})"
        )
    known = {f.name for f in dataclasses.fields(WebhookSource)} - {"name"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TaskDefinitionError(
            f"webhook source {name!r}: unknown field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
        )
    made = dataclasses.replace(base, name=name, **fields)
    if made.scheme not in ("hex", "timestamped"):
        raise TaskDefinitionError(f"webhook source {name!r}: scheme must be hex or timestamped")
    if not made.signature_header:
        raise TaskDefinitionError(f"webhook source {name!r}: signature_header is required")
    _DECLARED[name] = made
    return made


def find_source(name: str) -> WebhookSource | None:
    """A declared source, else a preset of that name, else None."""
    return _DECLARED.get(name) or PRESETS.get(name)
