"""`trigger-do mcp`: the MCP tools over stdio, for an AI agent. On the embedded runtime
(`--tasks`, `--db`, `--workers`, as `serve` takes them: its workers run the tasks) or on a
running server (`--target URL`, the key from `$TRIGGER_SECRET_KEY` or beside the database)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from ..errors import TriggerDoError


def add_parser(sub: Any, positive_int: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio (for an AI agent)",
        description="Serve trigger.do's MCP tools (get_tasks, trigger_task, list_runs, "
        "get_run_details, wait_for_run_to_complete, cancel_run, ...) over stdio: on the "
        "embedded runtime (--tasks) or on a running server (--target).",
    )
    p.add_argument(
        "--tasks",
        default=None,
        metavar="MODULE",
        help="run the embedded runtime on these tasks (dotted module paths, comma-separated)",
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="with --tasks: the database file, created if missing (default: $TRIGGER_DO_DB, "
        "else .trigger-do/trigger.db here)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="with --tasks: worker processes (1)"
    )
    p.add_argument(
        "--target",
        default=None,
        metavar="URL",
        help="a trigger.do server instead (default: $TRIGGER_API_URL when no --tasks); the key "
        "is $TRIGGER_SECRET_KEY, else the one stored beside the database",
    )
    p.add_argument(
        "--readonly", action="store_true", help="offer only the tools that change nothing"
    )


async def run_mcp(args: argparse.Namespace) -> int:
    try:
        from mcp.server.stdio import stdio_server

        from ..mcp.backend import Api
        from ..mcp.server import build_server
    except ImportError as exc:
        raise TriggerDoError(
            f"`trigger-do mcp` needs the mcp extra: pip install 'trigger-do[mcp]' ({exc})"
        ) from None
    target = args.target or (None if args.tasks else os.environ.get("TRIGGER_API_URL"))
    if target and args.tasks:
        raise TriggerDoError("give --tasks (the embedded runtime) or --target (a server), not both")
    if not target and not args.tasks:
        raise TriggerDoError(
            "give --tasks MODULE (run the embedded runtime) or --target URL (a running server)"
        )
    runtime: Any = None
    if target:
        api = Api.over_http(target, _key(args))
    else:
        runtime, api = _embedded(args)
    server = build_server(api, readonly=args.readonly)
    loop = asyncio.get_running_loop()
    serving = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: serving.cancel() if serving else None)
    try:
        # stdout is the protocol's: while serving, fd 1 is stderr for everything else (the
        # workers started below inherit that, so a task's print() cannot corrupt the wire)
        async with stdio_server() as (read, write):
            if runtime is not None:
                await runtime.start()
            await server.run(read, write, server.create_initialization_options())
    except asyncio.CancelledError:
        pass
    finally:
        if runtime is not None:
            await runtime.stop()
        await api.aclose()
    return 0


def _key(args: argparse.Namespace) -> str:
    from ..api.keys import KEY_FILE
    from ..platform.local.platform import default_db_path

    key = os.environ.get("TRIGGER_SECRET_KEY")
    if not key:  # the key a server on this folder's database stored
        stored = Path(args.db or default_db_path()).parent / KEY_FILE
        with contextlib.suppress(OSError):
            key = stored.read_text().strip()
    return key or ""


def _embedded(args: argparse.Namespace) -> tuple[Any, Any]:
    """The runtime (not started yet) and the API app on its engine, called in process."""
    import sqlite3

    from ..api.app import create_app
    from ..api.keys import load_or_create_key
    from ..mcp.backend import Api
    from ..platform.local.runtime import LocalRuntime, module_names
    from .dev import _import_tasks

    modules = module_names(args.tasks)
    if not modules:
        raise TriggerDoError("--tasks names no module")
    _import_tasks(modules)  # here too: the API validates payloads against their schemas
    try:
        runtime = LocalRuntime(",".join(modules), args.db, workers=args.workers)
    except (OSError, sqlite3.Error) as exc:
        where = args.db or os.environ.get("TRIGGER_DO_DB") or ".trigger-do/trigger.db"
        raise TriggerDoError(f"cannot open the database {where}: {exc}") from None
    key = load_or_create_key(runtime.db_path)
    return runtime, Api.in_process(create_app(runtime.engine, key), key)
