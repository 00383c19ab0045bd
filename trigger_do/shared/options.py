"""Trigger options and batch items, validated before anything is written."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PayloadValidationError
from .durations import MAX_DURATION_SECONDS, Duration, parse_duration

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
DEFAULT_IDEMPOTENCY_TTL = 30 * 86400.0


KEY_SEPARATOR = "\x1f"  # never in a task id, so no two (task, key) pairs collide


def scoped_key(task_id: str, key: str) -> str:
    """An idempotency key as stored: unique per task."""
    return f"{task_id}{KEY_SEPARATOR}{key}"


def user_key(task_id: str, stored: str | None) -> str | None:
    """The caller's idempotency key, from its stored form."""
    prefix = f"{task_id}{KEY_SEPARATOR}"
    return stored[len(prefix) :] if stored and stored.startswith(prefix) else stored


class TriggerOptions(BaseModel):
    """Options of one trigger. Durations take "1s", "5m", seconds or timedelta;
    `delay` also takes a datetime (when to start)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    idempotency_key: str | None = Field(default=None, min_length=1, max_length=512)
    idempotency_key_ttl: float | None = None
    delay: float | datetime | None = None
    ttl: float | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    max_duration: float | None = None
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=512)
    queue: str | None = Field(default=None, min_length=1, max_length=128)
    # a child run (waits/): the run that triggered it, the root of its tree, and the
    # parent's waitpoint (and its index there) that its end completes
    parent_run_id: str | None = Field(default=None, min_length=1, max_length=128)
    root_run_id: str | None = Field(default=None, min_length=1, max_length=128)
    resume_parent: bool | None = None
    waitpoint: str | None = Field(default=None, min_length=1, max_length=200)
    waitpoint_index: int | None = Field(default=None, ge=0)
    depth: int | None = Field(default=None, ge=0, le=1000)  # 1: a root's child

    @field_validator("idempotency_key_ttl", "ttl", "max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Duration | None) -> float | None:
        return None if value is None else parse_duration(value, allow_zero=False)

    @field_validator("delay", mode="before")
    @classmethod
    def _delay(cls, value: Duration | datetime | None) -> float | datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:  # an ISO date-time string, as the HTTP API may send
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
        if isinstance(value, datetime):
            return bounded_date(value)
        return parse_duration(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: str | list[str] | None) -> list[str]:
        if value is None:
            return []
        tags = [value] if isinstance(value, str) else list(value)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, got {len(tags)}")
        for tag in tags:
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_LENGTH:
                raise ValueError(f"a tag is a string of 1 to {MAX_TAG_LENGTH} characters: {tag!r}")
        return tags

    def delay_until(self, now: float) -> float | None:
        if self.delay is None:
            return None
        if isinstance(self.delay, datetime):
            when = self.delay.timestamp()
            return when if when > now else None
        return now + self.delay if self.delay > 0 else None


def bounded_date(value: datetime) -> datetime:
    """A date to start at (naive: UTC), no further ahead than the longest duration."""
    when = value if value.tzinfo else value.replace(tzinfo=UTC)
    if when.timestamp() - time.time() > MAX_DURATION_SECONDS:
        raise ValueError(f"{value.isoformat()} is more than 10 years ahead")
    return when


def parse_options(options: dict[str, Any] | TriggerOptions | None) -> TriggerOptions:
    if not options:  # the common case in a large batch: no options, no validation to run
        return NO_OPTIONS
    if isinstance(options, TriggerOptions):
        return options
    try:
        return TriggerOptions(**options)
    except ValidationError as exc:
        raise PayloadValidationError(
            f"invalid trigger options: {_describe(exc)}", errors=errors_of(exc, "options")
        ) from None
    except ValueError as exc:  # InvalidDurationError
        raise PayloadValidationError(f"invalid trigger options: {exc}") from None


NO_OPTIONS = TriggerOptions()  # frozen: safe to share


def errors_of(exc: ValidationError, root: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "loc": ".".join(str(p) for p in ((root,) if root else ()) + tuple(e["loc"])) or "$",
            "msg": e["msg"],
        }
        for e in exc.errors(include_url=False)
    ]


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{e['loc']}: {e['msg']}" for e in errors_of(exc))


class BatchItem:
    """One item of a batch: a payload plus its own trigger options."""

    __slots__ = ("options", "payload")

    def __init__(self, payload: Any = None, **options: Any) -> None:
        self.payload = payload
        self.options = options

    def __repr__(self) -> str:
        return f"BatchItem({self.payload!r}, **{self.options!r})"
