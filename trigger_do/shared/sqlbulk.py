"""Bulk writes within the Sql port's rules: many rows travel as one JSON parameter
(`json_each(?)`), chunked so that no bound string exceeds a Durable Object row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..ports import MAX_ROW_BYTES
from .serialization import dumps


def json_chunks(rows: Sequence[Any], max_bytes: int = MAX_ROW_BYTES // 2) -> Iterator[str]:
    """Yield JSON arrays of `rows`, each under `max_bytes` (a single larger row goes alone)."""
    chunk: list[str] = []
    size = 2
    for row in rows:
        text = dumps(row)
        if chunk and size + len(text) + 1 > max_bytes:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield "[" + ",".join(chunk) + "]"


def placeholders(n: int) -> str:
    return ",".join("?" * n)
