"""Hypothesis strategies for HTTP API requests, derived from the request models
(`trigger_do.api.requests`): each model field yields values of its own type near its bounds
(valid and just past them), or something hostile: a wrong type, a Unicode digit, a huge or
non-finite number, a path-like string, or JSON nested up to 100,000 levels.

Deep nesting cannot be built as a Python value (`json.dumps` would recurse), so a string
sentinel stands for it and `encode` splices the brackets into the text."""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import datetime
from typing import Any

import annotated_types as at
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

DEEP = "\x00deep:"  # a string "\x00deep:<n>" is encoded as arrays nested n levels
DEPTHS = [2, 63, 64, 65, 255, 256, 300, 1000, 100_000]
STRINGS = [
    "", " ", "²", "١٢", "0", "-1", "1e3", "0x10", "+5", "1_000", "NaN", "Infinity", "null",
    "\x00", "\u202e", "\ud800", "\U0001f600", "a/.", ".", "..", "../../etc/passwd", "a//b",
    "%2e%2e", "uploads/0000000000000000/x", "<script>", "100000000d", "0ms",
    "1ms", "1h", "-1h", "1h30m", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00",
    "2020-01-01T00:00:00Z", "20250101", "application/store", "application/super+json",
    "text/plain", "text/html", "task", "custom", "id", "pause", "resume", "set", "increment",
]  # fmt: skip
NUMBERS = [
    0, 1, -1, 2, 10, 100, 1000, 100_000, 100_001, 2**31, 2**53 - 1, 2**53, 2**63 - 1, 2**63,
    2**64 - 1, 2**64, 10**30, -(2**63) - 1, 0.5, 1.0, -0.0, 1e-320, 1e308, -1e308,
    float("nan"), float("inf"), float("-inf"), 315360001, 1e12,
]  # fmt: skip

NUMERIC = ["²", "١٢", "٣", "1" * 30, str(2**63), str(2**53), "-1", "0", "1", "25", "100", "101",
           "1e3", " 5", "+5", "0x10", "1.5", ""]  # fmt: skip
long_strings = st.sampled_from([129, 513, 1025, 10_000, 300_000]).map("x".__mul__)
hostile_strings = st.sampled_from(STRINGS) | st.text(max_size=40) | long_strings
hostile_numbers = (
    st.sampled_from(NUMBERS) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
numeric_strings = st.sampled_from(NUMERIC) | hostile_strings  # what a number field gets
deep = st.sampled_from(DEPTHS).map(lambda n: f"{DEEP}{n}")
scalars = st.none() | st.booleans() | hostile_strings | hostile_numbers
json_values = st.recursive(
    scalars | deep,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_strings, inner, max_size=4),
    max_leaves=12,
)
hostile = json_values | st.sampled_from([[], {}, [[]], {"name": None}])


def encode(value: Any) -> bytes:
    """JSON text for `value` (NaN and Infinity as the tokens a careless client sends),
    with deep-nesting sentinels spliced in."""
    text = json.dumps(value, allow_nan=True)
    return re.sub(
        r'"\\u0000deep:(\d+)"', lambda m: "[" * int(m[1]) + "]" * int(m[1]), text
    ).encode()


def _bounds(meta: list[Any]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for m in meta:
        if isinstance(m, FieldInfo):
            out.update(_bounds(list(m.metadata)))
        for kind in (at.Ge, at.Gt, at.Le, at.Lt, at.MinLen, at.MaxLen):
            if isinstance(m, kind):
                for attr in ("ge", "gt", "le", "lt", "min_length", "max_length"):
                    if hasattr(m, attr):
                        out[attr] = getattr(m, attr)
    return out


def _edges(low: int | float | None, high: int | float | None) -> st.SearchStrategy[Any]:
    """Integers on, inside and just past the bounds."""
    points = [0, 1, 2]
    for b in (low, high):
        if b is not None:
            points += [int(b) - 1, int(b), int(b) + 1]
    return st.sampled_from(sorted(set(points))) | st.integers(-(2**70), 2**70)


BY_VALIDATOR: dict[str, st.SearchStrategy[Any]] = {
    "_delay": st.sampled_from(["1s", "1h", "2d", 0, 3600, 0.0005, "2020-01-01T00:00:00Z"]),
    "_positive_duration": st.sampled_from(["1s", "5m", "1h", 30, 0.5, 0, "0s", 1e-4]),
    "_expiry": st.sampled_from(["1h", "15m", 1_700_000_000, 4_000_000_000, 0, -1]),
    "_tags": st.lists(st.text(min_size=1, max_size=12), max_size=12) | st.text(max_size=140),
    "_queue": st.sampled_from([{"name": "q"}, "q", {"name": "task/add"}, {"x": 1}]),
    "_concurrency_key": st.text(min_size=1, max_size=20) | st.integers(),
    "_finite_number": st.integers(-1000, 1000) | st.floats(allow_nan=False),
}


def from_type(tp: Any, meta: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values for the annotation `tp` (mostly valid, some past its bounds)."""
    meta = list(meta or [])
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *more = typing.get_args(tp)
        for m in more:
            func = getattr(getattr(m, "func", None), "__name__", "")
            if func in BY_VALIDATOR:
                return BY_VALIDATOR[func]
            if getattr(m, "discriminator", None):
                return from_type(base)
        return from_type(base, meta + more)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([from_type(a, meta) for a in typing.get_args(tp)])
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(tp))
    bounds = _bounds(meta)
    if origin is list:
        (item,) = typing.get_args(tp)
        return st.lists(
            from_type(item), min_size=0, max_size=min(3, int(bounds.get("max_length", 3)))
        )
    if origin is dict or tp is dict:
        return st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model(tp)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _edges(bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt")))
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False) | _edges(
            bounds.get("ge"), bounds.get("le")
        )
    if tp is str:
        low, high = int(bounds.get("min_length", 0)), int(bounds.get("max_length", 64))
        edges = st.sampled_from([high, high + 1, 0, 1]).map("a".__mul__)
        return st.text(min_size=low, max_size=min(high, 40)) | edges
    if tp is type(None):
        return st.none()
    if tp is datetime:
        return st.sampled_from(["2030-01-01T00:00:00Z"])
    return json_values  # Any


# Fields whose valid values a type cannot tell: known tasks, payloads the tasks accept.
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "task": st.sampled_from(["add", "http-echo"]),
    "taskIdentifier": st.sampled_from(["add", "http-echo"]),
    "payload": st.sampled_from([{"a": 1, "b": 2}] * 3 + [None, "text", [1, 2]]),
    "index": st.integers(0, 3),
    "options": st.sampled_from([None, {}, {"delay": "1h"}, {"tags": ["t"], "ttl": "1h"}]),
}


def model(cls: type[BaseModel], hostile_rate: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """A request body for `cls`: each field absent, of its type, or (1 in `hostile_rate`)
    hostile; sometimes an unknown extra field."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in cls.model_fields.items():
        own = from_type(info.annotation, list(info.metadata))
        if name in HINTS:
            own = HINTS[name] | own
        fields[name] = st.integers(0, hostile_rate - 1).flatmap(
            lambda n, own=own: hostile if n == 0 else own
        )
    required = {n: fields[n] for n, info in cls.model_fields.items() if info.is_required()}
    optional = {n: s for n, s in fields.items() if n not in required}
    body = st.fixed_dictionaries(required, optional=optional)
    return body | st.fixed_dictionaries({}, optional=fields) | body.map(lambda b: {**b, "extra": 1})
