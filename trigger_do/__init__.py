"""trigger.do: background jobs for Python, on Cloudflare or embedded on one machine."""

from typing import TYPE_CHECKING, Any

from . import events, schedules, wait_tokens, webhooks
from .consumer.context import RunContext
from .errors import (
    AbortTaskRunError,
    ApiError,
    AuthenticationError,
    InvalidDurationError,
    PayloadTooLargeError,
    PayloadValidationError,
    RunFailedError,
    RunNotFoundError,
    TaskDefinitionError,
    TriggerDoError,
    UnknownTaskError,
    WaitMismatchError,
)
from .sdk.client import configure, tasks
from .sdk.handles import BatchHandle, LogRecord, RunHandle, RunStatus
from .shared.checkpoints import Checkpoint
from .shared.options import BatchItem
from .shared.retry import Retry
from .shared.specs import queue
from .shared.states import RunState
from .task import Task, task
from .task import task as trigger  # `@trigger(id=..., event=...)`: the same declaration

if TYPE_CHECKING:  # what a type checker sees: both are imported only when first used
    from .api.mount import serve as serve
    from .platform.local.runtime import local as local


def __getattr__(name: str) -> Any:
    if name == "local":  # the embedded runtime, imported only when asked for (not on Workers)
        from .platform.local.runtime import local

        return local
    if name == "serve":  # the mountable ASGI app (pulls in starlette only when used)
        from .api.mount import serve

        return serve
    raise AttributeError(f"module 'trigger_do' has no attribute {name!r}")


__all__ = [
    "AbortTaskRunError",
    "ApiError",
    "AuthenticationError",
    "BatchHandle",
    "BatchItem",
    "Checkpoint",
    "InvalidDurationError",
    "LogRecord",
    "PayloadTooLargeError",
    "PayloadValidationError",
    "Retry",
    "RunContext",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunState",
    "RunStatus",
    "Task",
    "TaskDefinitionError",
    "TriggerDoError",
    "UnknownTaskError",
    "WaitMismatchError",
    "configure",
    "events",
    "local",
    "queue",
    "schedules",
    "serve",
    "task",
    "tasks",
    "trigger",
    "wait_tokens",
    "webhooks",
]
