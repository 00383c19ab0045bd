"""The realtime feeds a dashboard page is drawn from, and their offsets (see live.py)."""

from __future__ import annotations

from starlette.requests import Request

from ..realtime.feeds import Feed
from . import web
from .filters import FilterError, RunFilters


def run_feed(run_id: str) -> Feed:
    return Feed.run(run_id)


def list_feed(request: Request) -> Feed:
    """The runs list's change signal: the newest runs carrying the filter's tags (all runs
    without one); other filters are applied when the rows are drawn."""
    try:
        tags = RunFilters.parse(request.query_params).tag
    except FilterError:
        tags = []
    return Feed.tags(tags)


async def offset_of(request: Request, feed: Feed) -> str:
    """The feed's offset now: read before the rows a fragment shows, so a change between
    the two is seen by the next held request, never lost."""
    return (await feed.versions(web.engine_of(request))).offset
