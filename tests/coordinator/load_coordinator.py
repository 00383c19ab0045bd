"""Coordinator load scenarios (a script, not a test):

    python -m tests.coordinator.load_coordinator throughput [--runs 20000] [--workers 3]
    python -m tests.coordinator.load_coordinator fairness [--big 10000] [--small 20x10]

`throughput`: noop runs/s end to end, 50 keys of limit 10 against the same load with no
limits, side by side in one run (alternating, on fresh databases), and their ratio.
`fairness`: one key with a big backlog and 20 small keys (limit 5 per key): the small
keys' p50/p95 wait (trigger to finish) against the time the big backlog takes.
Figures come from the runs' own timestamps in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trigger_do  # noqa: E402
from tests.coordinator import coord_tasks as t  # noqa: E402
from tests.coordinator.util import prepare_db, rows  # noqa: E402

MODULE = "tests.coordinator.coord_tasks"


async def _one(task: trigger_do.Task[None], items: list[dict[str, str]], workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "load.db"
        prepare_db(db)
        async with trigger_do.local(MODULE, db=db, workers=workers) as rt:
            start = time.time()
            batch = await task.batch_trigger(items)
            await batch.results(timeout=600)
            ((first, last, n),) = rt.sql.exec(
                "SELECT min(created_at), max(finished_at), count(*) FROM runs"
            )
            assert n == len(items)
            ((deliveries,),) = rt.sql.exec("SELECT count(*) FROM test_deliveries")
            ((parks,),) = rt.sql.exec("SELECT count(*) FROM test_parks")
        elapsed = last - min(first, start)
        print(
            f"  {task.id:18} {len(items)} runs in {elapsed:6.2f}s = {len(items) / elapsed:7.0f}"
            f" runs/s, {deliveries / len(items):.2f} deliveries/run, {parks / len(items):.2f}"
            " parked/run",
            flush=True,
        )
        return len(items) / elapsed


async def throughput(runs: int, workers: int, rounds: int) -> None:
    keyed = [{"k": f"key-{i % 50}"} for i in range(runs)]
    plain = [{"k": f"key-{i % 50}"} for i in range(runs)]
    limited: list[float] = []
    free: list[float] = []
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}", flush=True)
        free.append(await _one(t.coord_noop, plain, workers))
        limited.append(await _one(t.coord_noop_keyed, keyed, workers))
    lim, unl = max(limited), max(free)
    print(
        f"noop runs/s, best of {rounds}: 50 keys x limit 10: {lim:.0f}; no limits: {unl:.0f}; "
        f"ratio {lim / unl:.2f} (overhead {100 * (1 - lim / unl):.0f}%)"
    )


async def fairness(big: int, small_keys: int, per_key: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fair.db"
        prepare_db(db)
        async with trigger_do.local(MODULE, db=db, workers=workers):
            b = await t.coord_fair.batch_trigger([{"org": "big", "sleep": 0.005}] * big)
            s = await t.coord_fair.batch_trigger(
                [
                    {"org": f"small-{i % small_keys}", "sleep": 0.005}
                    for i in range(small_keys * per_key)
                ]
            )
            await s.results(timeout=1200)
            await b.results(timeout=3600)
        waits = rows(
            db,
            "SELECT concurrency_key, finished_at - created_at, started_at - created_at "
            "FROM runs WHERE task = 'coord-fair'",
        )
    small = sorted(w for k, w, _ in waits if k != "big")
    small_start = sorted(w for k, _, w in waits if k != "big")
    big_done = max(w for k, w, _ in waits if k == "big")
    p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    print(
        f"big key: {big} runs done after {big_done:.1f}s; small keys ({small_keys}x{per_key}): "
        f"wait to finish p50 {p(small, 0.5):.2f}s p95 {p(small, 0.95):.2f}s max {small[-1]:.2f}s; "
        f"wait to start p95 {p(small_start, 0.95):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["throughput", "fairness"])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--big", type=int, default=10000)
    parser.add_argument("--small", default="20x10")
    args = parser.parse_args()
    if args.scenario == "throughput":
        asyncio.run(throughput(args.runs, args.workers, args.rounds))
    else:
        keys, per = (int(x) for x in args.small.split("x"))
        asyncio.run(fairness(args.big, keys, per, args.workers))


if __name__ == "__main__":
    main()
