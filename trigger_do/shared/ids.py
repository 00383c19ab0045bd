"""Identifiers: time-ordered, so that sorting by id sorts by creation."""

from __future__ import annotations

import os
import time
import zlib


def new_id(prefix: str) -> str:
    """`prefix_` + 11 hex digits of milliseconds + 12 random hex digits (48 bits): ids
    sort by creation time, and stay unique without coordination."""
    return f"{prefix}_{int(time.time() * 1000):011x}{os.urandom(6).hex()}"


def shard_of(key: str, shards: int) -> int:
    return zlib.crc32(key.encode()) % shards if shards > 1 else 0


def new_sharded_id(prefix: str, key: str | None = None, shards: int = 1) -> str:
    """An id; with `key`, one that lives on the key's run-index shard (an idempotency key's
    unique row must be beside the run or batch it names, and found from its id alone)."""
    shard = shard_of(key, shards) if key is not None else None
    while True:
        new = new_id(prefix)
        if shard is None or shard_of(new, shards) == shard:
            return new
