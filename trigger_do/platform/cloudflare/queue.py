"""The `Queue` and `Message` ports on a Cloudflare Queue binding and a consumer's batch.

Producer: `binding.sendBatch([{body, contentType: "json", delaySeconds}])`, chunked so
each call stays within 100 messages and 256 KB, each body within 128 KB. The requests are
plain Python: the SDK's binding wrapper converts them (None as JS null, so a key whose value
is None survives the JSON encoding). Consumer: each delivered `QueueMessage` (through the
SDK: `timestamp` a `datetime`, `body` plain Python) wrapped as a `Message` port whose
`ack()`/`retry(delay)` call the JS ones (`retry({delaySeconds})`). Cloudflare acks every
message left unsettled when the handler returns, so `settle_unsettled` retries those
explicitly first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...errors import MessageTooLargeError
from ...ports import MAX_MESSAGE_BYTES, MAX_SEND_BATCH, OutMessage
from ...shared.serialization import dumps
from . import ffi

MAX_BATCH_BYTES = 256_000  # sendBatch: 256 KB for all its messages together
MAX_DELAY_SECONDS = 43_200  # delaySeconds: at most 12 hours
PER_MESSAGE_OVERHEAD = 100  # allowance for each message's metadata in the batch size


def delay_seconds(delay: float) -> int:
    """A delay as Cloudflare takes it: whole seconds (rounded up, never early), 0..12 h."""
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(delay - 1e-9)))


class CloudflareQueue:
    """The producer side, on a queue binding (`env.RUN_QUEUE`)."""

    def __init__(self, binding: Any) -> None:
        self.binding = binding

    async def send_batch(self, messages: Sequence[OutMessage]) -> None:
        if len(messages) > MAX_SEND_BATCH:
            raise MessageTooLargeError(f"send_batch takes at most {MAX_SEND_BATCH} messages")
        if messages:
            await self.binding.sendBatch([_request(m) for m in messages])

    async def send_all(self, messages: Sequence[OutMessage]) -> None:
        for chunk in _chunks(messages):
            await self.send_batch(chunk)


def _request(m: OutMessage) -> dict[str, Any]:
    size = len(dumps(m.body).encode())
    if size > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(f"a queue message of {size} bytes, over {MAX_MESSAGE_BYTES}")
    return {"body": m.body, "contentType": "json", "delaySeconds": delay_seconds(m.delay_seconds)}


def _chunks(messages: Sequence[OutMessage]) -> list[list[OutMessage]]:
    chunks: list[list[OutMessage]] = []
    chunk: list[OutMessage] = []
    size = 0
    for m in messages:
        n = len(dumps(m.body).encode()) + PER_MESSAGE_OVERHEAD
        if chunk and (len(chunk) >= MAX_SEND_BATCH or size + n > MAX_BATCH_BYTES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(m)
        size += n
    if chunk:
        chunks.append(chunk)
    return chunks


class CloudflareMessage:
    """One delivered message (the `Message` port) over the JS `Message`."""

    def __init__(self, message: Any) -> None:
        self._message = message
        self.id = str(message.id)
        self.attempts = int(message.attempts)
        self.timestamp = ffi.epoch_seconds(message.timestamp)
        self.body = ffi.to_py(message.body)
        self.settled: str | None = None

    def ack(self) -> None:
        self.settled = "ack"
        self._message.ack()

    def retry(self, delay_seconds_: float = 0.0) -> None:
        self.settled = "retry"
        self._message.retry({"delaySeconds": delay_seconds(delay_seconds_)})


def wrap_batch(batch: Any) -> list[CloudflareMessage]:
    return [CloudflareMessage(m) for m in batch.messages]


def settle_unsettled(messages: Sequence[CloudflareMessage], delay: float = 0.0) -> int:
    """Retry every message neither acked nor retried (the port's "neither means retry";
    Cloudflare would ack them when the handler returns). Returns how many."""
    pending = [m for m in messages if m.settled is None]
    for m in pending:
        m.retry(delay)
    return len(pending)
