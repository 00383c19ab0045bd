"""Errors as JSON `{"error": "<message>"}` with the status the official client expects.

Extra keys (`code`, `errors`, `taskId`, ...) let trigger.do's own remote client raise the
same exception as embedded mode; the official client ignores them."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import (
    InvalidDurationError,
    PayloadTooLargeError,
    PayloadValidationError,
    QueueNotFoundError,
    RunNotFoundError,
    StorageUnavailableError,
    TriggerDoError,
    UnknownTaskError,
)

log = logging.getLogger("trigger_do.api")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        self.status = status
        self.message = message
        self.extra = extra
        super().__init__(message)


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"x-should-retry": "false"} if 400 <= status < 500 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def response_for(exc: BaseException) -> JSONResponse:
    """The response for an exception a handler let through."""
    if isinstance(exc, HTTPError):
        return error_response(exc.status, exc.message, **exc.extra)
    if isinstance(exc, UnknownTaskError):
        return error_response(404, str(exc), code="unknown_task", taskId=exc.task_id)
    if isinstance(exc, QueueNotFoundError):
        return error_response(404, str(exc), code="queue_not_found")
    if isinstance(exc, RunNotFoundError):
        return error_response(404, str(exc), code="run_not_found", runId=exc.run_id)
    if isinstance(exc, PayloadTooLargeError):
        return error_response(
            413, str(exc), code="payload_too_large", size=exc.size, limit=exc.limit
        )
    if isinstance(exc, PayloadValidationError):
        return error_response(422, str(exc), code="validation", errors=exc.errors)
    if isinstance(exc, InvalidDurationError):
        return error_response(422, str(exc), code="validation", errors=[])
    if isinstance(exc, StorageUnavailableError):  # nothing was written: try again later
        return JSONResponse(
            {"error": str(exc), "code": "storage_unavailable"},
            status_code=503,
            headers={"retry-after": str(exc.retry_after)},
        )
    if isinstance(exc, HTTPException):
        return error_response(exc.status_code, str(exc.detail))
    if isinstance(exc, TriggerDoError):
        return error_response(400, str(exc), code="error")
    log.exception("unhandled error in the HTTP API", exc_info=exc)
    return JSONResponse({"error": "internal server error"}, status_code=500)


async def handle(request: Request, exc: Exception) -> Response:
    return response_for(exc)
