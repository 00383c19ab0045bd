"""Assemble the Cloudflare platform from a Worker's `env` (bindings, vars and secrets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ...errors import ConfigurationError
from ...ports import Platform
from . import ffi
from .blobs import R2Blobs
from .objects import DurableNamespace
from .queue import CloudflareQueue

DEFAULT_INDEX_SHARDS = 16
# object kind -> the Durable Object namespace binding that serves it (wrangler.toml)
BINDINGS = {
    "run-index": "RUN_INDEX",
    "run": "RUN",
    "registry": "REGISTRY",
    "coordinator": "COORDINATOR",
    "scheduler": "SCHEDULER",
    "events": "EVENTS",
    "waitpoints": "WAITPOINTS",  # wait tokens (trigger_do/waitpoints/)
}
QUEUE_BINDING = "RUN_QUEUE"
PACKETS_BINDING = "PACKETS"


class WorkerEnvSettings:
    """`Settings` on the Worker's `env`: vars (`[vars]`) and secrets (`wrangler secret put`).
    Nothing on Workers reads `os.environ`."""

    def __init__(self, env: Any) -> None:
        self.env = env

    def get(self, name: str, default: str | None = None) -> str | None:
        value = ffi.to_py(getattr(self.env, name, None))
        return default if value is None else str(value)


class WorkerClock:
    """Epoch seconds. On Workers `time.time()` is `Date.now()`, which advances only across
    I/O (a Spectre mitigation): durations measured inside pure CPU work read as zero."""

    def now(self) -> float:
        return time.time()


async def run_inline(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Sync task functions run inline: Workers have no threads."""
    return fn(*args)


def cloudflare_platform(env: Any, *, clock: Any = None) -> Platform:
    settings = WorkerEnvSettings(env)
    namespaces: dict[str, DurableNamespace] = {}

    def objects(kind: str) -> DurableNamespace:
        found = namespaces.get(kind)
        if found is None:
            binding = getattr(env, BINDINGS[kind], None)
            if binding is None:
                raise ConfigurationError(
                    f"no Durable Object binding {BINDINGS[kind]} for {kind!r} objects"
                )
            found = namespaces[kind] = DurableNamespace(binding)
        return found

    shards = int(settings.get("TRIGGER_DO_INDEX_SHARDS") or DEFAULT_INDEX_SHARDS)
    return Platform(
        queue=CloudflareQueue(getattr(env, QUEUE_BINDING)),
        objects=objects,
        blobs=R2Blobs(getattr(env, PACKETS_BINDING)),
        settings=settings,
        clock=clock or WorkerClock(),
        run_sync=run_inline,
        index_shards=shards,
    )
