"""What a scheduled run receives: Trigger.dev's scheduled payload, and the shapes a schedule
has in Python (`Schedule`) and on a run (`RunSchedule`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

ScheduleType = Literal["DECLARATIVE", "IMPERATIVE"]


class ScheduledEvent(BaseModel):
    """The payload of a run a schedule started (Trigger.dev's `ScheduledTaskPayload`).

    `timestamp` is the nominal instant it was due (not when it started, which may be
    later), `last_timestamp` the instant the schedule fired before (None the first time),
    `upcoming` the next instants (10). Over the API the keys are camelCase
    (`lastTimestamp`, `scheduleId`, `externalId`), as Trigger.dev sends them."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
    )

    timestamp: datetime
    last_timestamp: datetime | None = None
    timezone: str = "UTC"
    schedule_id: str
    external_id: str | None = None
    type: ScheduleType = "IMPERATIVE"
    upcoming: list[datetime] = []


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """A schedule as `schedules.create/retrieve/list/...` return it (Trigger.dev's
    `ScheduleObject`, in Python's names). `cron` is the expression, `description` a sentence
    for it, `next_run` the next instant it fires (None while deactivated)."""

    id: str
    type: ScheduleType
    task: str
    active: bool
    cron: str
    description: str
    timezone: str
    next_run: datetime | None
    deduplication_key: str | None = None
    external_id: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Schedule:
        generator = data.get("generator") or {}
        return cls(
            id=str(data["id"]),
            type=data["type"],
            task=str(data["task"]),
            active=bool(data["active"]),
            cron=str(generator.get("expression", "")),
            description=str(generator.get("description", "")),
            timezone=str(data.get("timezone") or "UTC"),
            next_run=_date(data.get("nextRun")),
            deduplication_key=data.get("deduplicationKey"),
            external_id=data.get("externalId"),
        )

    def upcoming(self, count: int = 5) -> list[datetime]:
        """The next `count` instants it fires at (none while deactivated), in its timezone."""
        from .cron import parse_cron, zone

        if not self.active or self.next_run is None:
            return []
        cron = parse_cron(self.cron, self.timezone)
        first = self.next_run.timestamp()
        instants = [first, *cron.upcoming(first, count - 1)] if count > 0 else []
        return [datetime.fromtimestamp(t, zone(self.timezone)) for t in instants]


@dataclass(frozen=True)
class SchedulePage:
    """One page of `schedules.list(page=, per_page=)`: iterate it for its schedules."""

    data: list[Schedule]
    page: int
    total_pages: int
    count: int  # schedules in all pages

    def __iter__(self) -> Iterator[Schedule]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class RunSchedule:
    """The schedule that started a run (`RunStatus.schedule`), as it was when it fired."""

    id: str
    cron: str
    timezone: str = "UTC"
    external_id: str | None = None
    deduplication_key: str | None = None
    type: ScheduleType = "IMPERATIVE"

    @classmethod
    def of(cls, ref: dict[str, Any] | None) -> RunSchedule | None:
        """From a run row's `options["schedule"]` (see `service.run_ref`)."""
        if not ref or not ref.get("id"):
            return None
        return cls(
            id=str(ref["id"]),
            cron=str(ref.get("cron") or ""),
            timezone=str(ref.get("timezone") or "UTC"),
            external_id=ref.get("external_id"),
            deduplication_key=ref.get("dedup_key"),
            type=ref.get("type") or "IMPERATIVE",
        )
