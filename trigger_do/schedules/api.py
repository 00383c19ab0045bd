"""Imperative schedules from Python, as Trigger.dev's `schedules.*`: embedded (straight into
the engine on a database, or inside `trigger_do.local(...)`) or remote (over the HTTP API,
with `TRIGGER_API_URL`), wherever the SDK's other calls go, raising the same errors.

    sched = await schedules.create(task="send-report", cron="0 9 * * 1",
                                   deduplication_key="user-42-report", external_id="user-42")
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from ..errors import ConfigurationError, InvalidScheduleError, ScheduleNotFoundError
from ..sdk.resource import RemoteResource
from .cron import timezones as _timezones
from .event import Schedule, SchedulePage
from .shapes import schedule_object


class Backend(Protocol):
    """Where schedule calls go; each answers in the API's shapes (`ScheduleObject`)."""

    async def create(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def retrieve(self, schedule_id: str) -> dict[str, Any]: ...

    async def list(self, page: int, per_page: int) -> dict[str, Any]: ...

    async def update(self, schedule_id: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def delete(self, schedule_id: str) -> dict[str, Any]: ...

    async def set_active(self, schedule_id: str, active: bool) -> dict[str, Any]: ...

    async def timezones(self, exclude_utc: bool) -> builtins.list[str]: ...


def _pages(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


class EmbeddedSchedules:
    """Schedule calls straight into an engine."""

    def __init__(self, engine: Any) -> None:
        self.schedules = engine.schedules

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        rec = await self.schedules.create(
            body.get("task"),
            body.get("cron"),
            body.get("deduplicationKey"),
            external_id=body.get("externalId"),
            timezone=body.get("timezone"),
        )
        return schedule_object(rec)

    async def retrieve(self, schedule_id: str) -> dict[str, Any]:
        return schedule_object(await self.schedules.get(schedule_id))

    async def list(self, page: int, per_page: int) -> dict[str, Any]:
        rows, count = await self.schedules.page(page, per_page)
        return {
            "data": [schedule_object(r) for r in rows],
            "pagination": {
                "currentPage": page,
                "totalPages": _pages(count, per_page),
                "count": count,
            },
        }

    async def update(self, schedule_id: str, body: dict[str, Any]) -> dict[str, Any]:
        rec = await self.schedules.update(
            schedule_id,
            body.get("task"),
            body.get("cron"),
            external_id=body.get("externalId"),
            timezone=body.get("timezone"),
        )
        return schedule_object(rec)

    async def delete(self, schedule_id: str) -> dict[str, Any]:
        rec = await self.schedules.delete(schedule_id)
        return {"id": rec["id"]}

    async def set_active(self, schedule_id: str, active: bool) -> dict[str, Any]:
        if active:
            return schedule_object(await self.schedules.activate(schedule_id))
        return schedule_object(await self.schedules.deactivate(schedule_id))

    async def timezones(self, exclude_utc: bool) -> builtins.list[str]:
        return _timezones(exclude_utc=exclude_utc)


class RemoteSchedules(RemoteResource):
    """Schedule calls over a trigger.do server's HTTP API (Trigger.dev's paths)."""

    BASE = "/api/v1/schedules"

    def invalid(self, message: str) -> Exception:
        return InvalidScheduleError(message)

    def not_found(self, resource_id: str) -> Exception:
        return ScheduleNotFoundError(resource_id)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("POST", "/api/v1/schedules", json=body))

    async def retrieve(self, schedule_id: str) -> dict[str, Any]:
        return dict(await self._call("GET", self._path(schedule_id)))

    async def list(self, page: int, per_page: int) -> dict[str, Any]:
        params = {"page": page, "perPage": per_page}
        return dict(await self._call("GET", "/api/v1/schedules", params=params))

    async def update(self, schedule_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._call("PUT", self._path(schedule_id), json=body))

    async def delete(self, schedule_id: str) -> dict[str, Any]:
        return dict(await self._call("DELETE", self._path(schedule_id)))

    async def set_active(self, schedule_id: str, active: bool) -> dict[str, Any]:
        tail = "/activate" if active else "/deactivate"
        return dict(await self._call("POST", self._path(schedule_id, tail)))

    async def timezones(self, exclude_utc: bool) -> builtins.list[str]:
        params = {"excludeUtc": "true"} if exclude_utc else None
        got = await self._call("GET", "/api/v1/timezones", params=params)
        return [str(z) for z in got["timezones"]]


def backend() -> Backend:
    """Where the SDK's calls go now (`trigger_do.sdk.client.current_client`)."""
    from ..sdk.client import EmbeddedClient, current_client
    from ..sdk.remote import RemoteClient

    client = current_client()
    if isinstance(client, EmbeddedClient):
        return EmbeddedSchedules(client.engine)
    if isinstance(client, RemoteClient):
        return RemoteSchedules(client)
    raise ConfigurationError(f"schedules cannot go to {client!r}")  # pragma: no cover


def _body(task: str, cron: str, external_id: str | None, timezone: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"task": task, "cron": cron}
    if external_id is not None:
        body["externalId"] = external_id
    if timezone is not None:
        body["timezone"] = timezone
    return body


async def create(
    *,
    task: str,
    cron: str,
    deduplication_key: str,
    external_id: str | None = None,
    timezone: str | None = None,
) -> Schedule:
    """An imperative schedule starting `task` (a `schedules.task`) at each instant of `cron`
    in `timezone` (default UTC). The same `deduplication_key` again updates that schedule
    instead of making another. `InvalidScheduleError` for a bad cron, timezone or task."""
    body = {**_body(task, cron, external_id, timezone), "deduplicationKey": deduplication_key}
    return Schedule.from_api(await backend().create(body))


async def retrieve(schedule_id: str) -> Schedule:
    """One schedule; `ScheduleNotFoundError` if there is none with this id."""
    return Schedule.from_api(await backend().retrieve(schedule_id))


async def list(*, page: int = 1, per_page: int = 20) -> SchedulePage:
    """One page of schedules, newest first (`per_page` at most 100)."""
    if not isinstance(page, int) or page < 1:
        raise InvalidScheduleError(f"page must be a whole number of at least 1, not {page!r}")
    if not isinstance(per_page, int) or not 1 <= per_page <= 100:
        raise InvalidScheduleError(f"per_page must be from 1 to 100, not {per_page!r}")
    got = await backend().list(page, per_page)
    pagination = got["pagination"]
    return SchedulePage(
        data=[Schedule.from_api(s) for s in got["data"]],
        page=int(pagination["currentPage"]),
        total_pages=int(pagination["totalPages"]),
        count=int(pagination["count"]),
    )


async def update(
    schedule_id: str,
    *,
    task: str,
    cron: str,
    external_id: str | None = None,
    timezone: str | None = None,
) -> Schedule:
    """Change an imperative schedule (a declarative one: `InvalidScheduleError`, change its
    task's `cron=` instead)."""
    body = _body(task, cron, external_id, timezone)
    return Schedule.from_api(await backend().update(schedule_id, body))


async def delete(schedule_id: str) -> str:
    """Delete an imperative schedule; returns its id."""
    return str((await backend().delete(schedule_id))["id"])


async def activate(schedule_id: str) -> Schedule:
    """Fire again, from the next instant after now."""
    return Schedule.from_api(await backend().set_active(schedule_id, True))


async def deactivate(schedule_id: str) -> Schedule:
    """Stop firing (until activated)."""
    return Schedule.from_api(await backend().set_active(schedule_id, False))


async def timezones(*, exclude_utc: bool = False) -> builtins.list[str]:
    """The IANA timezones a schedule may use ("UTC" first unless `exclude_utc`)."""
    return await backend().timezones(exclude_utc)
