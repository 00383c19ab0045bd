"""The runs pages: the list (filters in the URL, a selection to cancel or replay in bulk)
and one run (everything about it, cancel, replay with an edited payload)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ..errors import TriggerDoError
from ..runs.index import RunIndexObject
from ..shared.options import KEY_SEPARATOR
from . import changes, web
from .assets import is_final, status_of
from .filters import PAGE_SIZE, STATUSES, FilterError, RunFilters, cursor_of

LOG_LIMIT = 1000  # log lines a run's page shows (the CLI follows them all)
BULK_SECONDS = 10.0  # a selection is at most a page: done at once (else housekeeping goes on)


async def runs_context(request: Request) -> dict[str, Any]:
    """What the list (page or live fragment) shows for the URL's filters."""
    engine = web.engine_of(request)
    try:
        filters = RunFilters.parse(request.query_params)
        query = filters.engine_filters(engine.now())
        paging = filters.paging()
    except FilterError as exc:
        return {"filters": RunFilters(), "rows": [], "error": str(exc), "older": "", "newer": ""}
    rows = await engine.list_runs(limit=PAGE_SIZE, **query, **paging)
    base = "/runs"
    older = newer = ""
    if len(rows) == PAGE_SIZE:
        older = filters.url(base, after=cursor_of(rows[-1]), before="")
    if rows and (filters.after or filters.before):
        newer = filters.url(base, before=cursor_of(rows[0]), after="")
    return {"filters": filters, "rows": rows, "error": "", "older": older, "newer": newer}


@web.guarded
async def runs_page(request: Request) -> Response:
    context = await runs_context(request)
    since = changes.list_since(request, context["rows"])
    offset = await changes.offset_of(request, changes.list_feed(request, since))
    engine = web.engine_of(request)
    tasks = sorted({t["id"] for t in await engine.registry.tasks()} | set(context["filters"].task))
    done = None
    bulk_id = request.query_params.get("done")
    if bulk_id:
        try:
            done = await engine.get_bulk_action(bulk_id)
        except TriggerDoError:  # an unknown id in the URL: no notice
            done = None
    return web.render(
        request,
        "runs.html",
        400 if context["error"] else 200,
        statuses=STATUSES,
        tasks=tasks,
        done=done,
        offset=offset,
        since=since,
        here=request.url.path[len(web.root(request)) :] + _query(request),
        **context,
    )


def _query(request: Request) -> str:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "done"]
    return f"?{urlencode(pairs)}" if pairs else ""


@web.guarded
async def bulk(request: Request) -> Response:
    """`POST /runs/bulk`: cancel or replay the selected runs (one bulk action)."""
    data = web.posted(request)
    kind = web.field(data, "action")
    if kind not in ("cancel", "replay"):
        raise web.FormError("action: choose cancel or replay")
    run_ids = list(dict.fromkeys(v for v in data.get("run", []) if v))
    if not run_ids:
        raise web.FormError("select at least one run")
    if len(run_ids) > 10 * PAGE_SIZE:
        raise web.FormError(f"select at most {10 * PAGE_SIZE} runs")
    action = await web.engine_of(request).create_bulk_action(
        kind, run_ids=run_ids, name=f"dashboard {kind}", process_for=BULK_SECONDS
    )
    back = web.local_path(web.field(data, "back"), "/runs")
    sep = "&" if "?" in back else "?"
    return web.redirect(request, f"{back}{sep}done={action['id']}")


async def run_context(request: Request) -> dict[str, Any]:
    engine = web.engine_of(request)
    run = await engine.get_run(request.path_params["run_id"])
    logs = await engine.logs(run["id"], 0, LOG_LIMIT) if run.get("has_object") else []
    schedule = (run.get("options") or {}).get("schedule") or {}
    waits = await engine.index.on(run["id"])(RunIndexObject.waitpoints_of, run["id"])
    related = await engine.waits.related(run)
    return {
        "run": run,
        "related": related,
        "waits": waits,
        "started_by": (run.get("options") or {}).get("event") or None,
        "run_status": status_of(run["state"]),
        "final": is_final(run["state"]),
        "logs": logs,
        "log_limit": LOG_LIMIT,
        "timeline": timeline(run, logs, waits),
        "schedule_id": schedule.get("id") if isinstance(schedule, dict) else None,
        "key": _caller_key(run.get("idempotency_key")),
    }


def timeline(
    run: dict[str, Any], logs: list[dict[str, Any]], waits: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What happened between its start and its end, in order: checkpoints, waits (their
    kind, due time and whether they are done), and the warnings and errors its attempts
    logged (a failed attempt says so)."""
    events = [
        {"at": c["at"], "text": "checkpoint", "name": c["name"], "attempt": c["attempt"]}
        for c in run.get("checkpoints") or []
    ]
    for w in waits:
        state = "done" if w["completed_at"] else "waiting"
        events.append(
            {
                "at": w["created_at"],
                "text": f"waits ({w['kind']})",
                "name": w["key"] or "",
                "attempt": 0,
                "due": w["due"],
                "wait_state": state,
                "children": w["children"],
            }
        )
        if w["completed_at"] and w["completed_at"] != w["created_at"]:
            done = f"wait done ({w['kind']})"
            key = w["key"] or ""
            events.append({"at": w["completed_at"], "text": done, "name": key, "attempt": 0})
    events += [
        {"at": line["at"], "text": line["message"], "name": "", "attempt": line["attempt"]}
        for line in logs
        if str(line.get("level", "")).lower() in ("warn", "warning", "error")
    ]
    return sorted(events, key=lambda e: e["at"] or 0.0)


def _caller_key(stored: str | None) -> str | None:
    """The idempotency key as the caller gave it (stored scoped by the task's id)."""
    if not stored:
        return None
    return stored.split(KEY_SEPARATOR, 1)[1] if KEY_SEPARATOR in stored else stored


@web.guarded
async def run_page(request: Request) -> Response:
    offset = await changes.offset_of(request, changes.run_feed(request.path_params["run_id"]))
    context = await run_context(request)
    return web.render(request, "run.html", offset=offset, **context)


@web.guarded
async def cancel(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    await web.engine_of(request).cancel(run_id)
    return web.redirect(request, f"/runs/{run_id}")


@web.guarded
async def replay(request: Request) -> Response:
    """`POST /runs/{id}/replay`: a new run of its task with the (edited) payload."""
    run_id = request.path_params["run_id"]
    payload = parse_json(web.field(web.posted(request), "payload"), "payload")
    made = await web.engine_of(request).replay(run_id, payload=payload)
    return web.redirect(request, f"/runs/{made.id}")


def parse_json(text: str, name: str) -> Any:
    """A JSON text from a form (empty: null), or `FormError` naming the field."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise web.FormError(f"{name}: not JSON ({exc})") from None
