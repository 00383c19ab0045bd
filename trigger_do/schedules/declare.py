"""`schedules.task`: a task whose runs schedules start, with its declarative crons.

    @schedules.task(id="daily-cleanup", cron="0 3 * * *")                      # UTC
    @schedules.task(id="digest", cron={"pattern": "0 9 * * 1-5", "timezone": "Europe/Paris"})
    @schedules.task(id="multi", cron=["0 9 * * 1-5", "30 10 * * 0,6"], timezone="America/New_York")
    @schedules.task(id="per-user")          # no cron: only imperative schedules start it

The run receives a `ScheduledEvent` whatever its annotation says. A bad cron, a 6-field
(seconds) cron or an unknown timezone is a `TaskDefinitionError` here, naming what is wrong.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol, TypeVar, overload

from pydantic import TypeAdapter

from ..errors import InvalidScheduleError, TaskDefinitionError
from ..task import Task
from .cron import Cron, as_cron, check_timezone
from .event import ScheduledEvent

R = TypeVar("R")
_EVENT = TypeAdapter(ScheduledEvent)


def declared_crons(task_id: str, cron: Any, timezone: str | None) -> list[Cron]:
    """The crons a `schedules.task` declares, checked; `TaskDefinitionError` naming what
    is wrong."""
    try:
        if timezone is not None:
            check_timezone(timezone)
        if cron is None:
            return []
        items = cron if isinstance(cron, list | tuple) else [cron]
        crons: list[Cron] = []
        for item in items:
            if not isinstance(item, str | Mapping):
                raise InvalidScheduleError(
                    "cron must be a string, a {'pattern', 'timezone'} object or a list of "
                    f"them, not {type(item).__name__}"
                )
            found = as_cron(item, timezone)
            if found in crons:
                raise InvalidScheduleError(f"cron {found.expression!r} is declared twice")
            crons.append(found)
        return crons
    except InvalidScheduleError as exc:
        raise TaskDefinitionError(f"schedules.task {task_id!r}: {exc}") from None


class ScheduledTask(Task[R]):
    """A task that schedules start. `crons`: its declarative schedules (one each; synced
    when the workers register their tasks)."""

    def __init__(
        self,
        *,
        id: str,
        run: Callable[..., Any],
        cron: Any = None,
        timezone: str | None = None,
        **options: Any,
    ) -> None:
        crons = declared_crons(id, cron, timezone)  # before registering: nothing half-made
        super().__init__(id=id, run=run, **options)
        self.crons = crons
        # whatever the run function's annotation says, it gets a ScheduledEvent
        self._adapter, self.payload_model = _EVENT, ScheduledEvent

    def __repr__(self) -> str:
        crons = ", ".join(f"{c.expression} {c.timezone}" for c in self.crons)
        return f"<ScheduledTask {self.id}{' ' + crons if crons else ''}>"


class ScheduledTaskDecorator(Protocol):
    """What `schedules.task(id=...)` without `run` returns (as `trigger_do.task.TaskDecorator`)."""

    @overload
    def __call__(  # (an async function: its awaited output)
        self, fn: Callable[..., Coroutine[Any, Any, R]], /
    ) -> ScheduledTask[R]: ...

    @overload
    def __call__(self, fn: Callable[..., R], /) -> ScheduledTask[R]: ...


@overload
def task(
    id: str,
    run: None = None,
    *,
    cron: Any = None,
    timezone: str | None = None,
    **options: Any,
) -> ScheduledTaskDecorator: ...


@overload
def task(  # (an async function: its awaited output)
    id: str,
    run: Callable[..., Coroutine[Any, Any, R]],
    *,
    cron: Any = None,
    timezone: str | None = None,
    **options: Any,
) -> ScheduledTask[R]: ...


@overload
def task(
    id: str,
    run: Callable[..., R],
    *,
    cron: Any = None,
    timezone: str | None = None,
    **options: Any,
) -> ScheduledTask[R]: ...


def task(
    id: str,
    run: Callable[..., Any] | None = None,
    *,
    cron: Any = None,
    timezone: str | None = None,
    **options: Any,
) -> ScheduledTask[Any] | ScheduledTaskDecorator:
    """Declare a scheduled task: `@schedules.task(id=..., cron=...)`, or with `run=fn`
    (then it returns the `ScheduledTask`). Every option of `trigger_do.task` applies."""
    allowed = set(inspect.signature(Task.__init__).parameters) - {"self", "id", "run"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TaskDefinitionError(
            f"schedules.task {id!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} (known: cron, timezone, "
            f"{', '.join(sorted(allowed))})"
        )
    declared_crons(id, cron, timezone)  # a mistake is reported at the decorator's line
    if run is not None:
        return ScheduledTask(id=id, run=run, cron=cron, timezone=timezone, **options)

    def decorate(fn: Callable[..., Any]) -> ScheduledTask[Any]:
        return ScheduledTask(id=id, run=fn, cron=cron, timezone=timezone, **options)

    return decorate
