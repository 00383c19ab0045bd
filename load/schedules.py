"""`python -m load schedules --count 10000`: N imperative schedules all due at the same
instant, on the embedded runtime (its supervisor fires the scheduler's timer); every one
must fire exactly once. Reports how long the fan-out takes: from the instant to the last run
created (triggered through the producer), and to the last run completed.

The schedules are created through the engine (`Engine.schedules.create`, as the API and the
SDK do), each with a cron naming one minute of the day (UTC) far enough ahead for the
creation to finish first."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trigger_do


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load schedules",
        description="N imperative schedules due in the same minute: each fires once; how "
        "long the fan-out takes.",
    )
    p.add_argument("--count", type=int, default=10_000, help="schedules (default 10,000)")
    p.add_argument("--workers", type=int, default=2, help="embedded worker processes (2)")
    p.add_argument("--db", help="keep the database here (default: a temp folder)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after (600 s)")
    return p


def _minute_cron(instant: float) -> str:
    when = datetime.fromtimestamp(instant, UTC)
    return f"{when.minute} {when.hour} * * *"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(args.db).parent if args.db else Path(tempfile.mkdtemp(prefix="load-sched-"))
    db = Path(args.db) if args.db else folder / "t.db"
    async with trigger_do.local(tasks="load.schedule_tasks", db=db, workers=args.workers) as rt:
        engine, sql = rt.engine, rt.sql
        # measure creation on a few, then aim at a minute the creation finishes before
        started = time.monotonic()
        probe = [
            await engine.schedules.create("load-tick", "0 0 1 1 *", f"probe-{i}") for i in range(50)
        ]
        per = (time.monotonic() - started) / len(probe)
        for p in probe:
            await engine.schedules.delete(p["id"])
        ahead = per * args.count * 1.5 + 20
        instant = (int(time.time() + ahead) // 60 + 1) * 60.0
        cron = _minute_cron(instant)
        created_at = time.monotonic()
        ids = []
        for i in range(args.count):
            made = await engine.schedules.create("load-tick", cron, f"load-{i}")
            ids.append(made["id"])
        creation = time.monotonic() - created_at
        assert time.time() < instant, "creation ran past the instant: raise the margin"
        print(
            f"{args.count} schedules created in {creation:.1f} s "
            f"({args.count / creation:,.0f}/s); all due at "
            f"{datetime.fromtimestamp(instant, UTC):%H:%M:%S} UTC, "
            f"in {instant - time.time():.0f} s",
            file=sys.stderr,
        )
        deadline = time.monotonic() + (instant - time.time()) + args.timeout
        where = "task = 'load-tick'"
        while True:
            done = sql.exec(f"SELECT count(*) FROM runs WHERE {where} AND state = 'completed'")
            if int(done[0][0]) >= args.count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # a late duplicate would show up now
        rows = sql.exec(
            f"SELECT options->>'$.schedule.id', json_extract(payload, '$.timestamp'), "
            f"created_at, finished_at, state FROM runs WHERE {where}"
        )
        next_at = sql.exec(
            "SELECT min(next_at), max(next_at) FROM schedules WHERE task = 'load-tick'"
        )[0]
    if not args.db:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    per_schedule: dict[str, int] = {}
    for sid, *_ in rows:
        per_schedule[sid] = per_schedule.get(sid, 0) + 1
    created = sorted(float(r[2]) for r in rows)
    finished = sorted(float(r[3]) for r in rows if r[3] is not None)
    stamp = datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "scenario": "schedules",
        "count": args.count,
        "workers": args.workers,
        "creation_seconds": round(creation, 2),
        "runs": len(rows),
        "fired_once": sum(1 for sid in ids if per_schedule.get(sid) == 1),
        "duplicates": sum(n - 1 for n in per_schedule.values() if n > 1),
        "missing": sum(1 for sid in ids if sid not in per_schedule),
        "nominal_instants_right": all(r[1] == stamp for r in rows),
        "completed": sum(1 for r in rows if r[4] == "completed"),
        "first_run_created_after": round(created[0] - instant, 3) if created else None,
        "fanout_seconds": round(created[-1] - instant, 3) if created else None,
        "all_completed_after": round(finished[-1] - instant, 3) if finished else None,
        "next_instants_a_day_later": next_at[0] == next_at[1] == instant + 86400,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.count < 1:
        print("python -m load schedules: --count must be at least 1", file=sys.stderr)
        return 2
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    ok = report["fired_once"] == args.count and report["duplicates"] == 0
    return 0 if ok and report["completed"] == args.count else 1
