"""Bulk writes within the Sql port's rules: many rows travel as one JSON parameter
(`json_each(?)`), chunked so that no bound string exceeds a Durable Object row."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..ports import MAX_ROW_BYTES
from .serialization import dumps_checked


def json_chunks(rows: Sequence[Any], max_chars: int = MAX_ROW_BYTES // 4) -> Iterator[str]:
    """Yield JSON arrays of `rows`, each under `max_chars` characters (a single larger row
    goes alone); a character is at most 4 bytes, so a chunk stays under a DO's 2 MB. The
    rows are the engine's own (their numbers checked where they came in)."""
    if not rows:
        return
    whole = dumps_checked(list(rows))  # the common case: one array, one serialization
    if len(whole) <= max_chars:
        yield whole
        return
    chunk: list[str] = []
    size = 2
    for row in rows:
        text = dumps_checked(row)
        if chunk and size + len(text) + 1 > max_chars:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield "[" + ",".join(chunk) + "]"
