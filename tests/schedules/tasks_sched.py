"""Scheduled tasks for the schedules tests: each cron form, and one with no cron (only
imperative schedules start it). `EVENTS` records what runs in this process received."""

from __future__ import annotations

from typing import Any

from trigger_do import RunContext, schedules, task

EVENTS: list[schedules.ScheduledEvent] = []


@schedules.task(id="sched-daily", cron="0 3 * * *")  # a string: UTC
async def daily(event: schedules.ScheduledEvent, ctx: RunContext) -> dict[str, Any]:
    EVENTS.append(event)
    return {"at": event.timestamp.isoformat(), "schedule": event.schedule_id}


@schedules.task(id="sched-paris", cron={"pattern": "30 2 * * *", "timezone": "Europe/Paris"})
async def paris(event, ctx):  # type: ignore[no-untyped-def]  (no annotation: still an event)
    EVENTS.append(event)
    return {"at": event.timestamp.isoformat(), "type": event.type}


@schedules.task(
    id="sched-multi", cron=["0 9 * * 1-5", "30 10 * * 0,6"], timezone="America/New_York"
)
async def multi(event: schedules.ScheduledEvent) -> str:
    EVENTS.append(event)
    return event.timezone


@schedules.task(id="sched-report")  # no cron: imperative schedules only
async def report(event: schedules.ScheduledEvent, ctx: RunContext) -> dict[str, Any]:
    EVENTS.append(event)
    return {
        "external_id": event.external_id,
        "timestamp": event.timestamp.isoformat(),
        "last": event.last_timestamp.isoformat() if event.last_timestamp else None,
        "upcoming": len(event.upcoming),
    }


@task(id="sched-plain")  # an ordinary task: it takes no schedule
async def plain(payload: Any) -> Any:
    return payload
