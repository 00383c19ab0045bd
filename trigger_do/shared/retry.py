"""Retry policy and the pure decision of what follows a failed attempt."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import TaskDefinitionError
from .durations import Duration, parse_duration
from .states import RunState

Backoff = Literal["exponential", "linear", "fixed"]

JITTER_LOW, JITTER_HIGH = 0.75, 1.25  # jitter scales a delay by a factor in this range


class Retry(BaseModel):
    """The seed's retry policy. Durations take "1s", "5m", seconds or timedelta."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=1000, strict=True)  # True is not 1
    backoff: Backoff = "exponential"
    initial_delay: float = 1.0
    max_delay: float = 3600.0
    factor: float = Field(default=2.0, ge=1.0, le=100.0, allow_inf_nan=False)
    jitter: bool = Field(default=True, strict=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValueError as exc:
            raise TaskDefinitionError(f"invalid retry policy {data!r}: {exc}") from None

    @field_validator("initial_delay", "max_delay", mode="before")
    @classmethod
    def _duration(cls, value: Duration) -> float:
        return parse_duration(value)  # bounded: 0, or 1 ms to 10 years

    @field_validator("factor", mode="before")
    @classmethod
    def _factor(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("factor is a number, not a boolean")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> Retry:
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}s) is below initial_delay ({self.initial_delay}s)"
            )
        return self

    def base_delay(self, attempt: int) -> float:
        """The delay before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
        n = max(attempt, 1)
        if self.backoff == "exponential":
            # past max_delay the exponent no longer matters (and could overflow a float)
            grows = self.factor > 1 and self.initial_delay > 0
            steps = min(n - 1, 1 + int(math.log(max(self.max_delay / self.initial_delay, 1))
                                        / math.log(self.factor))) if grows else 0
            delay = self.initial_delay * self.factor**steps
        elif self.backoff == "linear":
            delay = self.initial_delay * n
        else:
            delay = self.initial_delay
        return min(delay, self.max_delay)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """`base_delay` with jitter applied (never above `max_delay`)."""
        base = self.base_delay(attempt)
        if not self.jitter:
            return base
        factor = (rng or random).uniform(JITTER_LOW, JITTER_HIGH)
        return min(base * factor, self.max_delay)

    def schedule(self) -> list[float]:
        """Base delays between each attempt, without jitter: the documented schedule."""
        return [self.base_delay(a) for a in range(1, self.max_attempts)]


DEFAULT_RETRY = Retry()


def as_retry(value: Retry | dict[str, Any] | None) -> Retry:
    if value is None:
        return DEFAULT_RETRY
    if isinstance(value, Retry):
        return value
    if isinstance(value, dict):
        return Retry(**value)
    raise TaskDefinitionError(f"retry must be a Retry or a dict, not {value!r}")


# --- decide, then apply --------------------------------------------------------------------


@dataclass(frozen=True)
class RetryAt:
    delay: float


@dataclass(frozen=True)
class Finish:
    state: RunState


Outcome = RetryAt | Finish


def decide_failure(
    retry: Retry,
    attempt: int,
    *,
    kind: Literal["error", "abort", "timeout"],
    max_attempts: int | None = None,
    rng: random.Random | None = None,
) -> Outcome:
    """What follows a failed attempt: retry after a delay, or a final state. Pure."""
    if kind == "abort":
        return Finish(RunState.FAILED)
    limit = max_attempts if max_attempts is not None else retry.max_attempts
    if attempt < limit:
        return RetryAt(retry.delay(attempt, rng))
    return Finish(RunState.TIMED_OUT if kind == "timeout" else RunState.FAILED)
