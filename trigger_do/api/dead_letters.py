"""Dead letters over HTTP (trigger.do's own, as `trigger-do dlq`): runs whose consumer died on
every allowed delivery, and requeueing them. `GET /api/v1/deadLetters`,
`POST /api/v1/deadLetters/requeue {"runIds": [...]}` or `{"all": true}`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .fields import RunId
from .jsonbody import read_json_object
from .requests import Body, engine_of, validate
from .shapes import iso


class RequeueBody(Body):
    runIds: Annotated[list[RunId], Field(max_length=1000)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> RequeueBody:
        if (self.runIds is None) == (not self.all):
            raise ValueError("give runIds or all: true (one of them)")
        return self


def item(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "runId": d["run_id"],
        "taskIdentifier": d["task"],
        "deliveries": d["deliveries"],
        "reason": d["reason"],
        "deadAt": iso(d["dead_at"]),
    }


async def list_dead_letters(request: Request) -> Response:
    dead = await engine_of(request).dead_letters()
    return JSONResponse({"data": [item(d) for d in dead]})


async def requeue(request: Request) -> Response:
    body = validate(RequeueBody, await read_json_object(request, 64 * 1024, required=True))
    revived = await engine_of(request).requeue_dead(None if body.all else body.runIds)
    return JSONResponse({"requeued": revived})
