"""Declarations of concurrency limits, rate limits and shared queues, validated at import
(a task declares them; the coordinator enforces them: both read them from here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import TaskDefinitionError
from .durations import parse_duration
from .keys import KeyExpression, parse_key


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Concurrency(_Spec):
    limit: int = Field(ge=1, le=100_000)
    key: KeyExpression | None = None

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: str | KeyExpression | None) -> KeyExpression | None:
        return parse_key(value) if isinstance(value, str) else value


class RateLimit(_Spec):
    limit: int = Field(ge=1)
    period: float
    key: KeyExpression | None = None
    strategy: Literal["moving-window", "fixed-window", "sliding-window-counter"] = "moving-window"

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> float:
        return parse_duration(value, allow_zero=False)

    @field_validator("key", mode="before")
    @classmethod
    def _key(cls, value: str | KeyExpression | None) -> KeyExpression | None:
        return parse_key(value) if isinstance(value, str) else value


class QueueSpec(_Spec):
    name: str = Field(min_length=1, max_length=128)
    concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)


def queue(name: str, *, concurrency_limit: int | None = None) -> QueueSpec:
    """A named queue that several tasks can share (one concurrency limit across them)."""
    spec: QueueSpec = _build(
        QueueSpec, {"name": name, "concurrency_limit": concurrency_limit}, "queue"
    )
    return spec


def as_concurrency(value: Concurrency | dict[str, Any] | int | None) -> Concurrency | None:
    if value is None or isinstance(value, Concurrency):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"limit": value}
    if not isinstance(value, dict):
        raise TaskDefinitionError(f"concurrency must be a dict like {{'limit': 10}}, not {value!r}")
    spec: Concurrency = _build(Concurrency, value, "concurrency")
    return spec


def as_rate_limit(value: RateLimit | dict[str, Any] | str | None) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, str):  # the `limits` library's string form: "100/minute"
        from limits import parse

        try:
            item = parse(value)
        except ValueError as exc:
            raise TaskDefinitionError(f"invalid rate_limit {value!r}: {exc}") from None
        value = {"limit": item.amount, "period": item.get_expiry()}
    if not isinstance(value, dict):
        raise TaskDefinitionError(
            f"rate_limit must be a dict like {{'limit': 100, 'period': '1m'}}, not {value!r}"
        )
    spec: RateLimit = _build(RateLimit, value, "rate_limit")
    return spec


def _build(model: type[_Spec], value: dict[str, Any], what: str) -> Any:
    try:
        return model(**value)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in exc.errors()
        )
        raise TaskDefinitionError(f"invalid {what} {value!r}: {detail}") from None
    except TaskDefinitionError as exc:
        raise TaskDefinitionError(f"invalid {what} {value!r}: {exc}") from None


def run_keys(
    task: Any,
    payload: Callable[[], Any],
    tags: list[str],
    metadata: dict[str, Any] | None,
    concurrency_key: str | None,
) -> tuple[str | None, str | None]:
    """Evaluate a run's concurrency and rate keys at trigger time (`MissingKeyError`, a
    422-style `PayloadValidationError`, when the payload lacks a path). `payload()` gives
    the payload, called only when an expression needs it; a trigger's `concurrency_key`
    overrides the concurrency expression."""
    if task is None:
        return concurrency_key, None
    key = concurrency_key
    if key is None and task.concurrency is not None and task.concurrency.key is not None:
        key = task.concurrency.key.evaluate(payload(), tags, metadata)
    rate_key = None
    if task.rate_limit is not None and task.rate_limit.key is not None:
        rate_key = task.rate_limit.key.evaluate(payload(), tags, metadata)
    return key, rate_key
