"""Receiving a webhook delivery: find its source, gather its secrets, verify it (nothing is
written for a refused one), then send it as an event from that source: its delivery id
deduplicates it for 24 hours, and every task subscribed to the source and event gets a run
whose payload is the delivery's envelope `{event, delivery_id, headers, payload}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..events.service import EventService
from ..ports import Settings
from .presets import WebhookSource, find_source
from .verify import Delivery, WebhookRejected, verify


class UnknownSourceError(WebhookRejected):
    def __init__(self, name: str) -> None:
        super().__init__(
            404,
            f"no webhook source {name[:64]!r}: the presets are github, stripe and hmac; "
            "declare another with trigger_do.webhooks.source(...)",
        )


def secrets_for(src: WebhookSource, events: EventService, settings: Settings) -> list[str]:
    """Every secret a delivery of `src` may be signed with: the source's own, its subscribed
    tasks' `secret=`, and the `<SOURCE>_WEBHOOK_SECRET` setting."""
    found: list[str] = []
    candidates = [src.secret]
    candidates += [
        t.subscription.secret
        for t in events.tasks()
        if t.subscription is not None and t.subscription.source == src.name
    ]
    candidates.append(settings.get(src.secret_setting))
    for secret in candidates:
        if secret and secret not in found:
            found.append(secret)
    return found


def source_of(name: str) -> WebhookSource:
    src = find_source(name)
    if src is None:
        raise UnknownSourceError(name)
    return src


def check(
    events: EventService, source: str, headers: Mapping[str, str], body: bytes, parse: Any
) -> Delivery:
    """The delivery, verified; `WebhookRejected` (nothing written) otherwise."""
    src = source_of(source)
    secrets = secrets_for(src, events, events.platform.settings)
    return verify(src, headers, body, secrets, events.now(), parse)


async def receive(events: EventService, delivery: Delivery) -> dict[str, Any]:
    """Start the delivery's runs (once per delivery id in 24 hours). Returns `{id, runs,
    cached}`."""
    return await events.send(
        delivery.event,
        delivery.envelope(),
        id=delivery.delivery_id,
        source=delivery.source,
        names=delivery.names,
    )
