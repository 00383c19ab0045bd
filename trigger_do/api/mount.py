"""`trigger_do.serve(tasks=module)`: the HTTP API as an ASGI app to mount in your own
(FastAPI, Starlette): `app.mount("/api/trigger", trigger_do.serve(tasks=tasks))`.

It triggers into the embedded database (`TRIGGER_DO_DB` or `.trigger-do/trigger.db`, or
`db=`), validating payloads against the given modules' tasks; worker processes
(`trigger-do dev` / `serve` on the same database) run them."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from starlette.applications import Starlette

from ..engine import Engine
from ..task import Task, tasks_in
from .app import create_app
from .keys import load_or_create_key


def _modules(tasks: str | ModuleType | list[str | ModuleType]) -> list[ModuleType]:
    items = tasks if isinstance(tasks, list) else [tasks]
    return [importlib.import_module(t) if isinstance(t, str) else t for t in items]


def serve(
    *,
    tasks: str | ModuleType | list[str | ModuleType],
    db: str | os.PathLike[str] | None = None,
    secret_key: str | None = None,
) -> Starlette:
    """An ASGI app serving the HTTP API for `tasks`' tasks (a module, a dotted name, or a
    list of them). The key is `secret_key`, else `TRIGGER_SECRET_KEY`, else the one stored
    beside the database (created on first use)."""
    from ..platform.local.platform import default_db_path
    from ..sdk.client import embedded_client

    known: dict[str, Task[Any]] = {}
    for module in _modules(tasks):
        known.update(tasks_in(module))
    client = embedded_client(db)
    base = client.engine
    engine = Engine(base.platform, base.config, find=known.get)
    path = os.fspath(db) if db is not None else os.fspath(default_db_path())
    key = secret_key or load_or_create_key(Path(path))
    return create_app(engine, key)
