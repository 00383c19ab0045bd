"""The realtime feeds a dashboard page is drawn from, and their offsets (see live.py)."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request

from ..realtime.feeds import Feed
from . import web
from .filters import FilterError, RunFilters


def run_feed(run_id: str) -> Feed:
    return Feed.run(run_id)


def list_feed(request: Request, since: float | None = None) -> Feed:
    """The runs list's change signal: the runs carrying the filter's tags (all runs without
    one) created from `since` (the oldest row the page shows, or the `since` the fragment
    asks with), so that a page of 50 rows watches about 50 runs and the new ones, not the
    feed's 1,000; other filters are applied when the rows are drawn."""
    try:
        tags = RunFilters.parse(request.query_params).tag
    except FilterError:
        tags = []
    if since is None:
        since = since_of(request)
    return Feed.tags(tags, since)


def since_of(request: Request) -> float | None:
    try:
        since = float(request.query_params.get("since") or "nan")
    except ValueError:
        return None
    return since if math.isfinite(since) else None


def list_since(request: Request, rows: list[dict[str, Any]]) -> float:
    """What the list watches from: its oldest row, else (no rows) from now on."""
    return min((r["created_at"] for r in rows), default=web.engine_of(request).now())


async def offset_of(request: Request, feed: Feed) -> str:
    """The feed's offset now. A run's is read before the run is drawn, so a change between
    the two wakes the next held request at once; the list's is read after its rows (it
    depends on them), so a change in between shows at the latest when the hold ends."""
    return (await feed.versions(web.engine_of(request))).offset
