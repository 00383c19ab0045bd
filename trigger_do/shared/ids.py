"""Identifiers: time-ordered, so that sorting by id sorts by creation."""

from __future__ import annotations

import os
import random
import time
import zlib

# The random part comes from a generator seeded by the OS, once per process (and again in a
# forked child, which must not repeat its parent's ids): an id costs no system call, which
# was a seventh of a 100,000-run batch's time. Ids are names, not secrets: nothing is
# authorized by knowing one.
_random = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_bits = _random.getrandbits


def new_id(prefix: str) -> str:
    """`prefix_` + 11 hex digits of milliseconds + 12 random hex digits (48 bits): ids
    sort by creation time, and stay unique without coordination."""
    return f"{prefix}_{int(time.time() * 1000):011x}{_bits(48):012x}"


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
