"""The dashboard's sections, and a place for features that bring their own page.

A feature (webhook deliveries, wait tokens, metrics, ...) adds its page with `register`:
its route joins the app's routes and its entry appears in the navigation, only where the
feature is present (`available(engine)`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine import Engine

POLL_SECONDS = {"run": 30, "list": 30}  # live.py: the fallback, when a held request failed


@dataclass(frozen=True)
class Entry:
    label: str
    path: str
    section: str


CORE = [
    Entry("Runs", "/runs", "runs"),
    Entry("Tasks", "/tasks", "tasks"),
    Entry("Queues", "/queues", "queues"),
    Entry("Schedules", "/schedules", "schedules"),
    Entry("Bulk actions", "/bulk-actions", "bulk"),
    Entry("Dead letters", "/dead-letters", "dead"),
]


@dataclass(frozen=True)
class ExtraPage:
    entry: Entry
    endpoint: Callable[[Any], Awaitable[Any]]
    available: Callable[[Engine], bool]
    methods: tuple[str, ...] = ("GET",)


EXTRA: list[ExtraPage] = []


def register(
    label: str,
    path: str,
    endpoint: Callable[[Any], Awaitable[Any]],
    *,
    available: Callable[[Engine], bool] = lambda engine: True,
    methods: tuple[str, ...] = ("GET",),
) -> None:
    """Add a page (`endpoint`: a Starlette endpoint; wrap it in `web.guarded`) before the
    app is made. Its nav entry shows where `available(engine)` is true."""
    section = path.strip("/").split("/")[0]
    EXTRA.append(ExtraPage(Entry(label, path, section), endpoint, available, methods))


def entries(engine: Engine) -> list[Entry]:
    extra = []
    for page in EXTRA:
        try:
            if page.available(engine):
                extra.append(page.entry)
        except Exception:  # a feature's probe never breaks the navigation
            continue
    return [*CORE, *extra]
