"""`trigger`, `runs` and `dlq`: on a database, or on a server (`--target`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunFailedError, TriggerDoError
from .parser import EXIT_FAILED

if TYPE_CHECKING:
    from ..engine import Engine
    from ..sdk.handles import Client

from .parser import UsageError, _error

# --- where the run commands go: a database, or a server -----------------------------------


def _connect(args: argparse.Namespace, *, remote: bool = True) -> Client:
    """`--target` (a server), else `--db`, else `$TRIGGER_API_URL` (a server), else
    `$TRIGGER_DO_DB`, else `.trigger-do/trigger.db` here. A database must exist: these
    commands never create one."""
    import sqlite3

    from ..platform.local.platform import DEFAULT_DB
    from ..sdk.client import embedded_client

    target = getattr(args, "target", None) if remote else None
    if target:
        return _remote(target, args)
    env_url = os.environ.get("TRIGGER_API_URL") if remote else None
    if not args.db and env_url:
        return _remote(env_url, args)
    db, source = args.db, "--db"
    if not db and os.environ.get("TRIGGER_DO_DB"):
        db, source = os.environ["TRIGGER_DO_DB"], "$TRIGGER_DO_DB"
    path = Path(db) if db else Path.cwd() / DEFAULT_DB
    if not path.is_file():
        found = f"at {path} (from {source})" if db else f"in {Path.cwd()} (no {DEFAULT_DB})"
        how = "--db PATH or TRIGGER_DO_DB"
        if remote:
            how += ", or at a server with --target URL or TRIGGER_API_URL"
        raise TriggerDoError(
            f"no trigger.do database found {found}: run this in the folder where "
            f"`trigger-do dev` runs, or point at a database with {how}"
        )
    try:
        return embedded_client(path)
    except sqlite3.DatabaseError as exc:
        raise TriggerDoError(f"{path} is not a trigger.do database ({exc})") from None


def _remote(url: str, args: argparse.Namespace) -> Client:
    from ..api.keys import KEY_FILE
    from ..platform.local.platform import default_db_path
    from ..sdk.remote import RemoteClient

    key = os.environ.get("TRIGGER_SECRET_KEY")
    if not key:  # the key a server on this folder's database stored
        stored = Path(args.db or default_db_path()).parent / KEY_FILE
        with contextlib.suppress(OSError):
            key = stored.read_text().strip()
    return RemoteClient(url, key or "")


def _engine_of(client: Client) -> Engine | None:
    from ..sdk.client import EmbeddedClient

    return client.engine if isinstance(client, EmbeddedClient) else None


async def _api(client: Client, method: str, path: str, **kwargs: Any) -> Any:
    from ..sdk.remote import RemoteClient

    assert isinstance(client, RemoteClient)
    return await client._call(method, path, **kwargs)



async def _trigger(args: argparse.Namespace) -> int:
    if args.payload_arg is not None and args.payload is not None:
        raise UsageError("give the payload once: as PAYLOAD or with --payload")
    raw = args.payload_arg if args.payload_arg is not None else args.payload
    try:
        payload = json.loads(raw if raw is not None else "null")
    except json.JSONDecodeError as exc:
        raise TriggerDoError(f"the payload is not valid JSON: {exc}") from None
    options = {
        k: v
        for k, v in (
            ("idempotency_key", args.idempotency_key),
            ("delay", args.delay),
            ("tags", args.tag),
        )
        if v
    }
    client = _connect(args)
    engine = _engine_of(client)
    if engine is not None:  # validated here as the HTTP API would (a server validates itself)
        await _load_task(engine, args.task)
    handle = await client.trigger(args.task, payload, options)
    if not args.wait:
        print(handle.id)
        return 0
    print(handle.id, file=sys.stderr)
    from ..sdk.progress import wait_with_progress

    try:
        output = await wait_with_progress(handle, timeout=args.timeout)
    except TimeoutError as exc:
        raise TriggerDoError(f"{exc} (it goes on: trigger-do runs show {handle.id})") from None
    except RunFailedError as exc:
        _error(f"run {exc.run_id} {exc.state}: {_error_text(exc.error)}")
        return EXIT_FAILED
    print(json.dumps(output, indent=2, default=str))
    return 0


async def _load_task(engine: Engine, task_id: str) -> None:
    """Make `task_id`'s definition known here, so its payload is validated before anything
    is written: import the module the workers registered it from."""
    import importlib

    from ..errors import UnknownTaskError
    from ..platform.local.runtime import check_importable
    from ..task import find_task

    if find_task(task_id) is not None:
        return
    rows = await engine.registry.tasks()
    modules = {r["id"]: r["module"] for r in rows}
    if task_id not in modules:
        raise UnknownTaskError(task_id, sorted(modules))
    module = modules[task_id]
    try:
        check_importable(module)
        importlib.import_module(module)
    except Exception as exc:
        raise TriggerDoError(
            f"cannot validate the payload of task {task_id!r}: its module {module!r} does not "
            f"import here ({exc}); run this in the folder `trigger-do dev` runs in, or trigger "
            "through the server with --target URL"
        ) from None
    if find_task(task_id) is None:
        raise TriggerDoError(
            f"task {task_id!r} is registered from {module!r}, which does not define it any "
            "more: restart `trigger-do dev`"
        )


def _error_text(error: dict[str, Any] | None) -> str:
    error = error or {}
    name, message = error.get("name") or "", error.get("message") or ""
    return f"{name}: {message}" if name and message else name or message or "no error recorded"


# --- runs ---------------------------------------------------------------------------------


def _states(values: list[str] | None) -> list[str] | None:
    """`--status` values as the engine's states (lower case)."""
    from ..shared.states import RunState

    if not values:
        return None
    out: list[str] = []
    for v in values:
        if v.lower() in {s.value for s in RunState}:
            out.append(v.lower())
        elif found := RunState.from_api_status(v):
            out += [str(s) for s in found]
        else:
            known = sorted({s.api_status for s in RunState})
            raise TriggerDoError(f"unknown status {v!r} (one of {', '.join(known)})")
    return list(dict.fromkeys(out))


