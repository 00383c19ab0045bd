"""The repository's own Worker (main module of the root wrangler.toml): the example tasks plus the
entry points. A user's project gets its own `src/worker.py` from `trigger-do init`."""

import importlib

from trigger_do.platform.cloudflare.entry import (
    Coordinator,
    Default,
    Events,
    Registry,
    Run,
    RunIndex,
    Scheduler,
    Waitpoints,
)

importlib.import_module("examples.tasks")  # registers the example tasks

__all__ = [
    "Coordinator",
    "Default",
    "Events",
    "Registry",
    "Run",
    "RunIndex",
    "Scheduler",
    "Waitpoints",
]
