"""`Blobs` (packets) on an R2 bucket binding: `put(key, value, {httpMetadata})`,
`get(key)` -> `R2ObjectBody | null` (read with `arrayBuffer()`), `delete(key)`."""

from __future__ import annotations

from typing import Any

from . import ffi


class R2Blobs:
    def __init__(self, bucket: Any) -> None:
        self.bucket = bucket

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        options = ffi.to_js({"httpMetadata": {"contentType": content_type}})
        await self.bucket.put(key, ffi.bytes_to_js(data), options)

    async def get(self, key: str) -> bytes | None:
        obj = ffi.to_py_object(await self.bucket.get(key))
        if obj is None:
            return None
        return ffi.to_bytes(await obj.arrayBuffer())

    async def delete(self, key: str) -> None:
        await self.bucket.delete(key)
