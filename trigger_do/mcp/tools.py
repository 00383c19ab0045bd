"""The MCP tools: Trigger.dev's names and arguments (`get_tasks`, `get_task_schema`,
`trigger_task`, `list_runs`, `get_run_details`, `wait_for_run_to_complete`, `cancel_run`) and
trigger.do's own (`replay_run`, queues, dead letters, schedules). Each tool is an arguments
model and a function of it that calls the HTTP API (`backend.Api`) and returns concise text
plus the API's JSON as structured content. Trigger.dev's `projectRef`, `environment`,
`branch` and `configPath` are accepted and ignored; `taskSlug` is an alias of `taskId`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import text
from .backend import Api, McpToolError

MAX_LOG_LINES = 200
POLL_START, POLL_MAX = 0.05, 0.5


class Args(BaseModel):
    """Every tool's arguments: unknown keys are ignored (prompts written for Trigger.dev
    pass `projectRef`, `environment`, `branch`, `configPath`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    projectRef: str | None = Field(None, description="ignored (Trigger.dev's project ref)")
    environment: str | None = Field(None, description="ignored (one environment here)")
    branch: str | None = Field(None, description="ignored")
    configPath: str | None = Field(None, description="ignored")


class NoArgs(Args):
    pass


class TaskArgs(Args):
    taskId: str | None = Field(None, description="the task's id")
    taskSlug: str | None = Field(None, description="alias of taskId (Trigger.dev's name)")

    @model_validator(mode="after")
    def _task(self) -> TaskArgs:
        if not (self.taskId or self.taskSlug):
            raise ValueError("taskId is required")
        return self

    @property
    def task(self) -> str:
        return str(self.taskId or self.taskSlug)


class TriggerOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    delay: str | float | None = Field(None, description='start no sooner: "30s", "1h", a date')
    idempotencyKey: str | None = Field(None, description="the same key returns the same run")
    tags: str | list[str] | None = None
    ttl: str | float | None = Field(None, description="expire if not started within this")
    maxAttempts: int | None = None
    queue: str | dict[str, Any] | None = Field(None, description="a queue name")
    concurrencyKey: str | None = None


class TriggerArgs(TaskArgs):
    payload: Any = Field(None, description="the payload (a JSON object; see get_task_schema)")
    options: TriggerOptions | None = None


class RunArgs(Args):
    runId: str = Field(description="the run's id (run_...)")


class WaitArgs(RunArgs):
    timeoutInSeconds: float = Field(60, ge=0, le=3600, description="give up after (seconds)")


class DetailArgs(RunArgs):
    maxTraceLines: int = Field(MAX_LOG_LINES, ge=0, le=1000, description="log lines to show")


StrOrList = str | list[str]


class ListArgs(Args):
    status: StrOrList | None = Field(None, description="QUEUED, EXECUTING, COMPLETED, FAILED...")
    taskIdentifier: StrOrList | None = None
    tag: StrOrList | None = None
    from_: Annotated[str | float | None, Field(alias="from")] = Field(
        None, description="created at or after: ISO date or epoch ms"
    )
    to: str | float | None = Field(None, description="created before: ISO date or epoch ms")
    period: str | None = Field(None, description='created within this period: "1h", "7d"')
    cursor: str | None = Field(None, description="the next page's cursor from a previous call")
    limit: int = Field(20, ge=1, le=100)


class QueueArgs(Args):
    queue: str = Field(description='the queue\'s name, e.g. "task/send-email" or a shared one')


class RequeueArgs(Args):
    runIds: list[str] | None = Field(None, description="dead-lettered runs to requeue")
    all: bool = Field(False, description="requeue every dead letter")

    @model_validator(mode="after")
    def _one(self) -> RequeueArgs:
        if (self.runIds is None) == (not self.all):
            raise ValueError("give runIds or all: true (one of them)")
        return self


class ScheduleArgs(Args):
    scheduleId: str = Field(description="the schedule's id (sched_...)")


class CreateScheduleArgs(Args):
    task: str = Field(description="a task declared with @schedules.task")
    cron: str = Field(description="a 5-field cron expression, e.g. '0 9 * * 1-5'")
    timezone: str | None = Field(None, description="an IANA timezone (default UTC)")
    deduplicationKey: str = Field(description="one schedule per key: the same key updates it")
    externalId: str | None = None


Result = tuple[str, Any]  # the text an agent reads, and the structured content


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[Args]
    run: Callable[[Api, Any], Awaitable[Result]]
    read_only: bool
    destructive: bool = False


# --- the tools -----------------------------------------------------------------------------


async def get_tasks(api: Api, _: NoArgs) -> Result:
    found = await api.request("GET", "/api/v1/tasks")
    return text.tasks(found["data"]), found


async def get_task_schema(api: Api, a: TaskArgs) -> Result:
    task = await _task(api, a.task)
    return text.schema(task), {"taskId": task["id"], "payloadSchema": task["payloadSchema"]}


