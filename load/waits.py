"""`python -m load waits --count 10000 --wait 10`: on the embedded runtime,

1. N runs triggered in one batch, each waiting `--wait` seconds: while they wait, sample the
   workers' RSS and how many runs a worker holds (RUNNING) or has queued for it; then how
   late each run finished after its wait's due time (p50, p99, max);
2. N parents triggered in one batch, each awaiting one child (`trigger_and_wait`): how long
   until every parent completed, as parents per second.

Both on one database file with `--workers` worker processes (the supervisor fires the
waits' timers 5 times a second)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trigger_do
from trigger_do import BatchItem


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load waits",
        description="N runs waiting at once hold no worker; their lateness; then N parents "
        "each awaiting one child.",
    )
    p.add_argument("--count", type=int, default=10_000, help="runs and parents (10,000)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds each run waits (10)")
    p.add_argument("--workers", type=int, default=2, help="embedded worker processes (2)")
    p.add_argument("--skip-children", action="store_true", help="only the waits part")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after (600 s)")
    return p


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _waits(rt: Any, args: argparse.Namespace) -> dict[str, Any]:
    from load.wait_tasks import load_wait

    sql = rt.sql
    rss_before = round(sum(_rss_mb(p.pid) for p in rt.procs), 1)
    started = time.monotonic()
    batch = await load_wait.batch_trigger(
        [BatchItem({"wait": args.wait, "i": i}) for i in range(args.count)]
    )
    triggered = time.monotonic() - started
    samples: list[dict[str, float]] = []
    deadline = time.monotonic() + args.timeout
    all_waiting_after = None
    while time.monotonic() < deadline:
        states = dict(
            sql.exec("SELECT state, count(*) FROM runs WHERE task = 'load-wait' GROUP BY state")
        )
        if all_waiting_after is None and states.get("waiting", 0) == args.count:
            all_waiting_after = time.monotonic() - started
        if all_waiting_after is not None or states.get("waiting", 0) > 0:
            samples.append(
                {
                    "t": round(time.monotonic() - started, 2),
                    "waiting": states.get("waiting", 0),
                    "running": states.get("running", 0),
                    "queued": states.get("queued", 0),
                    "completed": states.get("completed", 0),
                    "messages": sql.exec("SELECT count(*) FROM queue_messages")[0][0],
                    "rss_mb": round(sum(_rss_mb(p.pid) for p in rt.procs), 1),
                }
            )
        if states.get("completed", 0) == args.count:
            break
        await asyncio.sleep(0.5)
    rows = sql.exec(
        "SELECT r.finished_at - w.due, r.state FROM runs r JOIN waitpoints w ON w.run_id = r.id "
        "WHERE r.task = 'load-wait' AND w.kind = 'timer'"
    )
    late = [float(r[0]) for r in rows if r[0] is not None]
    # every run waiting, from a second after the last suspended (its batch's messages acked)
    settled = (all_waiting_after or 0) + 1.0
    during = [s for s in samples if s["waiting"] == args.count and s["t"] >= settled]
    return {
        "runs": len(batch.runs),
        "batch_trigger_seconds": round(triggered, 2),
        "all_waiting_after": round(all_waiting_after, 2) if all_waiting_after else None,
        "completed": sum(1 for r in rows if r[1] == "completed"),
        "lateness_p50": round(statistics.median(late), 3) if late else None,
        "lateness_p99": round(_pct(late, 0.99), 3) if late else None,
        "lateness_max": round(max(late), 3) if late else None,
        "worker_rss_mb_before": rss_before,
        "while_all_waiting": {
            "samples": len(during),
            "running_max": max((s["running"] for s in during), default=None),
            "messages_max": max((s["messages"] for s in during), default=None),
            "worker_rss_mb": sorted({s["rss_mb"] for s in during})[:: max(1, len(during) // 5)],
        },
        "timeline": samples[:: max(1, len(samples) // 40)],
    }


async def _children(rt: Any, args: argparse.Namespace) -> dict[str, Any]:
    from load.wait_tasks import load_parent

    sql = rt.sql
    started = time.monotonic()
    await load_parent.batch_trigger(list(range(args.count)))
    deadline = time.monotonic() + args.timeout
    done = 0
    while time.monotonic() < deadline:
        done = int(
            sql.exec(
                "SELECT count(*) FROM runs WHERE task = 'load-parent' AND state = 'completed'"
            )[0][0]
        )
        if done == args.count:
            break
        await asyncio.sleep(0.2)
    took = time.monotonic() - started
    children = sql.exec("SELECT count(*) FROM runs WHERE task = 'load-child'")[0][0]
    right = sql.exec(
        "SELECT count(*) FROM runs WHERE task = 'load-parent' AND output = payload + 1"
    )[0][0]
    return {
        "parents": args.count,
        "completed": done,
        "children": children,
        "outputs_right": right,
        "seconds": round(took, 2),
        "parents_per_second": round(done / took, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="load-waits-"))
    async with trigger_do.local(
        tasks="load.wait_tasks", db=folder / "t.db", workers=args.workers
    ) as rt:
        report: dict[str, Any] = {"scenario": "waits", "workers": args.workers, "wait": args.wait}
        report["waits"] = await _waits(rt, args)
        if not args.skip_children:
            report["children"] = await _children(rt, args)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    report["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["machine"] = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    return report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.count < 1 or args.wait <= 5:
        why = "--count >= 1 and --wait > 5 (shorter waits sleep in place)"
        print(f"python -m load waits: {why}", file=sys.stderr)
        return 2
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    ok = report["waits"]["completed"] == args.count
    if "children" in report:
        ok = ok and report["children"]["completed"] == args.count
    return 0 if ok else 1
