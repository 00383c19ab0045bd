"""Live updates: the fragments a page keeps current, held in the realtime watcher.

A live fragment is drawn with its feed's offset (`Feed.run(id)` for a run's page, the
list's tag feed for the runs list) and asks for itself again with `?seen=<offset>`; the
request waits in `watcher_for(engine).wait(...)` until that feed changed or `HOLD` seconds
passed, then answers the fragment as it is now. An idle page thus costs one held request
and no reads (the watcher reads the process-wide change signal, not each page's runs). The
templates' `live(...)` macro (`templates/_live.html`) is the one place that says how a page
asks; its slow `every` trigger is the fallback when a held request fails."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..realtime.feeds import Feed
from ..realtime.watcher import watcher_for
from . import web
from .changes import list_feed, list_since, offset_of, run_feed
from .runs import run_context, runs_context

HOLD = 20.0  # seconds a live request is held with no change before it answers anyway


async def _hold(request: Request, feed: Feed) -> str | None:
    """Wait until `feed` moved past the request's `seen` (at once without one); the offset
    to draw the fragment with: the new one, or `seen` when the hold ended unchanged (None
    without a `seen`)."""
    seen = request.query_params.get("seen")
    if seen is None:
        return None
    snapshot = await watcher_for(web.engine_of(request)).wait(feed, seen=seen, timeout=HOLD)
    return snapshot.offset if snapshot is not None else seen


@web.guarded
async def runs_rows(request: Request) -> Response:
    """`GET /runs/_rows?<filters>&seen=<offset>`: the list's rows once they changed."""
    await _hold(request, list_feed(request))
    context = await runs_context(request)
    since = list_since(request, context["rows"])
    offset = await offset_of(request, list_feed(request, since))
    return web.render(request, "_runs_rows.html", offset=offset, since=since, **context)


@web.guarded
async def run_live(request: Request) -> Response:
    """`GET /runs/{id}/_live?seen=<offset>`: the changing part of a run's page (status,
    metadata, output, error, timeline, checkpoints, steps, logs) once the run changed.
    Once the run is final the fragment comes without a live trigger."""
    feed = run_feed(request.path_params["run_id"])
    offset = await _hold(request, feed) or await offset_of(request, feed)
    context = await run_context(request)
    return web.render(request, "_run_live.html", offset=offset, **context)
