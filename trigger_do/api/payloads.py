"""Request bodies: bounded reads, payload packets (plain JSON, superjson, text, stored
packets) and Trigger.dev's trigger options, translated to trigger.do's."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ..ports import Blobs
from ..shared.serialization import loads
from .errors import HTTPError

SUPERJSON = "application/super+json"
STORE = "application/store"
UPLOADS = "uploads/"

# Trigger.dev option name -> trigger.do option name (others are accepted and ignored:
# payloadType, payloadSize, machine, priority, region, lockToVersion, test, ...)
OPTION_NAMES = {
    "idempotencyKey": "idempotency_key",
    "idempotencyKeyTTL": "idempotency_key_ttl",
    "delay": "delay",
    "ttl": "ttl",
    "tags": "tags",
    "metadata": "metadata",
    "maxAttempts": "max_attempts",
    "maxDuration": "max_duration",
    "concurrencyKey": "concurrency_key",
    "queue": "queue",
}


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) past `limit` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes, *, empty: Any = None) -> Any:
    if not body.strip():
        return empty
    try:
        return loads(body)
    except (ValueError, TypeError) as exc:
        raise HTTPError(400, f"malformed JSON body: {exc}") from None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    value = parse_json(await read_body(request, limit), empty={})
    if not isinstance(value, dict):
        raise HTTPError(400, "the JSON body must be an object")
    return value


def decode_superjson(text: str) -> Any:
    """The plain value of a superjson string: its `json` part (dates stay ISO strings,
    as on Trigger.dev's own API)."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise HTTPError(400, f"malformed superjson payload: {exc}") from None
    if isinstance(parsed, dict) and "json" in parsed:
        return parsed["json"]
    return parsed


def decode_packet(data: Any, data_type: str | None, *, what: str = "payload") -> Any:
    """A value sent as `(data, dataType)`. No type: `data` is already the plain value."""
    if data_type is None:
        return data
    if data_type == SUPERJSON:
        if not isinstance(data, str):
            return data
        return decode_superjson(data)
    if data_type == "application/json":
        if not isinstance(data, str):
            return data
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise HTTPError(400, f"malformed JSON {what}: {exc}") from None
    if data_type.startswith("text/"):
        return data
    raise HTTPError(400, f"unsupported {what}Type {data_type!r}")


async def decode_payload(blobs: Blobs, payload: Any, options: dict[str, Any]) -> Any:
    """The payload of a trigger request, fetching an uploaded packet if it names one."""
    kind = options.get("payloadType")
    if kind != STORE:
        return decode_packet(payload, kind)
    if not isinstance(payload, str) or not payload.startswith(UPLOADS) or ".." in payload:
        raise HTTPError(400, "an application/store payload must name an uploaded packet")
    data = await blobs.get(payload)
    if data is None:
        raise HTTPError(400, f"no uploaded packet {payload!r} (upload it first)")
    meta = await blobs.get(payload + ".type")
    kind = meta.decode() if meta else "application/json"
    return decode_packet(data.decode(), kind)


def translate_options(raw: Any) -> dict[str, Any]:
    """Trigger.dev trigger options -> `TriggerOptions` fields (None values dropped)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HTTPError(400, "options must be an object")
    out: dict[str, Any] = {}
    for name, ours in OPTION_NAMES.items():
        value = raw.get(name)
        if value is None:
            continue
        if name == "queue" and isinstance(value, dict):
            value = value.get("name")
            if value is None:
                continue
        if name == "metadata":
            value = decode_packet(value, raw.get("metadataType"), what="metadata")
        out[ours] = value
    return out
