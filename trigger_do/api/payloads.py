"""Payloads and trigger options of a trigger request: packets (plain JSON, superjson, text,
uploaded packets) decoded, and Trigger.dev's options (validated by `requests`) translated
to trigger.do's. Every embedded JSON text goes through `jsonbody.parse_json` (its depth
limit included)."""

from __future__ import annotations

from typing import Any

from ..engine import Engine
from ..ports import Blobs
from .errors import HTTPError
from .fields import check_metadata
from .jsonbody import BadJSON, parse_json
from .packets import valid_storage_path
from .requests import TriggerOptionsBody, invalid_field

KIB = 1024
SUPERJSON = "application/super+json"
STORE = "application/store"


def body_limit(engine: Engine) -> int:
    """A payload travels escaped inside a JSON string: allow for that, then let the
    producer check the payload itself against `payload_limit` (413 with its size)."""
    return 2 * engine.config.payload_limit + 64 * KIB


def _parse(text: str, what: str) -> Any:
    try:
        return parse_json(text, what=what)
    except BadJSON as exc:
        raise HTTPError(400, str(exc)) from None


def decode_packet(data: Any, data_type: str | None, *, what: str = "payload") -> Any:
    """A value sent as `(data, dataType)`. No type: `data` is already the plain value."""
    if data_type is None or not isinstance(data, str):
        return data
    if data_type == SUPERJSON:
        parsed = _parse(data, f"superjson {what}")
        return parsed["json"] if isinstance(parsed, dict) and "json" in parsed else parsed
    if data_type == "application/json":
        return _parse(data, f"JSON {what}") if data.strip() else None
    if data_type.startswith("text/"):
        return data
    raise invalid_field(
        f"options.{what}Type",
        f"unsupported {what}Type {data_type[:100]!r}: use application/json, "
        "application/super+json, text/plain or (for a payload) application/store",
    )


async def decode_payload(blobs: Blobs, payload: Any, options: TriggerOptionsBody | None) -> Any:
    """The payload of a trigger request, read from its uploaded packet if it names one."""
    kind = options.payloadType if options is not None else None
    if kind != STORE:
        return decode_packet(payload, kind)
    if not valid_storage_path(payload):
        raise HTTPError(
            400, "an application/store payload must be the storagePath of an uploaded packet"
        )
    data = await blobs.get(payload)
    if data is None:
        raise HTTPError(400, f"no uploaded packet {payload!r} (upload it first)")
    meta = await blobs.get(payload + ".type")
    stored = meta.decode("utf-8", "replace") if meta else "application/json"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(400, f"the uploaded packet {payload!r} is not UTF-8 text: {exc}") from None
    return decode_packet(text, stored)


def trigger_options(options: TriggerOptionsBody | None) -> dict[str, Any]:
    """Validated Trigger.dev options as `TriggerOptions` fields (unset ones left out)."""
    if options is None:
        return {}
    given = {
        "idempotency_key": options.idempotencyKey,
        "idempotency_key_ttl": options.idempotencyKeyTTL,
        "delay": options.delay,
        "ttl": options.ttl,
        "tags": options.tags,
        "max_attempts": options.maxAttempts,
        "max_duration": options.maxDuration,
        "concurrency_key": options.concurrencyKey,
        "queue": options.queue,
    }
    out: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if options.metadata is not None:
        value = decode_packet(options.metadata, options.metadataType, what="metadata")
        if value is not None:
            try:
                out["metadata"] = check_metadata(value)
            except ValueError as exc:
                raise invalid_field("options.metadata", str(exc)) from None
    return out
