"""Durations: "500ms", "1s", "5m", "1h", "2d", "1w", compounds like "1h30m", seconds, timedelta."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from ..errors import InvalidDurationError

Duration = str | int | float | timedelta

# The longest duration anything takes (a delay, a ttl, a retry's delay...): ten years. Past it
# a due time stops being a date the engine (and its clients) can represent.
MAX_DURATION_SECONDS = 10 * 365 * 86400.0
MIN_DURATION_SECONDS = 0.001  # the clock's resolution: a positive duration below it is a typo

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*$")


def parse_duration(value: Duration, *, allow_zero: bool = True) -> float:
    """Return the duration in seconds, or raise `InvalidDurationError` naming the value."""
    if isinstance(value, bool):
        raise InvalidDurationError(value, "a boolean is not a duration")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _WHOLE.match(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise InvalidDurationError(value)
    else:
        kind = type(value).__name__
        raise InvalidDurationError(value, f"not a str, number or timedelta but {kind}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise InvalidDurationError(value, "not finite")
    if seconds < 0:
        raise InvalidDurationError(value, "negative")
    if seconds == 0 and not allow_zero:
        raise InvalidDurationError(value, "must be greater than zero")
    if 0 < seconds < MIN_DURATION_SECONDS:
        raise InvalidDurationError(value, "shorter than 1 ms")
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidDurationError(value, "longer than the maximum of 10 years")
    return seconds
