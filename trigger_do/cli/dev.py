"""`trigger-do dev` and `serve`: the runtime, the HTTP API, and reloading on change."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TriggerDoError

if TYPE_CHECKING:
    from ..task import Task



async def _serve(args: argparse.Namespace, *, reload: bool) -> int:
    import sqlite3

    from ..api.server import check_port
    from ..platform.local.runtime import LocalRuntime, module_names

    modules = module_names(args.tasks)
    if not modules:
        raise TriggerDoError("--tasks names no module")
    # the tasks first (a bad --tasks is reported as such, whatever holds the port), then
    # the port, both before any worker starts
    files = _import_tasks(modules)
    check_port(args.host, args.port)
    given = {
        "shutdown_grace": args.grace,
        "slice_seconds": args.slice_seconds,
        "batch_size": args.batch_size,
        "batch_wait": args.batch_wait,
    }
    options = {k: v for k, v in given.items() if v is not None}
    try:
        runtime = LocalRuntime(",".join(modules), args.db, workers=args.workers, **options)
    except (OSError, sqlite3.Error) as exc:
        where = args.db or os.environ.get("TRIGGER_DO_DB") or ".trigger-do/trigger.db"
        raise TriggerDoError(f"cannot open the database {where}: {exc}") from None
    await runtime.start()
    print(
        f"trigger.do {'dev' if reload else 'serve'}: {args.workers} worker(s) serving "
        f"{', '.join(runtime.modules)} from {runtime.db_path}",
        flush=True,
    )
    http = _http_server(
        runtime,
        args.host,
        args.port,
        getattr(args, "metrics_public", False),
        getattr(args, "mcp_readonly", False),
    )
    _print_tasks()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    tasks.append(asyncio.ensure_future(http))
    if reload:
        tasks.append(asyncio.ensure_future(_reload_on_change(runtime, files)))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            error = None if t.cancelled() else t.exception()
            if error is not None:
                raise error
    finally:
        print("trigger.do: stopping (running attempts get the grace period)", flush=True)
        for t in tasks:
            t.cancel()
        await runtime.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # stopped: a second signal changes nothing
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    return 0


def _http_server(
    runtime: Any, host: str, port: int, metrics_public: bool = False, mcp_readonly: bool = False
) -> Any:
    """The HTTP API's server coroutine (the tasks are imported in this process already, so
    the API validates payloads against their schemas before anything is written)."""
    from ..api.app import create_app
    from ..api.keys import load_or_create_key
    from ..api.server import serve_http
    from ..dashboard.login import browser_base, login_url
    from ..waitpoints.service import record_api_url

    key = load_or_create_key(runtime.db_path)
    print(f"trigger.do: API on http://{host}:{port} (secret key: {key})", flush=True)
    record_api_url(runtime.db_path, f"http://{_reachable(host)}:{port}")  # for wait tokens
    api = create_app(runtime.engine, key, metrics_public=metrics_public)
    api.state.mcp_readonly = mcp_readonly  # /mcp: only the tools that change nothing
    link = login_url(api, browser_base(host, port), runtime.engine.now())
    print(f"trigger.do: dashboard on {link} (a one-time login link)", flush=True)
    return serve_http(StorageGuard(api, runtime), host, port, handle_signals=False)


def _reachable(host: str) -> str:
    """A host to reach a server listening on `host` from this machine."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class StorageGuard:
    """Refuses every request (503, with the cause) once the runtime no longer trusts its
    database (`LocalRuntime.storage_lost`): nothing is accepted into nothing."""

    def __init__(self, app: Any, runtime: Any) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        lost = self.runtime.storage_lost
        if lost is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        body = {"error": lost, "code": "storage_lost"}
        await JSONResponse(body, status_code=503)(scope, receive, send)


