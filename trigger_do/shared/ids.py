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


def new_run_id(*, shard: int | None = None, shards: int = 1) -> str:
    """A run id; with `shard`, one whose run-index shard is `shard` (for idempotency keys,
    whose unique row must live beside the run it names)."""
    while True:
        run_id = new_id("run")
        if shard is None or shard_of(run_id, shards) == shard:
            return run_id
