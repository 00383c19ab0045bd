"""1,000,000 runs queued, then drained: `python -m load.million [--runs N] [--chunk C]`.

Two phases on the embedded runtime (a fresh SQLite file unless `--db`):

1. queue: with no worker running, the producer (this process, the runtime's engine)
   triggers N `load-noop` runs in `batch_trigger` calls of `--chunk` items. Reports the
   producer's time, its RSS (now and peak) and the database's size (file + WAL) with
   everything queued.
2. drain: the workers start (`--workers`, 2) and empty the queue. Every `--sample`
   seconds it notes the runs finished and each worker's RSS, so the report shows whether
   a worker's memory stays flat with a million runs waiting behind it; the drain time runs
   from the workers' start to the last run finished.

Then the checks of every load figure: 0 lost (every run COMPLETED), 0 duplicate
completions (the tasks' execution trace). Exit status 0 when both held, 1 otherwise.
Long (minutes) and heavy on disk, so it is not a test and CI never runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .drivers import proc_status_kib
from .measure import trace_counts
from .report import machine
from .tasks import TRACE_ENV


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load.million",
        description="Queue N noop runs with no worker running, then drain them with workers.",
    )
    p.add_argument("--runs", type=int, default=1_000_000, help="runs to queue (1,000,000)")
    p.add_argument("--chunk", type=int, default=10_000, help="items per batch_trigger (10,000)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for the drain (2)")
    p.add_argument("--db", help="keep the database here (default: a temporary folder)")
    p.add_argument("--sample", type=float, default=1.0, help="seconds between samples (1)")
    p.add_argument("--stall", type=float, default=120.0, help="give up after S s of no progress")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    return p


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from trigger_do.platform.local.runtime import LocalRuntime
    from trigger_do.producer.producer import TriggerRequest

    tmp = Path(tempfile.mkdtemp(prefix="trigger-do-million-"))
    db = Path(args.db) if args.db else tmp / "million.db"
    trace = tmp / "trace"
    trace.mkdir()
    runtime = LocalRuntime("load.tasks", db, workers=args.workers, env={TRACE_ENV: str(trace)})
    engine = runtime.engine
    me = os.getpid()
    try:
        # --- phase 1: queue, no worker running ---------------------------------------------
        rss_before = proc_status_kib(me, "VmRSS")
        queued = 0
        producer_rss: list[tuple[int, float | None]] = []
        t0 = time.monotonic()
        while queued < args.runs:
            n = min(args.chunk, args.runs - queued)
            done = await engine.batch_trigger([TriggerRequest("load-noop", None)] * n)
            queued += len(done.runs)
            del done
            if queued % (args.chunk * 10) == 0 or queued == args.runs:
                producer_rss.append((queued, mib(proc_status_kib(me, "VmRSS"))))
                print(f"queued {queued:,} ({queued / (time.monotonic() - t0):,.0f}/s)", flush=True)
        producer_s = time.monotonic() - t0
        state_rows = runtime.sql.exec("SELECT state, count(*) FROM runs GROUP BY state")
        waiting = {str(s): int(c) for s, c in state_rows}
        queue_rows = int(runtime.sql.exec("SELECT count(*) FROM queue_messages")[0][0])
        size_queued = db_bytes(db)
        producer_peak = proc_status_kib(me, "VmHWM")

        # --- phase 2: drain -----------------------------------------------------------------
        samples: list[dict[str, Any]] = []
        t1 = time.monotonic()
        await runtime.start()
        started_s = time.monotonic() - t1
        last, last_change = -1, time.monotonic()
        while True:
            await asyncio.sleep(args.sample)
            finished = int(
                runtime.sql.exec("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL")[0][0]
            )
            now = time.monotonic()
            samples.append(
                {
                    "t": round(now - t1, 2),
                    "finished": finished,
                    "worker_rss_mib": [mib(proc_status_kib(p.pid, "VmRSS")) for p in runtime.procs],
                }
            )
            if finished != last:
                last, last_change = finished, now
                if len(samples) % 10 == 0:
                    s = samples[-1]
                    print(
                        f"{s['t']:7.1f} s: {finished:,} finished, "
                        f"workers {s['worker_rss_mib']} MiB",
                        flush=True,
                    )
            if finished >= queued or now - last_change > args.stall:
                break
        drain_s = time.monotonic() - t1
        worker_peaks = [mib(proc_status_kib(p.pid, "VmHWM")) for p in runtime.procs]
        size_drained = db_bytes(db)
        await runtime.stop()
        states = {
            str(s): int(c)
            for s, c in runtime.sql.exec("SELECT state, count(*) FROM runs GROUP BY state")
        }
        lines: list[str] = []
        for f in sorted(trace.glob("*.tsv")):
            lines += f.read_text(encoding="utf-8").splitlines()
        executions = trace_counts(lines)
        duplicates = sum(1 for n in executions.values() if n > 1)
    finally:
        if runtime.procs:
            await runtime.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # worker RSS over the drain: the first tenth (warming up) against the rest
    flat = [s for s in samples if s["finished"] >= queued * 0.1]
    per_worker = list(zip(*(s["worker_rss_mib"] for s in flat), strict=False)) if flat else []
    return {
        "command": "python -m load.million " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "runs": args.runs,
        "chunk": args.chunk,
        "workers": args.workers,
        "queue": {
            "producer_seconds": round(producer_s, 2),
            "runs_per_s": round(queued / producer_s, 1),
            "producer_rss_mib_before": mib(rss_before),
            "producer_rss_mib": producer_rss,
            "producer_peak_mib": mib(producer_peak),
            "states": waiting,
            "queue_messages": queue_rows,
            "db_mib": round(size_queued / 2**20, 1),
            "db_bytes_per_run": round(size_queued / max(queued, 1), 1),
        },
        "drain": {
            "workers_ready_seconds": round(started_s, 2),
            "seconds": round(drain_s, 2),
            "runs_per_s": round(last / drain_s, 1),
            "runs_per_s_once_ready": round(last / max(drain_s - started_s, 1e-9), 1),
            "worker_peak_mib": worker_peaks,
            "worker_rss_after_first_tenth_mib": [
                {"min": min(v), "max": max(v)} for v in per_worker if None not in v
            ],
            "db_mib": round(size_drained / 2**20, 1),
            "samples": samples,
        },
        "states": states,
        "lost": queued - states.get("completed", 0),
        "duplicates": duplicates,
        "completed_without_execution": max(0, states.get("completed", 0) - len(executions)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.runs < 1 or args.chunk < 1:
        print("python -m load.million: --runs and --chunk must be at least 1", file=sys.stderr)
        return 2
    report = asyncio.run(measure(args))
    q, d = report["queue"], report["drain"]
    print(
        f"queued {report['runs']:,} in {q['producer_seconds']} s ({q['runs_per_s']:,.0f}/s); "
        f"producer RSS {q['producer_rss_mib_before']} -> peak {q['producer_peak_mib']} MiB; "
        f"database {q['db_mib']} MiB ({q['db_bytes_per_run']} B/run)"
    )
    print(
        f"drained in {d['seconds']} s ({d['runs_per_s']:,.0f}/s) by {report['workers']} workers; "
        f"worker RSS after the first tenth {d['worker_rss_after_first_tenth_mib']}, peak "
        f"{d['worker_peak_mib']} MiB; database after {d['db_mib']} MiB"
    )
    ok = report["lost"] == 0 and report["duplicates"] == 0
    print(
        f"{'checks passed' if ok else 'CHECKS FAILED'}: {report['lost']} lost, "
        f"{report['duplicates']} duplicates; states {report['states']}"
    )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
