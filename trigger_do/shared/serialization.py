"""JSON in and out: orjson where it exists, the standard `json` module elsewhere (Pyodide)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from ..errors import NonFiniteNumberError, NotSerializableError

_orjson: Any
try:  # pragma: no cover - which branch runs depends on the platform
    import orjson as _orjson
except ImportError:  # Pyodide / Python Workers have no orjson wheel
    _orjson = None

HAVE_ORJSON = _orjson is not None


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise NotSerializableError(f"{type(value).__name__} is not JSON-serializable")


def dumps(value: Any) -> str:
    """Compact JSON text. Pydantic models, datetimes, UUIDs and dataclasses are converted.
    NaN and Infinity, which JSON cannot hold, raise `NonFiniteNumberError` (orjson would
    write them as null: where its text has a null, the value is checked)."""
    if _orjson is not None:
        raw: bytes = _orjson.dumps(value, default=_default, option=_orjson.OPT_NON_STR_KEYS)
        if b"null" in raw and value is not None and has_non_finite(value):
            raise NonFiniteNumberError()
        return raw.decode()
    try:
        return json.dumps(
            value, default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        if "JSON compliant" in str(exc):
            raise NonFiniteNumberError() from None
        raise


def dumps_checked(value: Any) -> str:
    """`dumps` of a value the engine built from checked parts (rows, outcomes, messages:
    every number in them already refused NaN and Infinity where it came in), without the
    second look for them that a null in the text costs."""
    if _orjson is not None:
        raw: bytes = _orjson.dumps(value, default=_default, option=_orjson.OPT_NON_STR_KEYS)
        return raw.decode()
    return dumps(value)


def has_non_finite(value: Any) -> bool:
    """Whether `value` holds a NaN or an Infinity (in containers, models, dataclasses)."""
    stack = [value]
    while stack:  # iterative, and by exact type first: it runs on every text with a null
        v = stack.pop()
        kind = type(v)
        if kind is float:
            if v != v or v in _INFINITIES:
                return True
        elif kind is dict:
            stack.extend(v.values())
        elif kind is list or kind is tuple:
            stack.extend(v)
        elif kind in _PLAIN:
            continue
        elif isinstance(v, float):
            if v != v or v in _INFINITIES:
                return True
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
        elif isinstance(v, BaseModel):
            stack.append(v.model_dump())
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            stack.append(dataclasses.asdict(v))
    return False


_INFINITIES = (float("inf"), float("-inf"))
_PLAIN = (str, int, bool, type(None))


def loads(text: str | bytes) -> Any:
    if _orjson is not None:
        return _orjson.loads(text)
    return json.loads(text)


def to_jsonable(value: Any) -> Any:
    """A JSON-native copy of `value` (dicts, lists, str, numbers, bool, None)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return loads(dumps(value))
