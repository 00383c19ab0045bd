"""The request fields of the HTTP API, one validator each, shared by every route taking it.

Body fields are strict (an id is a string, a count an integer: `123` is not a key, `true`
not a count) and bounded; query strings and headers that carry numbers take ASCII digits
only (`str.isdigit()` also passes `²`) and at most `MAX_DIGITS` of them. Durations and
dates reuse `shared.durations.parse_duration` and `shared.options.bounded_date`, so the HTTP
API refuses exactly what the engine would, naming the field."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict

from ..errors import NonFiniteNumberError
from ..shared.durations import parse_duration
from ..shared.limits import MAX_METADATA_BYTES
from ..shared.options import MAX_TAG_LENGTH, MAX_TAGS, bounded_date
from ..shared.serialization import dumps

MAX_SAFE = 2**53 - 1  # the largest integer a double (and so a Durable Object) holds exactly
MAX_DIGITS = 15  # digits of a number in a query string or header: below MAX_SAFE
MAX_BATCH_ITEMS = 100_000  # items of one batch (runCount, `items`, NDJSON lines)
MAX_PAGE_SIZE = 100
MAX_LOG_LIMIT = 1000
MAX_KEY_LENGTH = 512
MAX_ID_LENGTH = 256
MAX_METADATA_DEPTH = 64


# --- numbers -----------------------------------------------------------------------------


def ascii_int(value: Any) -> Any:
    """A query string's or header's number: 1 to MAX_DIGITS ASCII digits. A JSON integer
    passes unchanged (the field's own bounds then apply); anything else is left to fail."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"must be a whole number in ASCII digits, not {value[:40]!r}")
        if len(text) > MAX_DIGITS:
            raise ValueError(f"must have at most {MAX_DIGITS} digits")
        return int(text)
    return value


def _clamp(high: int) -> AfterValidator:
    return AfterValidator(lambda v: min(v, high))


PageSize = Annotated[int, BeforeValidator(ascii_int), Field(ge=1), _clamp(MAX_PAGE_SIZE)]
PageNumber = Annotated[int, BeforeValidator(ascii_int), Field(ge=1, le=1_000_000)]
LogSeq = Annotated[int, BeforeValidator(ascii_int), Field(ge=0, le=MAX_SAFE)]
LogLimit = Annotated[int, BeforeValidator(ascii_int), Field(ge=1), _clamp(MAX_LOG_LIMIT)]
Expires = Annotated[int, BeforeValidator(ascii_int), Field(ge=0, le=MAX_SAFE)]

RunCount = Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH_ITEMS)]
BatchIndex = Annotated[int, Strict(), Field(ge=0, lt=MAX_BATCH_ITEMS)]
ConcurrencyLimit = Annotated[int, Strict(), Field(ge=1, le=1_000_000)]
MaxAttempts = Annotated[int, Strict(), Field(ge=1, le=1000)]
PayloadSize = Annotated[int, Strict(), Field(ge=0, le=MAX_SAFE)]


def _finite_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, not {type(value).__name__}")
    if not -MAX_SAFE <= value <= MAX_SAFE:
        raise ValueError(f"must be between -{MAX_SAFE} and {MAX_SAFE}")
    return value


Number = Annotated[int | float, BeforeValidator(_finite_number)]


# --- strings -----------------------------------------------------------------------------


IdempotencyKey = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_KEY_LENGTH)]
QueueName = Annotated[str, Strict(), Field(min_length=1, max_length=128)]
TaskId = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH)]
RunId = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH)]
MediaType = Annotated[str, Strict(), Field(min_length=1, max_length=100)]


def _queue(value: Any) -> Any:
    """Trigger.dev's `queue` option: `{name}` (or the name alone)."""
    if isinstance(value, dict):
        if "name" not in value:
            raise ValueError("must be {name: <queue name>}")
        return value["name"]
    return value


def _concurrency_key(value: Any) -> Any:
    """A concurrency key; an integer is taken as its decimal string, as Trigger.dev does."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Queue = Annotated[QueueName, BeforeValidator(_queue)]
ConcurrencyKey = Annotated[
    str, BeforeValidator(_concurrency_key), Strict(), Field(min_length=1, max_length=MAX_KEY_LENGTH)
]
MetadataKey = Annotated[str, Strict(), Field(min_length=1, max_length=1024)]


def _tags(value: Any) -> Any:
    """Trigger.dev's `tags`: a string or an array of strings; at most MAX_TAGS, each of 1
    to MAX_TAG_LENGTH characters."""
    tags = [value] if isinstance(value, str) else value
    if not isinstance(tags, list):
        raise ValueError("must be a string or an array of strings")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
    for tag in tags:
        if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_LENGTH:
            shown = tag[:40] + "..." if isinstance(tag, str) and len(tag) > 40 else tag
            raise ValueError(f"a tag is a string of 1 to {MAX_TAG_LENGTH} characters: {shown!r}")
    return tags


Tags = Annotated[list[str], BeforeValidator(_tags)]


# --- durations and dates -------------------------------------------------------------------


def _positive_duration(value: Any) -> float:
    return parse_duration(value, allow_zero=False)


def as_date(value: Any) -> datetime | None:
    """An ISO-8601 date-time string as a datetime (None if it is not one)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _delay(value: Any) -> float | datetime:
    """A delay as the trigger options take it: a date (no more than 10 years ahead) or a
    duration (`"1h"`, seconds)."""
    when = as_date(value)
    if when is not None:
        return bounded_date(when)
    return parse_duration(value)


def _expiry(value: Any) -> float:
    """When a token expires: a duration from now (`"1h"`) or epoch seconds (a number)."""
    if isinstance(value, str):
        return time.time() + parse_duration(value, allow_zero=False)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a duration like 1h or epoch seconds")
    if not 0 <= value <= MAX_SAFE:
        raise ValueError(f"epoch seconds must be between 0 and {MAX_SAFE}")
    return float(value)


Duration = Annotated[float, BeforeValidator(_positive_duration)]
Delay = Annotated[float | datetime, BeforeValidator(_delay)]
Expiry = Annotated[float, BeforeValidator(_expiry)]


# --- JSON documents --------------------------------------------------------------------------


def value_depth(value: Any) -> int:
    """The nesting depth of a JSON-like value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((v, depth + 1) for v in items if isinstance(v, dict | list))
    return deepest


def check_metadata(value: Any) -> dict[str, Any]:
    """A run's metadata: a JSON object of at most MAX_METADATA_BYTES and
    MAX_METADATA_DEPTH levels, with finite numbers only."""
    if not isinstance(value, dict):
        raise ValueError(f"metadata must be a JSON object, not {type(value).__name__}")
    depth = value_depth(value)
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested {depth} levels deep, over {MAX_METADATA_DEPTH}")
    try:
        size = len(dumps(value).encode())
    except NonFiniteNumberError:
        raise ValueError("metadata holds NaN or Infinity, which JSON cannot") from None
    except (TypeError, ValueError) as exc:  # e.g. an integer past 64 bits
        raise ValueError(f"metadata cannot be stored as JSON: {exc}") from None
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes, over the limit of {MAX_METADATA_BYTES}")
    return value
