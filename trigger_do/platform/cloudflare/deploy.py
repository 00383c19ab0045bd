"""`trigger-do init` and `trigger-do deploy [--dry-run]` for Cloudflare.

`init_project(path)` writes a `wrangler.toml` (and, if missing, `src/worker.py`, the Worker
module that imports the user's tasks and re-exports the entry points) into a project.
`deploy(dry_run)` checks the `wrangler.toml` in the current directory, then runs
`pywrangler deploy` (workers-py); with `dry_run` it only checks (no account needed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

COMPATIBILITY_DATE = "2026-11-01"
# The Python Workers runtime trigger.do targets: Pyodide 314 (CPython 3.14). workerd picks
# the bundle from the flags: `python_workers` implies `python_workers_314` from this date on
# (workerd 1.20261117: Pyodide 314.0.6); before it, Pyodide 0.28 (Python 3.13).
PYODIDE_314_DATE = "2026-09-08"
QUEUE = "trigger-do-runs"
DLQ = "trigger-do-runs-dlq"
# binding -> Durable Object class (entry.py); every one a SQLite-backed class
DURABLE_OBJECTS = {
    "RUN_INDEX": "RunIndex",
    "RUN": "Run",
    "REGISTRY": "Registry",
    "COORDINATOR": "Coordinator",
    "SCHEDULER": "Scheduler",
    "EVENTS": "Events",
    "WAITPOINTS": "Waitpoints",
}

WRANGLER_TOML = f"""\
# trigger.do on Cloudflare: a Python Worker (HTTP API + run-queue consumer + cron), SQLite
# Durable Objects (run index shards, runs, task registry, coordinators, the scheduler, the
# event store), a Queue and an R2 bucket. Before the first deploy:
#   npx wrangler login
#   npx wrangler queues create {QUEUE}
#   npx wrangler queues create {DLQ}
#   npx wrangler r2 bucket create {{name}}-packets
#   npx wrangler secret put TRIGGER_SECRET_KEY
# then: trigger-do deploy
name = "{{name}}"
main = "{{main}}"
compatibility_date = "{COMPATIBILITY_DATE}"
compatibility_flags = ["python_workers"]

[limits]
cpu_ms = 300000  # 5 min of CPU per consumer invocation (the maximum; default 30 s)

[vars]
TRIGGER_DO_INDEX_SHARDS = "16"  # run index shards; never lower it once runs exist
TRIGGER_DO_SLICE_SECONDS = "600"  # a delivery's time slice (consumer wall limit: 15 min)
TRIGGER_DO_DLQ = "{DLQ}"

[[queues.producers]]
binding = "RUN_QUEUE"
queue = "{QUEUE}"

[[queues.consumers]]
queue = "{QUEUE}"
max_batch_size = 100        # Cloudflare's maximum
max_batch_timeout = 1       # seconds to fill a batch
max_retries = 3             # deliveries that may die before the dead-letter queue
dead_letter_queue = "{DLQ}"
max_concurrency = 20        # concurrent consumer invocations

[[queues.consumers]]
queue = "{DLQ}"             # dead letters end their runs CRASHED
max_batch_size = 100
max_batch_timeout = 5

[[r2_buckets]]
binding = "PACKETS"         # payloads and outputs over 512 KiB
bucket_name = "{{name}}-packets"

[[durable_objects.bindings]]
name = "RUN_INDEX"
class_name = "RunIndex"

[[durable_objects.bindings]]
name = "RUN"
class_name = "Run"

[[durable_objects.bindings]]
name = "REGISTRY"
class_name = "Registry"

[[durable_objects.bindings]]
name = "COORDINATOR"
class_name = "Coordinator"

[[durable_objects.bindings]]
name = "SCHEDULER"
class_name = "Scheduler"

[[durable_objects.bindings]]
name = "EVENTS"
class_name = "Events"

[[durable_objects.bindings]]
name = "WAITPOINTS"
class_name = "Waitpoints"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["RunIndex", "Run", "Registry", "Coordinator"]

[[migrations]]
tag = "v2"                  # schedules: one Durable Object, its alarm at the next due instant
new_sqlite_classes = ["Scheduler"]

[[migrations]]
tag = "v3"                  # events and webhook deliveries: one Durable Object, the event store
new_sqlite_classes = ["Events"]

[[migrations]]
tag = "v4"                  # wait tokens: one Durable Object per shard, alarms for timeouts
new_sqlite_classes = ["Waitpoints"]

[triggers]
crons = ["* * * * *"]       # heartbeat: housekeeping, task registration, declarative schedules
"""

WORKER_PY = '''\
"""The Cloudflare Worker: your tasks plus trigger.do's entry points.

