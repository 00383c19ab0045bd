"""The other sections: tasks (and a test form that triggers one), queues (pause, resume, a
concurrency override), dead letters (requeue), schedules (activate, deactivate) and bulk
actions."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ..producer.producer import TriggerRequest
from ..shared.options import TriggerOptions
from . import web
from .runs import parse_json

RECENT = 5  # payloads of a task's latest runs offered on its test form


async def _tasks(request: Request) -> list[dict[str, Any]]:
    """The tasks the workers serve (the registry) and those this process knows."""
    from ..task import registered_tasks

    engine = web.engine_of(request)
    found = {t["id"]: dict(t) for t in await engine.registry.tasks()}
    for task_id, known in registered_tasks().items():
        found.setdefault(
            task_id, {"id": task_id, "module": known.module, "queue": known.queue_name}
        )
    for row in found.values():
        declared = engine.producer.find_task(row["id"])
        crons = getattr(declared, "crons", None) or []
        row["crons"] = [f"{c.expression} ({c.timezone})" for c in crons]
    return [found[k] for k in sorted(found)]


@web.guarded
async def tasks_page(request: Request) -> Response:
    return web.render(request, "tasks.html", tasks=await _tasks(request))


@web.guarded
async def task_page(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    engine = web.engine_of(request)
    recent = await engine.list_runs(limit=RECENT, tasks=[task_id])
    payloads = list(dict.fromkeys(r["payload"] for r in recent if r.get("payload") is not None))
    known = engine.producer.find_task(task_id)
    schema = ""
    model = getattr(known, "payload_model", None)
    if model is not None and hasattr(model, "model_json_schema"):
        try:
            schema = json.dumps(model.model_json_schema(), indent=2)
        except Exception:  # a schema pydantic cannot express: the form works without it
            schema = ""
    return web.render(
        request,
        "task.html",
        task_id=task_id,
        known=known is not None,
        payloads=[_pretty_text(p) for p in payloads],
        payload=_pretty_text(payloads[0]) if payloads else "{}",
        schema=schema,
    )


def _pretty_text(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


@web.guarded
async def trigger(request: Request) -> Response:
    """`POST /tasks/{id}/trigger`: the test form's payload and options; to the new run."""
    task_id = request.path_params["task_id"]
    data = web.posted(request)
    payload = parse_json(web.field(data, "payload"), "payload")
    given: dict[str, Any] = {}
    if web.field(data, "delay").strip():
        given["delay"] = web.field(data, "delay").strip()
    tags = [t.strip() for t in web.field(data, "tags").split(",") if t.strip()]
    if tags:
        given["tags"] = tags
    if web.field(data, "idempotency_key").strip():
        given["idempotency_key"] = web.field(data, "idempotency_key").strip()
    try:
        options = TriggerOptions(**given)
    except (ValidationError, ValueError) as exc:
        raise web.FormError(_first_error(exc)) from None
    made = await web.engine_of(request).trigger(TriggerRequest(task_id, payload, options))
    return web.redirect(request, f"/runs/{made.id}")


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "options"
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc)


@web.guarded
async def queues_page(request: Request) -> Response:
    return web.render(request, "queues.html", queues=await web.engine_of(request).list_queues())


@web.guarded
async def queue_action(request: Request) -> Response:
    """`POST /queues/action` with `name` and `action`: pause, resume, limit (with `limit`;
    empty: back to the declared limit)."""
    data = web.posted(request)
    engine = web.engine_of(request)
    name, action = web.field(data, "name"), web.field(data, "action")
    if action == "pause":
        await engine.pause_queue(name)
    elif action == "resume":
        await engine.resume_queue(name)
    elif action == "limit":
        raw = web.field(data, "limit").strip()
        try:
            limit = int(raw) if raw else None
        except ValueError:
            raise web.FormError(f"limit: not a whole number: {raw[:20]!r}") from None
        if limit is not None and not 0 <= limit <= 100_000:
            raise web.FormError("limit: between 0 and 100000")
        await engine.set_queue_limit(name, limit)
    else:
        raise web.FormError("action: choose pause, resume or limit")
    return web.redirect(request, "/queues")


@web.guarded
async def dead_letters_page(request: Request) -> Response:
    dead = await web.engine_of(request).dead_letters()
    return web.render(request, "dead_letters.html", dead=dead)


@web.guarded
async def requeue(request: Request) -> Response:
    """`POST /dead-letters/requeue`: the selected runs (`run`), or every one (`all`)."""
    data = web.posted(request)
    run_ids = [v for v in data.get("run", []) if v]
    if not run_ids and web.field(data, "all") != "1":
        raise web.FormError("select at least one dead letter")
    await web.engine_of(request).requeue_dead(run_ids or None)
    return web.redirect(request, "/dead-letters")


@web.guarded
async def schedules_page(request: Request) -> Response:
    try:
        page = max(1, int(request.query_params.get("page") or 1))
    except ValueError:
        raise web.FormError("page: not a whole number") from None
    rows, count = await web.engine_of(request).schedules.page(page, 50)
    return web.render(
        request, "schedules.html", schedules=rows, count=count, page=page, pages=-(-count // 50)
    )


@web.guarded
async def schedule_action(request: Request) -> Response:
    data = web.posted(request)
    service = web.engine_of(request).schedules
    schedule_id, action = request.path_params["schedule_id"], web.field(data, "action")
    if action == "activate":
        await service.activate(schedule_id)
    elif action == "deactivate":
        await service.deactivate(schedule_id)
    else:
        raise web.FormError("action: choose activate or deactivate")
    return web.redirect(request, "/schedules")


@web.guarded
async def bulk_actions_page(request: Request) -> Response:
    actions = await web.engine_of(request).list_bulk_actions(limit=50)
    return web.render(request, "bulk_actions.html", actions=actions)
