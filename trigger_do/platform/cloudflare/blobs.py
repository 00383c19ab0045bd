"""`Blobs` (packets) on an R2 bucket binding: `put(key, value, {httpMetadata})`,
`get(key)` -> `R2ObjectBody | null` (read with `arrayBuffer()`), `delete(key)`.

Bytes cross as `bytes`: the SDK's wrapper copies them into a Uint8Array in one step (a
pre-made Uint8Array proxy would be walked byte by byte: seconds of CPU for a packet)."""

from __future__ import annotations

from typing import Any

from . import ffi


class R2Blobs:
    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        await self.bucket.put(key, bytes(data), {"httpMetadata": {"contentType": content_type}})

    async def get(self, key: str) -> bytes | None:
        obj = await self.bucket.get(key)
        if obj is None:
            return None
        return ffi.to_bytes(await obj.arrayBuffer())

    async def delete(self, key: str) -> None:
        await self.bucket.delete(key)