This folder is the Worker's module root: only files under it are uploaded (plus
`python_modules/`, which `pywrangler deploy` fills from pyproject.toml's dependencies,
trigger-do among them), so keep the tasks module here.
"""

import {tasks}  # noqa: F401  (registers the tasks)

from trigger_do.platform.cloudflare.entry import (  # noqa: F401
    Coordinator,
    Default,
    Events,
    Registry,
    Run,
    RunIndex,
    Scheduler,
    Waitpoints,
)
'''


def render(name: str, main: str = "src/worker.py") -> str:
    return WRANGLER_TOML.replace("{name}", name).replace("{main}", main)


def init_project(path: Path, *, tasks: str = "tasks") -> Path:
    """Write `path/wrangler.toml` (refusing to overwrite one) and `path/src/worker.py` (if
    missing). Returns the wrangler.toml path."""
    path = Path(path)
    target = path / "wrangler.toml"
    if target.exists():
        raise FileExistsError(f"{target} exists; remove it or edit it by hand")
    name = "".join(c if c.isalnum() else "-" for c in path.resolve().name.lower()).strip("-")
    path.mkdir(parents=True, exist_ok=True)
    target.write_text(render(name or "trigger-do"))
    worker = path / "src" / "worker.py"
    if not worker.exists():
        worker.parent.mkdir(parents=True, exist_ok=True)
        worker.write_text(WORKER_PY.format(tasks=tasks))
    return target


def check_config(path: Path) -> list[str]:
    """Problems that would make the deployed Worker misbehave (empty: none)."""
    try:
        config: dict[str, Any] = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return [f"cannot read {path}: {exc}"]
    problems: list[str] = []
    if "python_workers" not in config.get("compatibility_flags", []):
        problems.append('compatibility_flags must include "python_workers"')
    flags = [str(f) for f in config.get("compatibility_flags", [])]
    date = str(config.get("compatibility_date", ""))
    if "no_python_workers_314" in flags or (
        date < PYODIDE_314_DATE and "python_workers_314" not in flags
    ):
        problems.append(
            f"compatibility_date {date!r} selects an older Python runtime: trigger.do targets "
            f"Pyodide 314 (Python 3.14), a date of {PYODIDE_314_DATE} or later or the flag "
            '"python_workers_314"'
        )
    main = Path(path).parent / str(config.get("main", ""))
    if not config.get("main") or not main.is_file():
        problems.append(f"main {config.get('main')!r} is not a file")
    else:
        text = main.read_text()
        for cls in ("Default", *DURABLE_OBJECTS.values()):
            if cls not in text:
                problems.append(f"{main.name} does not export {cls}")
    queues = config.get("queues", {})
    producers = {p.get("binding"): p.get("queue") for p in queues.get("producers", [])}
    if "RUN_QUEUE" not in producers:
        problems.append("no queue producer binding RUN_QUEUE")
    consumers = {c.get("queue"): c for c in queues.get("consumers", [])}
    run_consumer = consumers.get(producers.get("RUN_QUEUE"))
    if run_consumer is None:
        problems.append("the run queue has no consumer")
    else:
        if int(run_consumer.get("max_batch_size", 10)) > 100:
            problems.append("max_batch_size is at most 100")
        dlq = run_consumer.get("dead_letter_queue")
        if not dlq:
            problems.append("the run queue's consumer needs a dead_letter_queue")
        elif dlq not in consumers:
            problems.append(f"the dead-letter queue {dlq} has no consumer (runs never crash)")
    bindings = {
        b.get("name"): b.get("class_name")
        for b in config.get("durable_objects", {}).get("bindings", [])
    }
    migrations = config.get("migrations", [])
    sqlite = {c for m in migrations for c in m.get("new_sqlite_classes", [])}
    tags = [m.get("tag") for m in migrations]
    if len(set(tags)) != len(tags):
        problems.append("each [[migrations]] step needs its own tag")
    for name, cls in DURABLE_OBJECTS.items():
        if bindings.get(name) != cls:
            problems.append(f"durable object binding {name} must use class {cls}")
        if cls not in sqlite:
            problems.append(f"{cls} must be in a migration's new_sqlite_classes")
    if not any(b.get("binding") == "PACKETS" for b in config.get("r2_buckets", [])):
        problems.append("no R2 bucket binding PACKETS")
    if not config.get("triggers", {}).get("crons"):
        problems.append("no cron trigger (housekeeping would never run)")
    if "TRIGGER_SECRET_KEY" in config.get("vars", {}):
        problems.append("TRIGGER_SECRET_KEY belongs in a secret (wrangler secret put), not vars")
    return problems


def deploy(dry_run: bool) -> int:
    """Check ./wrangler.toml; then (unless `dry_run`) run `pywrangler deploy`. Exit code."""
    config = Path.cwd() / "wrangler.toml"
    if not config.exists():
        print("no wrangler.toml here: run `trigger-do init` first", file=sys.stderr)
        return 2
    problems = check_config(config)
    for p in problems:
        print(f"wrangler.toml: {p}", file=sys.stderr)
    if problems:
        return 1
    if dry_run:
        print("wrangler.toml is valid for trigger.do (dry run: nothing deployed)")
        return 0
    tool = shutil.which("pywrangler")
    cmd = [tool, "deploy"] if tool else None
    if cmd is None and shutil.which("uvx"):
        cmd = ["uvx", "--from", "workers-py", "pywrangler", "deploy"]
    if cmd is None:
        print("pywrangler not found: `pip install workers-py` (or install uv)", file=sys.stderr)
        return 127
    return subprocess.run(cmd, cwd=config.parent).returncode