async def _task(api: Api, task_id: str) -> dict[str, Any]:
    tasks = (await api.request("GET", "/api/v1/tasks"))["data"]
    for t in tasks:
        if t["id"] == task_id:
            return dict(t)
    known = ", ".join(t["id"] for t in tasks) or "none: is the worker running?"
    raise McpToolError(f"unknown task {task_id!r} (known tasks: {known})")


async def trigger_task(api: Api, a: TriggerArgs) -> Result:
    options = a.options.model_dump(exclude_none=True) if a.options else {}
    if isinstance(options.get("queue"), str):
        options["queue"] = {"name": options["queue"]}
    path = f"/api/v1/tasks/{quote(a.task, safe='/')}/trigger"
    done = await api.request("POST", path, json={"payload": a.payload, "options": options})
    cached = " (an existing run: same idempotency key)" if done.get("isCached") else ""
    return f"Triggered {a.task}: run {done['id']}{cached}", done


async def list_runs(api: Api, a: ListArgs) -> Result:
    params: dict[str, Any] = {"page[size]": a.limit}
    for name, values in (
        ("status", a.status),
        ("taskIdentifier", a.taskIdentifier),
        ("tag", a.tag),
    ):
        if values:
            params[f"filter[{name}]"] = ",".join([values] if isinstance(values, str) else values)
    for name, when in (("from", a.from_), ("to", a.to)):
        if when is not None:
            params[f"filter[createdAt][{name}]"] = _epoch_ms(name, when)
    if a.period:
        params["filter[createdAt][period]"] = a.period
    if a.cursor:
        params["page[after]"] = a.cursor
    page = await api.request("GET", "/api/v1/runs", params=params)
    return text.runs(page), page


def _epoch_ms(name: str, value: str | float) -> int:
    if isinstance(value, int | float):
        return int(value)
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)
    except ValueError:
        pass
    raise McpToolError(f"{name}: expected an ISO date or epoch milliseconds, not {value!r}")


async def get_run_details(api: Api, a: DetailArgs) -> Result:
    run = await _run(api, a.runId)
    logs = await _last_logs(api, a.runId, a.maxTraceLines)
    return text.details(run, logs), {"run": run, "logs": logs}


async def _run(api: Api, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = await api.request("GET", f"/api/v3/runs/{quote(run_id, safe='')}")
    return run


async def _last_logs(api: Api, run_id: str, keep: int) -> list[dict[str, Any]]:
    last: deque[dict[str, Any]] = deque(maxlen=keep)
    after = 0
    while keep:
        page = await api.request(
            "GET", f"/api/v1/runs/{quote(run_id, safe='')}/logs", params={"after": after}
        )
        last.extend(page["data"])
        if len(page["data"]) < 1000:
            break
        after = page["data"][-1]["seq"]
    return list(last)


async def wait_for_run_to_complete(api: Api, a: WaitArgs) -> Result:
    deadline = time.monotonic() + a.timeoutInSeconds
    delay = POLL_START
    while True:
        run = await _run(api, a.runId)
        if run["isCompleted"] or time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, POLL_MAX)
    logs = await _last_logs(api, a.runId, 20)
    head = "" if run["isCompleted"] else f"Still {run['status']} after {a.timeoutInSeconds:g}s.\n"
    return head + text.details(run, logs), {"run": run, "completed": run["isCompleted"]}


async def cancel_run(api: Api, a: RunArgs) -> Result:
    done = await api.request("POST", f"/api/v2/runs/{quote(a.runId, safe='')}/cancel")
    if done.get("canceled") is False:
        run = await _run(api, a.runId)
        return f"Run {a.runId} was not canceled: it is already {run['status']}", done
    return f"Canceled run {a.runId}", done


async def replay_run(api: Api, a: RunArgs) -> Result:
    done = await api.request("POST", f"/api/v1/runs/{quote(a.runId, safe='')}/replay")
    return f"Replayed run {a.runId} as run {done['id']}", done


async def list_queues(api: Api, _: NoArgs) -> Result:
    found = await api.request("GET", "/api/v1/queues", params={"perPage": 100})
    return text.queues(found["data"]), found


def _queue_path(name: str, action: str) -> str:
    # as the official client: `/` escaped, then the whole name encoded (the server decodes twice)
    return f"/api/v1/queues/{quote(quote(name, safe=''), safe='')}/{action}"


async def pause_queue(api: Api, a: QueueArgs) -> Result:
    q = await api.request("POST", _queue_path(a.queue, "pause"), json={"action": "pause"})
    return f"Paused queue {a.queue}: no run of it starts until it is resumed", q


async def resume_queue(api: Api, a: QueueArgs) -> Result:
    q = await api.request("POST", _queue_path(a.queue, "pause"), json={"action": "resume"})
    return f"Resumed queue {a.queue}", q


