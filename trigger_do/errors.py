"""One error tree: every error trigger.do raises on purpose derives from `TriggerDoError`."""

from __future__ import annotations

from typing import Any


class TriggerDoError(Exception):
    """Root of trigger.do's errors."""


class TaskDefinitionError(TriggerDoError, ValueError):
    """A task, queue or option was declared wrongly (raised where it is defined)."""


class InvalidDurationError(TaskDefinitionError):
    """A duration could not be parsed; carries the offending value."""

    def __init__(self, value: Any, reason: str = "") -> None:
        self.value = value
        hint = 'use e.g. "500ms", "1s", "5m", "1h", "2d", a number of seconds or a timedelta'
        super().__init__(f"invalid duration {value!r}{': ' + reason if reason else ''} ({hint})")


class UnknownTaskError(TriggerDoError, LookupError):
    """No task with this id is registered."""

    def __init__(self, task_id: str, known: list[str] | None = None) -> None:
        self.task_id = task_id
        msg = f"unknown task {task_id!r}"
        if known:
            msg += f" (known tasks: {', '.join(sorted(known)[:20])})"
        else:
            msg += " (no tasks are registered: is `trigger-do dev --tasks ...` running?)"
        super().__init__(msg)


class PayloadValidationError(TriggerDoError, ValueError):
    """A payload failed its task's schema, or a batch had invalid items.

    `errors` lists `{"index"?, "loc", "msg"}` records naming the bad fields.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message)

    @classmethod
    def for_batch(cls, errors: list[dict[str, Any]]) -> PayloadValidationError:
        """One error for a whole batch: `errors` carry each bad item's `index`."""
        bad = sorted({e["index"] for e in errors})
        return cls(
            f"batch rejected, nothing was triggered: invalid items at indexes {bad}: "
            + "; ".join(f"[{e['index']}] {e['loc']}: {e['msg']}" for e in errors[:10]),
            errors=errors,
        )

    @property
    def bad_indexes(self) -> list[int]:
        return sorted({e["index"] for e in self.errors if "index" in e})


class SqlRuleError(TriggerDoError):
    """Engine SQL broke a rule that a Durable Object's storage enforces."""


class InvariantError(TriggerDoError, RuntimeError):
    """The engine found its own state contradicting itself (a bug: please report it); the
    call that found it is undone whole."""


class InvalidArgumentError(TriggerDoError, ValueError):
    """A call's argument is out of its range (a progress over 1, an unknown log level...)."""


class MisuseError(TriggerDoError, RuntimeError):
    """A call made where it cannot work (a `_sync` twin inside the event loop...)."""


class NotSerializableError(TriggerDoError, TypeError):
    """A value that is not JSON-native and has no known conversion."""


class ConfigurationError(TriggerDoError):
    """The platform is set up wrongly (a binding missing, no secret key)."""


class MessageTooLargeError(TriggerDoError, ValueError):
    """A queue message, or a batch of them, over the queue's limits."""


class MalformedMessageError(TriggerDoError, ValueError):
    """A queue body that is not one of the engine's messages."""


class StorageUnavailableError(TriggerDoError):
    """The database cannot be written now (disk full, read-only, an I/O error): nothing was
    written; try again later (the HTTP API answers 503 with `Retry-After`)."""

    retry_after = 30


class NonFiniteNumberError(TriggerDoError, ValueError):
    """JSON has no NaN or Infinity: a value holding one is refused, not stored as null."""

    def __init__(self) -> None:
        super().__init__("NaN and Infinity cannot be stored as JSON: use null or a string")


class PayloadTooLargeError(TriggerDoError, ValueError):
    """A payload (or output) is over the configured size limit."""

    def __init__(self, size: int, limit: int, what: str = "payload") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")


class RunNotFoundError(TriggerDoError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class QueueNotFoundError(TriggerDoError, LookupError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no queue named {name!r} (a task's own queue is 'task/<task id>')")


class InvalidScheduleError(TriggerDoError, ValueError):
    """A schedule that cannot be: a bad cron expression, an unknown timezone, a task that
    is not a scheduled task, a change to a declarative schedule (HTTP 422)."""


class ScheduleNotFoundError(TriggerDoError, LookupError):
    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no schedule with id {schedule_id!r}")


class InvalidWaitTokenError(TriggerDoError, ValueError):
    """A wait token request that cannot be: a bad timeout, TTL, tag or key (HTTP 422)."""


class WaitpointTimeoutError(TriggerDoError):
    """`WaitResult.unwrap()` of a wait that timed out (Trigger.dev's own name)."""

    def __init__(self, message: str, error: dict[str, object] | None = None) -> None:
        self.error = error
        super().__init__(message)


class WaitTokenNotFoundError(TriggerDoError, LookupError):
    def __init__(self, token_id: str) -> None:
        self.token_id = token_id
        super().__init__(f"no wait token with id {token_id!r}")


class SchemaVersionError(TriggerDoError):
    """The database was written by a newer trigger.do."""


class AbortTaskRunError(TriggerDoError):
    """Raise inside a task to fail the run at once, without retrying."""


class ApiError(TriggerDoError):
    """A trigger.do server answered a remote SDK call with an error status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class AuthenticationError(ApiError, PermissionError):
    """The server refused the secret key (HTTP 401)."""


class RunFailedError(TriggerDoError):
    """The run did not complete: carries its final state and the remote error."""

    def __init__(self, run_id: str, state: str, error: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.state = state
        self.error = error or {}
        message = self.error.get("message") or state
        name = self.error.get("name")
        super().__init__(f"run {run_id} {state}: {name + ': ' if name else ''}{message}")


class InvalidEventError(TriggerDoError, ValueError):
    """An event that cannot be sent: a bad name, id or payload (`field` names which)."""

    def __init__(self, message: str, field: str = "name") -> None:
        self.field = field
        super().__init__(message)


class EventNotFoundError(TriggerDoError, LookupError):
    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"no event {event_id!r}")


class WaitMismatchError(TriggerDoError):
    """A replay reached a different kind of wait (or key) at a position a wait was recorded
    at: the run's code no longer reaches its waits in the same order."""
