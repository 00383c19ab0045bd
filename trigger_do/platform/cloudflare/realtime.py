"""Realtime run subscriptions on Cloudflare: `GET /realtime/v1/runs/{runId}` is forwarded by
the Worker to the run's Durable Object (as live logs are), which answers it with the same
ASGI routes as the local API (`api/realtime.py`: authentication, scopes, Electric's
protocol), held in the object rather than in a Worker isolate.

The object's watcher (`realtime/watcher.py`) is its own: one per object, however many
subscribers the run has, so a held request costs no read of its own. Its change signal is
what the object hears (the consumer's log appends, the run's end when it is watched), and,
since status and metadata writes go to the run index and not through the object, it also
reads the run's row once a second while anyone waits. A batch's feed, and a set of tags'
are answered likewise by one object of the same class per batch or set (named
`realtime-batch:<id>`, `realtime-tags:<tags>`), which reads it once a second while anyone
waits, however many subscribers it has."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...engine import Engine
from ...realtime.watcher import Watcher, install_watcher
from . import ffi
from .platform import cloudflare_platform

RUN_PATH = re.compile(r"^/realtime/v1/runs/([^/]+)$")
BATCH_PATH = re.compile(r"^/realtime/v1/batches/([^/]+)$")
TAGS_PATH = "/realtime/v1/runs"


def route(request: Any) -> str | None:
    """The name of the Durable Object (of the `Run` class) that answers `request` when it is
    a Realtime subscription (GET), else None: a run's own object for a run; for a batch or a
    set of tags, one object per batch or set, so that all its subscribers share one watcher."""
    if str(ffi.to_py(ffi.js_request(request).method)).upper() != "GET":
        return None
    url = urlsplit(ffi.request_url(request))
    found = RUN_PATH.match(url.path)
    if found:
        return unquote(found.group(1))
    found = BATCH_PATH.match(url.path)
    if found:
        return f"realtime-batch:{unquote(found.group(1))}"
    if url.path == TAGS_PATH:
        tags = ",".join(sorted(set(",".join(parse_qs(url.query).get("tags", [])).split(","))))
        return f"realtime-tags:{tags}"
    return None


class Heard:
    """The `Changes` port inside a run's Durable Object: moves when the object hears of a
    change (`changed`)."""

    def __init__(self) -> None:
        self.count = 0

    def changed(self) -> None:
        self.count += 1

    def version(self) -> int:
        return self.count


class RunRealtime:
    """One run object's Realtime subscribers. Built lazily, kept in the instance: an
    eviction (none while a request is held) only costs rebuilding it."""

    def __init__(self, ctx: Any, env: Any, clock: Any = None) -> None:
        self.ctx, self.env, self.clock = ctx, env, clock
        self.heard = Heard()
        self._app: Any = None

    def changed(self) -> None:
        self.heard.changed()

    async def serve(self, request: Any) -> Any:
        if self._app is None:
            from ...api.app import create_app  # type: ignore[import-not-found,unused-ignore]

            engine = Engine(cloudflare_platform(self.env, clock=self.clock))
            install_watcher(Watcher(engine, changes=self.heard, partial=True))
            key = engine.platform.settings.get("TRIGGER_SECRET_KEY") or ""
            self._app = create_app(engine, key)
        return await ffi.asgi_fetch()(self._app, request, self.env, self.ctx)
