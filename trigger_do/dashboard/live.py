"""Live updates: the fragments a page polls (htmx, every `nav.POLL_SECONDS`).

Kept apart on purpose: when the realtime routes (Electric-style shapes, issue 20) land,
the templates' `live(...)` macro (`templates/_live.html`) subscribes to those instead and
these two routes go; nothing else in the dashboard knows how updates arrive."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from . import web
from .runs import run_context, runs_context


@web.guarded
async def runs_rows(request: Request) -> Response:
    """`GET /runs/_rows?<filters>`: the list's rows, as the page shows them."""
    context = await runs_context(request)
    return web.render(request, "_runs_rows.html", **context)


@web.guarded
async def run_live(request: Request) -> Response:
    """`GET /runs/{id}/_live`: the changing part of a run's page (status, output, error,
    checkpoints, steps, logs). Once the run is final the fragment comes without a poll."""
    context = await run_context(request)
    return web.render(request, "_run_live.html", **context)
