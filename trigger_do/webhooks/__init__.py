"""Webhooks, verified by signature: `POST /webhooks/<source>` starts the tasks subscribed to
that source (`@task(id=..., source="github", event="push")`).

Presets as data (`presets.py`: github, stripe, hmac; `source(...)` declares another), the
pure check (`verify.py`), receiving (`service.py`: through the events service, so a delivery
id deduplicates like an event id)."""

from .presets import PRESETS, WebhookSource, source
from .verify import sign

__all__ = ["PRESETS", "WebhookSource", "sign", "source"]
