"""The dashboard's routes, served at the app's root beside `/api/...` (`api/app.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from . import assets, events_pages, live, login, nav, runs, sections, web


async def home(request: Request) -> Response:
    return RedirectResponse(web.root(request) + "/runs", status_code=303, headers=web.HEADERS)


async def static(request: Request) -> Response:
    """A shipped static file; cached for a year when asked for by its version."""
    found = assets.static_file(request.path_params["name"])
    if found is None:
        return Response("not found", 404, media_type="text/plain", headers=web.HEADERS)
    content, media_type, version = found
    cache = "public, max-age=31536000, immutable"
    if request.query_params.get("v") != version:
        cache = "no-cache"
    headers = {**web.HEADERS, "cache-control": cache, "etag": f'"{version}"'}
    return Response(content, media_type=media_type, headers=headers)


def routes() -> list[BaseRoute]:
    """Every dashboard route (the features' pages from `nav.register` included)."""
    found: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/login/once", login.login_once, methods=["GET"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/runs", runs.runs_page, methods=["GET"]),
        Route("/runs/_rows", live.runs_rows, methods=["GET"]),
        Route("/runs/bulk", runs.bulk, methods=["POST"]),
        Route("/runs/{run_id}", runs.run_page, methods=["GET"]),
        Route("/runs/{run_id}/_live", live.run_live, methods=["GET"]),
        Route("/runs/{run_id}/cancel", runs.cancel, methods=["POST"]),
        Route("/runs/{run_id}/replay", runs.replay, methods=["POST"]),
        Route("/tasks", sections.tasks_page, methods=["GET"]),
        Route("/tasks/{task_id}", sections.task_page, methods=["GET"]),
        Route("/tasks/{task_id}/trigger", sections.trigger, methods=["POST"]),
        Route("/queues", sections.queues_page, methods=["GET"]),
        Route("/queues/action", sections.queue_action, methods=["POST"]),
        Route("/dead-letters", sections.dead_letters_page, methods=["GET"]),
        Route("/dead-letters/requeue", sections.requeue, methods=["POST"]),
        Route("/schedules", sections.schedules_page, methods=["GET"]),
        Route("/schedules/{schedule_id}/action", sections.schedule_action, methods=["POST"]),
        Route("/bulk-actions", sections.bulk_actions_page, methods=["GET"]),
        *events_pages.routes(),
    ]
    for page in nav.EXTRA:
        found.append(Route(page.entry.path, page.endpoint, methods=list(page.methods)))
    return found
