"""`GET /api/v1/tasks`: the tasks this server knows, with their queues, limits, retry
policy, schedules and payload JSON Schema (trigger.do's own: Trigger.dev's REST API has no
task listing; the MCP tools `get_tasks` and `get_task_schema` read it)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..task import Task, registered_tasks


def describe(t: Task[Any]) -> dict[str, Any]:
    """One task as the API shows it (camelCase, as the rest of the API)."""
    r = t.retry
    out: dict[str, Any] = {
        "id": t.id,
        "queue": t.queue_name,
        "queueConcurrencyLimit": t.queue.concurrency_limit if t.queue else None,
        "concurrency": None,
        "rateLimit": None,
        "retry": {
            "maxAttempts": r.max_attempts,
            "backoff": r.backoff,
            "initialDelay": r.initial_delay,
            "maxDelay": r.max_delay,
            "factor": r.factor,
            "jitter": r.jitter,
        },
        "maxDuration": t.max_duration,
        "schedules": [
            {"cron": c.expression, "timezone": c.timezone} for c in getattr(t, "crons", None) or []
        ],
        "payloadSchema": payload_schema(t),
    }
    if t.concurrency is not None:
        key = t.concurrency.key.source if t.concurrency.key else None
        out["concurrency"] = {"limit": t.concurrency.limit, "key": key}
    if t.rate_limit is not None:
        rl = t.rate_limit
        key = rl.key.source if rl.key else None
        out["rateLimit"] = {"limit": rl.limit, "period": rl.period, "key": key}
    return out


def payload_schema(t: Task[Any]) -> dict[str, Any]:
    """The JSON Schema of the payload, from the run function's annotation (`{}`: any JSON)."""
    adapter = t._adapter
    if adapter is None:
        return {}
    schema: dict[str, Any] = adapter.json_schema()
    return schema


async def list_tasks(request: Request) -> Response:
    tasks = registered_tasks()
    return JSONResponse({"data": [describe(tasks[k]) for k in sorted(tasks)]})
