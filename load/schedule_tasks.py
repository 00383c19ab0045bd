"""The scheduled task of the `schedules` load scenario (load/schedules.py): a noop."""

from __future__ import annotations

from trigger_do import schedules


@schedules.task(id="load-tick")
async def load_tick(event: schedules.ScheduledEvent) -> str:
    return event.schedule_id