async def list_dead_letters(api: Api, _: NoArgs) -> Result:
    found = await api.request("GET", "/api/v1/deadLetters")
    return text.dead_letters(found["data"]), found


async def requeue(api: Api, a: RequeueArgs) -> Result:
    body: dict[str, Any] = {"all": True} if a.all else {"runIds": a.runIds or []}
    done = await api.request("POST", "/api/v1/deadLetters/requeue", json=body)
    ids = done["requeued"]
    return (f"Requeued {len(ids)} run(s): {', '.join(ids)}" if ids else "Requeued nothing"), done


async def list_schedules(api: Api, _: NoArgs) -> Result:
    found = await api.request("GET", "/api/v1/schedules", params={"perPage": 100})
    return text.schedules(found["data"]), found


async def create_schedule(api: Api, a: CreateScheduleArgs) -> Result:
    body = a.model_dump(
        include={"task", "cron", "timezone", "deduplicationKey", "externalId"}, exclude_none=True
    )
    s = await api.request("POST", "/api/v1/schedules", json=body)
    return "Created " + text.schedules([s]), s


def _schedule_action(
    action: str, method: str, suffix: str
) -> Callable[[Api, Any], Awaitable[Result]]:
    async def run(api: Api, a: ScheduleArgs) -> Result:
        path = f"/api/v1/schedules/{quote(a.scheduleId, safe='')}{suffix}"
        done = await api.request(method, path)
        return f"{action} schedule {a.scheduleId}", done

    return run


TOOLS: list[Tool] = [
    Tool(
        "get_tasks",
        "The tasks this trigger.do serves: ids, queues, concurrency and rate limits, retry "
        "policy, schedules.",
        NoArgs,
        get_tasks,
        read_only=True,
    ),
    Tool(
        "get_task_schema",
        "The JSON Schema of a task's payload (from its Python type annotation).",
        TaskArgs,
        get_task_schema,
        read_only=True,
    ),
    Tool(
        "trigger_task",
        "Trigger a task with a payload; returns the new run's id. The payload is validated "
        "against the task's schema first.",
        TriggerArgs,
        trigger_task,
        read_only=False,
    ),
    Tool(
        "list_runs",
        "Runs, newest first, filtered by status, task, tag or creation time; pages with cursor.",
        ListArgs,
        list_runs,
        read_only=True,
    ),
    Tool(
        "get_run_details",
        "One run: status, attempts, payload, output, error, checkpoints and its last log lines.",
        DetailArgs,
        get_run_details,
        read_only=True,
    ),
    Tool(
        "wait_for_run_to_complete",
        "Wait until a run is finished (or the timeout passes) and return its details.",
        WaitArgs,
        wait_for_run_to_complete,
        read_only=True,
    ),
    Tool(
        "cancel_run",
        "Cancel a run that has not finished.",
        RunArgs,
        cancel_run,
        read_only=False,
        destructive=True,
    ),
    Tool(
        "replay_run",
        "Trigger a run again with the same task, payload and tags; returns the new run's id.",
        RunArgs,
        replay_run,
        read_only=False,
    ),
    Tool(
        "list_queues",
        "Every queue: running and queued runs, concurrency limit, paused.",
        NoArgs,
        list_queues,
        read_only=True,
    ),
    Tool(
        "pause_queue",
        "Pause a queue: none of its runs starts until it is resumed (running ones finish).",
        QueueArgs,
        pause_queue,
        read_only=False,
        destructive=True,
    ),
    Tool("resume_queue", "Resume a paused queue.", QueueArgs, resume_queue, read_only=False),
    Tool(
        "list_dead_letters",
        "Runs whose worker process died on every allowed delivery (CRASHED, dead-lettered).",
        NoArgs,
        list_dead_letters,
        read_only=True,
    ),
    Tool(
        "requeue",
        "Give dead-lettered runs another try (from their last checkpoint).",
        RequeueArgs,
        requeue,
        read_only=False,
    ),
    Tool(
        "list_schedules",
        "Every schedule (declared crons and imperative ones) with its next fire times.",
        NoArgs,
        list_schedules,
        read_only=True,
    ),
    Tool(
        "create_schedule",
        "Create (or, with the same deduplicationKey, update) a schedule for a scheduled task.",
        CreateScheduleArgs,
        create_schedule,
        read_only=False,
    ),
    Tool(
        "delete_schedule",
        "Delete an imperative schedule.",
        ScheduleArgs,
        _schedule_action("Deleted", "DELETE", ""),
        read_only=False,
        destructive=True,
    ),
    Tool(
        "activate_schedule",
        "Fire a schedule again, from its next instant after now.",
        ScheduleArgs,
        _schedule_action("Activated", "POST", "/activate"),
        read_only=False,
    ),
    Tool(
        "deactivate_schedule",
        "Stop a schedule firing until it is activated.",
        ScheduleArgs,
        _schedule_action("Deactivated", "POST", "/deactivate"),
        read_only=False,
        destructive=True,
    ),
]