def _import_tasks(modules: list[str]) -> set[str]:
    """Import the tasks modules here (a clear error if one does not import); return the
    source files of the modules they imported: what `dev` watches."""
    import importlib

    from ..platform.local.runtime import check_importable

    before = set(sys.modules)
    for module in modules:
        check_importable(module)
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise TriggerDoError(
                f"importing tasks module {module!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    return _source_files((set(sys.modules) - before) | set(modules))


def _source_files(names: set[str]) -> set[str]:
    """The `.py` files of these modules that are the project's own code: not the standard
    library, not installed packages, not trigger.do."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    skip = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    if hasattr(site, "getsitepackages"):  # absent from some old virtualenvs
        skip |= set(site.getsitepackages())
    skip.add(site.getusersitepackages())
    skip.add(str(Path(__file__).resolve().parent))
    roots = [Path(os.path.realpath(p)) for p in skip if p]
    out: set[str] = set()
    for name in names:
        file = getattr(sys.modules.get(name), "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        real = Path(os.path.realpath(file))
        if not any(real.is_relative_to(root) for root in roots):
            out.add(str(real))
    return out


def _reimport(modules: list[str], files: set[str]) -> set[str]:
    """Import the tasks modules afresh, with every project module they imported (so a
    changed helper is seen too). On failure, the previous modules stay."""
    from ..task import _REGISTRY

    stale = {
        name: mod
        for name, mod in list(sys.modules.items())
        if os.path.realpath(getattr(mod, "__file__", None) or "") in files
    }
    registry = dict(_REGISTRY)
    for name in stale:
        del sys.modules[name]
    for task_id, t in registry.items():  # tasks deleted from the code disappear
        if t.module in stale:
            del _REGISTRY[task_id]
    try:
        return _import_tasks(modules)
    except BaseException:
        sys.modules.update(stale)
        _REGISTRY.clear()
        _REGISTRY.update(registry)
        raise


def _shown(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd().resolve()))
    return path


async def _reload_on_change(runtime: Any, files: set[str]) -> None:
    """Restart the workers when a source file of the tasks' modules changes (and only
    then: not a database file, not an unrelated file in the tree)."""
    from watchfiles import awatch

    while True:
        watched = set(files)
        if not watched:  # the tasks come from installed packages: nothing of ours to watch
            print("trigger.do: watching nothing (no project module among the tasks)", flush=True)
            await asyncio.Event().wait()
        names = sorted(_shown(f) for f in watched)
        more = f" and {len(names) - 8} more" if len(names) > 8 else ""
        print(
            f"trigger.do: watching {len(names)} file(s) for changes: {', '.join(names[:8])}{more}",
            flush=True,
        )
        folders = sorted({str(Path(f).parent) for f in watched})

        def imported(_change: Any, path: str, watched: set[str] = watched) -> bool:
            return os.path.realpath(path) in watched

        async for changes in awatch(*folders, watch_filter=imported, recursive=False):
            changed = ", ".join(sorted({_shown(os.path.realpath(p)) for _, p in changes}))
            try:
                files = _reimport(runtime.modules, watched)
            except TriggerDoError as exc:
                print(
                    f"trigger.do: {changed} changed, but the workers keep the previous code: "
                    f"{' '.join(str(exc).split())}",
                    flush=True,
                )
                continue
            print(f"trigger.do: {changed} changed; restarting workers", flush=True)
            await runtime.restart_workers()
            _print_tasks()
            break  # watch again: the tasks may import other modules now


def _print_tasks() -> None:
    """The tasks served: id, queue, limits, schedule."""
    from rich.console import Console
    from rich.table import Table

    from ..task import registered_tasks

    tasks = registered_tasks()
    if not tasks:
        print("trigger.do: the tasks modules declare no task (see `@task(id=...)`)", flush=True)
        return
    table = Table("task", "queue", "limits", "schedule", title=None, box=None, pad_edge=False)
    for task_id, t in sorted(tasks.items()):
        crons = getattr(t, "crons", None) or []  # a schedules.task's declared crons
        when = ", ".join(f"{c.expression} ({c.timezone})" for c in crons)
        table.add_row(task_id, t.queue_name, _limits(t) or "-", when)
    console = Console(highlight=False) if sys.stdout.isatty() else Console(width=200)
    console.print(table)
    sys.stdout.flush()


def _limits(t: Task[Any]) -> str:
    parts: list[str] = []
    if t.queue is not None and t.queue.concurrency_limit:
        parts.append(f"queue concurrency {t.queue.concurrency_limit}")
    if t.concurrency is not None:
        key = f" per {t.concurrency.key.source}" if t.concurrency.key else ""
        parts.append(f"concurrency {t.concurrency.limit}{key}")
    if t.rate_limit is not None:
        r = t.rate_limit
        key = f" per {r.key.source}" if r.key else ""
        parts.append(f"rate {r.limit} per {_duration(r.period)}{key}")
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


