"""`trigger-do`: demo | dev | serve | trigger | runs | dlq | init | deploy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

from .errors import RunFailedError, TriggerDoError

EXIT_USAGE = 2


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        help="database file (default: $TRIGGER_DO_DB or .trigger-do/trigger.db)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger-do", description="Background jobs for Python (Trigger.dev's DX)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the seed's examples end to end on the embedded runtime")
    demo.add_argument("--workers", type=int, default=2)
    demo.add_argument("--batch", type=int, default=1000, help="items in the demo batch")

    for name, help_text in (
        ("dev", "run the embedded runtime, reloading task code on change"),
        ("serve", "run the embedded runtime (no reload)"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--tasks",
            required=True,
            help="dotted module path of your tasks (comma-separated for several)",
        )
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8787)
        _db_arg(p)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument(
            "--grace",
            type=float,
            default=None,
            help="graceful shutdown: seconds running attempts get to finish",
        )
        p.add_argument(
            "--slice",
            type=float,
            default=None,
            dest="slice_seconds",
            help="one delivery's time slice in seconds (long runs continue after)",
        )
        p.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="messages a worker takes at once (default 100)",
        )
        p.add_argument(
            "--batch-wait",
            type=float,
            default=None,
            help="seconds a short batch may wait to fill up (default 0)",
        )

    trig = sub.add_parser("trigger", help="trigger a task by id")
    trig.add_argument("task")
    trig.add_argument("--payload", default="null", help="the payload as JSON")
    trig.add_argument("--wait", action="store_true", help="wait and print the output")
    trig.add_argument("--timeout", type=float, default=None)
    trig.add_argument("--idempotency-key", default=None)
    trig.add_argument("--delay", default=None)
    trig.add_argument("--tag", action="append", default=None)
    _db_arg(trig)

    runs = sub.add_parser("runs", help="list, show, follow or cancel runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    ls = rsub.add_parser("list")
    ls.add_argument("--task", action="append")
    ls.add_argument(
        "--status",
        action="append",
        help="a state (completed, failed, ...) or API status (COMPLETED, ...)",
    )
    ls.add_argument("--tag", action="append")
    ls.add_argument("--limit", type=int, default=25)
    ls.add_argument("--json", action="store_true")
    _db_arg(ls)
    for name in ("show", "cancel"):
        p = rsub.add_parser(name)
        p.add_argument("run_id")
        _db_arg(p)
    logs = rsub.add_parser("logs")
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true")
    _db_arg(logs)

    dlq = sub.add_parser("dlq", help="dead letters: runs whose consumer died on every delivery")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True)
    _db_arg(dsub.add_parser("list"))
    rq = dsub.add_parser("requeue")
    rq.add_argument("run_id", nargs="?")
    rq.add_argument("--all", action="store_true")
    _db_arg(rq)

    init = sub.add_parser("init", help="write a wrangler.toml for Cloudflare into a project")
    init.add_argument("path", nargs="?", default=".")
    load = sub.add_parser(
        "load",
        help="load-test the embedded runtime or a server (see load/README.md)",
        add_help=False,
    )
    load.add_argument("load_args", nargs=argparse.REMAINDER)
    deploy = sub.add_parser("deploy", help="deploy to Cloudflare (pywrangler deploy)")
    deploy.add_argument("--dry-run", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["load"]:  # the load tool parses its own arguments
            return _load(argv[1:])
        return int(_dispatch(build_parser().parse_args(argv)) or 0)
    except TriggerDoError as exc:
        print(f"trigger-do: {exc}", file=sys.stderr)
        return EXIT_USAGE if not isinstance(exc, RunFailedError) else 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return asyncio.run(run_demo(workers=args.workers, batch=args.batch))
    if args.command in ("dev", "serve"):
        return asyncio.run(_serve(args, reload=args.command == "dev"))
    if args.command == "trigger":
        return asyncio.run(_trigger(args))
    if args.command == "runs":
        return asyncio.run(_runs(args))
    if args.command == "dlq":
        return asyncio.run(_dlq(args))
    if args.command in ("init", "deploy"):
        return _cloudflare(args)
    raise AssertionError(args.command)


# --- dev / serve --------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, *, reload: bool) -> int:
    from .platform.local.runtime import LocalRuntime

    given = {
        "shutdown_grace": args.grace,
        "slice_seconds": args.slice_seconds,
        "batch_size": args.batch_size,
        "batch_wait": args.batch_wait,
    }
    options = {k: v for k, v in given.items() if v is not None}
    runtime = LocalRuntime(args.tasks, args.db, workers=args.workers, **options)
    http = _http_server(runtime, args.host, args.port)
    await runtime.start()
    print(
        f"trigger.do {'dev' if reload else 'serve'}: {args.workers} worker(s) serving "
        f"{', '.join(runtime.modules)} from {runtime.db_path}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if http is not None:
        tasks.append(asyncio.ensure_future(http))
    if reload:
        tasks.append(asyncio.ensure_future(_reload_on_change(runtime)))
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
    return 0


def _http_server(runtime: Any, host: str, port: int) -> Any:
    """The HTTP API's server coroutine. The tasks are imported here too, so that the API
    validates payloads against their schemas before anything is written."""
    import importlib

    from .api.app import create_app
    from .api.keys import load_or_create_key
    from .api.server import check_port, serve_http
    from .platform.local.runtime import check_importable

    check_port(host, port)  # fail before any worker starts
    for module in runtime.modules:
        check_importable(module)
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise TriggerDoError(f"importing tasks module {module!r} failed: {exc!r}") from None
    key = load_or_create_key(runtime.db_path)
    print(f"trigger.do: API on http://{host}:{port} (secret key: {key})", flush=True)
    return serve_http(create_app(runtime.engine, key), host, port, handle_signals=False)


async def _reload_on_change(runtime: Any) -> None:
    import importlib

    from watchfiles import PythonFilter, awatch

    async for changes in awatch(Path.cwd(), watch_filter=PythonFilter()):
        names = ", ".join(sorted({Path(p).name for _, p in changes}))
        print(f"trigger.do: {names} changed; restarting workers", flush=True)
        for module in runtime.modules:  # the API validates against the new schemas
            with contextlib.suppress(Exception):
                importlib.reload(sys.modules[module])
        await runtime.restart_workers()


# --- trigger and runs ---------------------------------------------------------------------


def _engine(db: str | None) -> Any:
    from .sdk.client import embedded_client

    return embedded_client(db).engine


async def _trigger(args: argparse.Namespace) -> int:
    from .sdk.client import configure, current_client

    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise TriggerDoError(f"--payload is not valid JSON: {exc}") from None
    if args.db:
        configure(db=args.db)
    options = {
        k: v
        for k, v in (
            ("idempotency_key", args.idempotency_key),
            ("delay", args.delay),
            ("tags", args.tag),
        )
        if v
    }
    handle = await current_client().trigger(args.task, payload, options)
    if not args.wait:
        print(handle.id)
        return 0
    print(handle.id, file=sys.stderr)
    from .sdk.progress import wait_with_progress

    try:
        output = await wait_with_progress(handle, timeout=args.timeout)
    except TimeoutError as exc:
        raise TriggerDoError(f"{exc} (it goes on: trigger-do runs show {handle.id})") from None
    except RunFailedError as exc:
        print(
            f"run {exc.run_id} {exc.state}: {exc.error.get('name', '')}: "
            f"{exc.error.get('message', '')}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(output, indent=2, default=str))
    return 0


def _states(values: list[str] | None) -> list[str] | None:
    from .shared.states import RunState

    if not values:
        return None
    out: list[str] = []
    for v in values:
        if v.lower() in {s.value for s in RunState}:
            out.append(v.lower())
        elif found := RunState.from_api_status(v):
            out += [str(s) for s in found]
        else:
            raise TriggerDoError(f"unknown status {v!r}")
    return out


async def _runs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    engine = _engine(args.db)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # pipes: never truncate
    if args.runs_command == "list":
        rows = await engine.list_runs(
            limit=args.limit, tasks=args.task, states=_states(args.status), tags=args.tag
        )
        if args.json:
            print(json.dumps([_public(r) for r in rows], indent=2, default=str))
            return 0
        table = Table("id", "task", "state", "attempt", "created", "tags")
        for r in rows:
            table.add_row(
                r["id"],
                r["task"],
                r["state"],
                str(r["attempt"]),
                _when(r["created_at"]),
                ",".join(r["tags"]),
            )
        console.print(table)
        return 0
    if args.runs_command == "show":
        row = await engine.get_run(args.run_id)
        print(json.dumps(_public(row), indent=2, default=str))
        return 0
    if args.runs_command == "cancel":
        res = await engine.cancel(args.run_id)
        print("canceled" if res["canceled"] else f"not canceled: the run is {res['state']}")
        return 0 if res["canceled"] else 1
    if args.runs_command == "logs":
        from .sdk.client import EmbeddedClient
        from .sdk.handles import RunHandle

        handle = RunHandle(EmbeddedClient(engine), args.run_id)
        await engine.get_run(args.run_id, details=False)  # unknown run: a clear error
        async for rec in handle.logs(follow=args.follow):
            extras = " ".join(f"{k}={v}" for k, v in rec.extras.items())
            print(
                f"{rec.at:%H:%M:%S.%f} [{rec.level}] (attempt {rec.attempt}) {rec.message}"
                f"{' ' + extras if extras else ''}",
                flush=True,
            )
        return 0
    raise AssertionError(args.runs_command)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    from .shared.states import RunState

    out = {
        k: v
        for k, v in row.items()
        if k not in ("payload_packet", "output_packet", "options") and v is not None
    }
    out["status"] = RunState(row["state"]).api_status
    for k in ("created_at", "updated_at", "started_at", "finished_at", "delay_until", "expires_at"):
        if row.get(k) is not None:
            out[k] = _when(row[k])
    return out


def _when(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


async def _dlq(args: argparse.Namespace) -> int:
    engine = _engine(args.db)
    if args.dlq_command == "list":
        letters = await engine.dead_letters()
        if not letters:
            print("no dead letters")
        for d in letters:
            print(f"{d['run_id']}  {d['task']}  dead at {_when(d['dead_at'])}  ({d['reason']})")
        return 0
    if not args.all and not args.run_id:
        raise TriggerDoError("dlq requeue takes a run id or --all")
    revived = await engine.requeue_dead(None if args.all else [args.run_id])
    for rid in revived:
        print(f"requeued {rid}")
    if not revived:
        print("nothing requeued")
        return 1
    return 0


def _load(argv: list[str]) -> int:
    """The load tool lives in the repository's `load/` (run from its root, or beside it)."""
    import importlib

    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / "load" / "cli.py").exists():
            if str(root) not in sys.path:
                sys.path.append(str(root))
            module = importlib.import_module("load.cli")
            return int(module.main(argv))
    raise TriggerDoError("the load tool (load/) was not found: run from the repository root")


def _cloudflare(args: argparse.Namespace) -> int:
    try:
        from .platform.cloudflare import deploy as cf
    except ImportError:
        raise TriggerDoError("the Cloudflare platform is not installed in this build") from None
    if args.command == "init":
        path = cf.init_project(Path(args.path))
        print(f"wrote {path}")
        return 0
    return int(cf.deploy(dry_run=args.dry_run))


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
