"""Trigger.dev's schedules API: `POST/GET /api/v1/schedules`, `GET/PUT/DELETE
/api/v1/schedules/{id}`, `POST .../{id}/activate` and `.../deactivate`, and
`GET /api/v1/timezones[?excludeUtc=true]` (the one route served without a key: the official
client sends none there).

Errors as Trigger.dev gives them: 404 `{"error": "Schedule not found"}`; 422 for a bad cron
or timezone, a task that is not a scheduled task, a change to a declarative schedule
("Cannot update a declarative schedule"), or a body field of the wrong type."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidScheduleError, ScheduleNotFoundError
from ..schedules.cron import timezones as all_timezones
from ..schedules.service import MAX_KEY
from ..schedules.shapes import schedule_object
from .errors import HTTPError
from .fields import PageNumber, PageSize
from .jsonbody import read_json_object
from .requests import Body, engine_of, query_value, validate

KIB = 1024
Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_KEY)]


class UpdateScheduleBody(Body):
    task: Text
    cron: Annotated[StrictStr, Field(max_length=1000)]
    externalId: Text | None = None
    timezone: Annotated[StrictStr, Field(max_length=200)] | None = None


class CreateScheduleBody(UpdateScheduleBody):
    deduplicationKey: Text


Handler = Callable[[Request], Awaitable[Response]]


def _schedule_errors(handler: Handler) -> Handler:
    """A missing schedule is 404 "Schedule not found"; one that cannot be, 422."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ScheduleNotFoundError:
            raise HTTPError(404, "Schedule not found", code="schedule_not_found") from None
        except InvalidScheduleError as exc:
            raise HTTPError(422, str(exc), code="invalid_schedule") from None

    return wrapped


def _id(request: Request) -> str:
    return str(request.path_params["schedule_id"])


@_schedule_errors
async def create(request: Request) -> Response:
    body = validate(CreateScheduleBody, await read_json_object(request, 16 * KIB, required=True))
    rec = await engine_of(request).schedules.create(
        body.task,
        body.cron,
        body.deduplicationKey,
        external_id=body.externalId,
        timezone=body.timezone,
    )
    return JSONResponse(schedule_object(rec))


@_schedule_errors
async def list_schedules(request: Request) -> Response:
    params = request.query_params
    page: int = query_value(PageNumber, "page", params.get("page"), 1)
    per_page: int = query_value(PageSize, "perPage", params.get("perPage"), 20)
    rows, count = await engine_of(request).schedules.page(page, per_page)
    pagination: dict[str, Any] = {
        "currentPage": page,
        "totalPages": max(1, -(-count // per_page)),
        "count": count,
    }
    return JSONResponse({"data": [schedule_object(r) for r in rows], "pagination": pagination})


@_schedule_errors
async def retrieve(request: Request) -> Response:
    return JSONResponse(schedule_object(await engine_of(request).schedules.get(_id(request))))


@_schedule_errors
async def update(request: Request) -> Response:
    body = validate(UpdateScheduleBody, await read_json_object(request, 16 * KIB, required=True))
    rec = await engine_of(request).schedules.update(
        _id(request),
        body.task,
        body.cron,
        external_id=body.externalId,
        timezone=body.timezone,
    )
    return JSONResponse(schedule_object(rec))


@_schedule_errors
async def delete(request: Request) -> Response:
    rec = await engine_of(request).schedules.delete(_id(request))
    return JSONResponse({"id": rec["id"]})


@_schedule_errors
async def activate(request: Request) -> Response:
    return JSONResponse(schedule_object(await engine_of(request).schedules.activate(_id(request))))


@_schedule_errors
async def deactivate(request: Request) -> Response:
    rec = await engine_of(request).schedules.deactivate(_id(request))
    return JSONResponse(schedule_object(rec))


async def timezones(request: Request) -> Response:
    """No key needed (`auth.PUBLIC_PATHS`): the official client sends none here."""
    flag = request.query_params.get("excludeUtc")
    if flag not in (None, "", "true", "false"):
        raise HTTPError(400, f"excludeUtc must be true or false, not {flag[:40]!r}")
    return JSONResponse({"timezones": all_timezones(exclude_utc=flag == "true")})