async def _runs(args: argparse.Namespace) -> int:
    states = _states(args.status) if args.runs_command == "list" else None
    client = _connect(args)
    if args.runs_command == "list":
        runs = await _list(client, args, states)
        if args.json:
            print(json.dumps(runs, indent=2, default=str))
            return 0
        _print_runs(runs)
        return 0
    if args.runs_command == "show":
        run = await _show(client, args.run_id)
        if args.json:
            print(json.dumps(run, indent=2, default=str))
        else:
            _print_run(run)
        return 0
    if args.runs_command == "cancel":
        if await client.cancel(args.run_id):
            print(f"canceled {args.run_id}")
            return 0
        row = await client.get_run(args.run_id)
        print(f"not canceled: run {args.run_id} is already {_api_status(row['state'])}")
        return EXIT_FAILED
    if args.runs_command == "logs":
        return await _logs(client, args.run_id, follow=args.follow)
    raise AssertionError(args.runs_command)


def _api_status(state: str) -> str:
    from ..shared.states import RunState

    return RunState(state).api_status


async def _show(client: Client, run_id: str) -> dict[str, Any]:
    """A run as the HTTP API returns it (GET /api/v3/runs/ID), from either side."""
    from urllib.parse import quote

    from ..api import shapes

    engine = _engine_of(client)
    if engine is not None:
        return shapes.retrieve(await engine.get_run(run_id), engine.now())
    run: dict[str, Any] = await _api(client, "GET", f"/api/v3/runs/{quote(run_id, safe='')}")
    return run


