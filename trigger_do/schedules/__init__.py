"""Scheduled tasks (`@schedules.task(id=..., cron=...)`) and Trigger.dev's schedules API
(`create`, `list`, `retrieve`, `update`, `delete`, `activate`, `deactivate`, `timezones`).

    from trigger_do import schedules

    @schedules.task(id="daily-cleanup", cron="0 3 * * *")
    async def daily_cleanup(event: schedules.ScheduledEvent, ctx): ...

The engine side: `cron.py` (parsing, iterating in a timezone), `scheduler.py` (the scheduler
object: rows and one timer), `service.py` (`Engine.schedules`: CRUD, declarative sync,
firing through the producer), `shapes.py` (Trigger.dev's shapes).
"""

from .api import activate, create, deactivate, delete, list, retrieve, timezones, update
from .declare import ScheduledTask, task
from .event import RunSchedule, Schedule, ScheduledEvent, SchedulePage, ScheduleType

__all__ = [
    "RunSchedule",
    "Schedule",
    "SchedulePage",
    "ScheduleType",
    "ScheduledEvent",
    "ScheduledTask",
    "activate",
    "create",
    "deactivate",
    "delete",
    "list",
    "retrieve",
    "task",
    "timezones",
    "update",
]
