"""Request bodies as JSON: a bounded read, then a parse that refuses what would hurt later.

`parse_json` refuses (400, `BadJSON`) malformed JSON, NaN/Infinity (which JSON cannot
hold: the stdlib parser would accept them), lone surrogates, and nesting deeper than
`MAX_DEPTH` levels. The depth is measured on the text, without recursion, before the text
is parsed, so neither the parser nor anything after it (orjson's writer stops at 255
levels, the stdlib parser raises `RecursionError` near 1,000) ever sees a deeper value.

A body's `Content-Type` is not consulted: the body must be JSON whatever it says (curl's
`-d` sends `application/x-www-form-urlencoded`), and an empty body is refused where a
route needs one (`read_json_object(..., required=True)`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from itertools import accumulate
from typing import Any

from starlette.requests import Request

from ..shared.serialization import HAVE_ORJSON, dumps, loads
from .errors import HTTPError

MAX_DEPTH = 64  # levels of arrays and objects in one JSON text (a body, a packet)

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


class BadJSON(ValueError):
    """Text that is not JSON trigger.do accepts; the message says why."""


def depth_of(text: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON `text` (brackets inside strings
    do not count). Linear, iterative: safe on any input, well-formed or not."""
    opens = text.count(b"[") + text.count(b"{")
    if opens <= 1:
        return opens
    if b'"' in text:
        text = _STRING.sub(b"", text)
    steps = text.translate(_STEP, _NOT_BRACKET)
    return max(0, max(accumulate(memoryview(steps).cast("b")), default=0))


def _no_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON(f"{text[:40]} is too large for a JSON number")
    return value


def _loads(text: bytes | str) -> Any:
    if HAVE_ORJSON:
        return loads(text)
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    try:  # the stdlib parser lets lone surrogates through; orjson refuses them
        dumps(value).encode()
    except UnicodeEncodeError:
        raise BadJSON("a string holds a lone surrogate (not valid Unicode)") from None
    return value


def parse_json(text: bytes | str, *, what: str = "JSON body", max_depth: int = MAX_DEPTH) -> Any:
    """The value of JSON `text`, or `BadJSON` naming `what` and why."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = depth_of(raw)
    if depth > max_depth:
        raise BadJSON(f"{what} is nested {depth} levels deep, over the limit of {max_depth}")
    try:
        return _loads(text)
    except BadJSON as exc:
        raise BadJSON(f"malformed {what}: {exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadJSON(f"malformed {what}: {exc}") from None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) past `limit` bytes without reading further."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body is {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def ndjson_objects(
    request: Request, limit: int, most: int, size: int
) -> AsyncIterator[list[tuple[int, dict[str, Any]]]]:
    """The body's NDJSON lines as they arrive, parsed, as lists of `(line number, object)`
    of `size` each, the last one shorter (blank lines skipped): 400 naming a line that is not a JSON
    object, 413 past `limit` bytes or `most` lines. Nothing is read ahead of what the
    caller asks for, so a chunk can be written while the client still sends the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"request body is {declared} bytes, over the limit of {limit}")
    received, number, count = 0, 0, 0
    tail: list[bytes] = []  # the line still being received, in parts
    pending: list[tuple[int, bytes]] = []  # lines received, parsed when their chunk goes

    def parsed(raw: list[tuple[int, bytes]]) -> list[tuple[int, dict[str, Any]]]:
        out: list[tuple[int, dict[str, Any]]] = []
        for n, text in raw:
            try:
                item = parse_json(text, what=f"JSON on line {n}")
            except BadJSON as exc:
                raise HTTPError(400, str(exc)) from None
            if not isinstance(item, dict):
                raise HTTPError(400, f"line {n} is not a JSON object")
            out.append((n, item))
        return out

    def take(text: bytes) -> None:
        nonlocal number, count
        number += 1
        if text.strip():
            count += 1
            if count > most:
                raise HTTPError(413, f"a batch has at most {most} items")
            pending.append((number, text))

    async for part in request.stream():
        received += len(part)
        if received > limit:
            raise HTTPError(413, f"request body is over the limit of {limit} bytes")
        if b"\n" not in part:  # a long line in many parts: joined once it ends
            tail.append(part)
            continue
        *complete, last = b"".join([*tail, part]).split(b"\n")
        tail = [last]
        for text in complete:
            take(text)
        while len(pending) >= size:
            chunk, pending[:] = pending[:size], pending[size:]
            yield parsed(chunk)
    take(b"".join(tail))
    if pending:
        yield parsed(pending)


def parse_object(raw: bytes, *, required: bool = False, what: str = "JSON body") -> dict[str, Any]:
    """`raw` as a JSON object (400 otherwise). An empty body is `{}` unless `required`."""
    if not raw.strip():
        if required:
            raise HTTPError(
                400,
                "the request body is empty: send a JSON object, e.g. "
                '{"payload": {...}} (use {} for no payload)',
            )
        return {}
    try:
        value = parse_json(raw, what=what)
    except BadJSON as exc:
        raise HTTPError(400, str(exc)) from None
    if not isinstance(value, dict):
        raise HTTPError(400, f"the {what} must be a JSON object, not {type(value).__name__}")
    return value


async def read_json_object(
    request: Request, limit: int, *, required: bool = False
) -> dict[str, Any]:
    """The body as a JSON object (400 if it is not one, 413 past `limit` bytes)."""
    return parse_object(await read_body(request, limit), required=required)