async def _list(
    client: Client, args: argparse.Namespace, states: list[str] | None
) -> list[dict[str, Any]]:
    """Newest first, each run as `_show` gives it."""
    from ..api import shapes

    engine = _engine_of(client)
    if engine is not None:
        rows = await engine.list_runs(
            limit=args.limit,
            tasks=args.task,
            states=states,
            tags=args.tag,
            schedule_id=getattr(args, "schedule", None),
        )
        ids = [r["id"] for r in rows]
        full = await engine.get_runs(ids)
        for r in rows:  # a run with checkpoints: read them, as `show` does
            if r.get("has_object") and r["id"] in full:
                full[r["id"]] = await engine.get_run(r["id"])
        return [shapes.retrieve(full[i], engine.now()) for i in ids if i in full]
    params: dict[str, Any] = {}
    if args.task:
        params["filter[taskIdentifier]"] = ",".join(args.task)
    if states:
        params["filter[status]"] = ",".join(dict.fromkeys(_api_status(s) for s in states))
    if args.tag:
        params["filter[tag]"] = ",".join(args.tag)
    if getattr(args, "schedule", None):
        params["filter[schedule]"] = args.schedule
    found: list[str] = []
    while len(found) < args.limit:
        params["page[size]"] = min(100, args.limit - len(found))
        page = await _api(client, "GET", "/api/v1/runs", params=params)
        found += [r["id"] for r in page["data"]]
        after = page.get("pagination", {}).get("next")
        if not after or not page["data"]:
            break
        params["page[after]"] = after
    gate = asyncio.Semaphore(8)

    async def one(run_id: str) -> dict[str, Any]:
        async with gate:
            return await _show(client, run_id)

    return list(await asyncio.gather(*(one(i) for i in found[: args.limit])))


def _print_runs(runs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=200)  # pipes: never truncate
    table = Table("id", "task", "status", "attempt", "created", "tags")
    for r in runs:
        table.add_row(
            r["id"],
            r["taskIdentifier"],
            r["status"],
            str(r.get("attemptCount", 0)),
            r["createdAt"],
            ",".join(r.get("tags") or []),
        )
    console.print(table)


def _print_run(run: dict[str, Any]) -> None:
    x = run.get("triggerDo") or {}
    print(f"{run['id']}  {run['taskIdentifier']}  {run['status']}  attempt {run['attemptCount']}")
    times = [
        f"{label} {run[key]}"
        for label, key in (
            ("created", "createdAt"),
            ("delayed until", "delayedUntil"),
            ("started", "startedAt"),
            ("finished", "finishedAt"),
        )
        if run.get(key)
    ]
    print("  ".join(times))
    if run.get("tags"):
        print(f"tags: {', '.join(run['tags'])}")
    if run.get("metadata"):
        print(f"metadata: {json.dumps(run['metadata'], default=str)}")
    if x.get("progress") is not None:
        print(f"progress: {x['progress']:.0%}")
    print(f"payload: {json.dumps(run.get('payload'), default=str)}")
    if "output" in run:
        print(f"output: {json.dumps(run['output'], default=str)}")
    if x.get("error"):
        print(f"error: {_error_text(x['error'])}")
    checkpoints = x.get("checkpoints") or []
    if checkpoints:
        print(f"checkpoints: {len(checkpoints)} (last: {checkpoints[-1].get('name')})")


async def _logs(client: Client, run_id: str, *, follow: bool) -> int:
    from ..sdk.handles import RunHandle

    handle = RunHandle(client, run_id)
    await client.get_run(run_id)  # an unknown run: a clear error
    async for rec in handle.logs(follow=follow):
        extras = " ".join(f"{k}={v}" for k, v in rec.extras.items())
        print(
            f"{rec.at:%H:%M:%S.%f} [{rec.level}] (attempt {rec.attempt}) {rec.message}"
            f"{' ' + extras if extras else ''}",
            flush=True,
        )
    if not follow:
        return 0
    status = await handle.status()
    line = f"run {run_id} {status.api_status} after {status.attempt} attempt(s)"
    if status.error:
        line += f": {_error_text(status.error)}"
    print(" ".join(line.split()), flush=True)
    return 0 if status.state == "completed" else EXIT_FAILED


def _when(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


# --- dead letters -------------------------------------------------------------------------


async def _dlq(args: argparse.Namespace) -> int:
    if args.dlq_command == "requeue" and not args.all and not args.run_id:
        raise UsageError("dlq requeue takes a run id or --all")
    engine = _engine_of(_connect(args, remote=False))
    assert engine is not None
    if args.dlq_command == "list":
        letters = await engine.dead_letters()
        if not letters:
            print("no dead letters")
        for d in letters:
            print(f"{d['run_id']}  {d['task']}  dead at {_when(d['dead_at'])}  ({d['reason']})")
        return 0
    revived = await engine.requeue_dead(None if args.all else [args.run_id])
    for rid in revived:
        print(f"requeued {rid}")
    if not revived:
        print("nothing requeued")
        return EXIT_FAILED
    return 0


