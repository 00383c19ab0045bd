"""First end-to-end figure: noop runs/s from trigger to COMPLETED on the embedded runtime.

    python load/noop_throughput.py [--runs 20000] [--workers 2] [--repeat 3]

Prints each repetition and the median. (The full load tool arrives with the load issue.)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trigger_do  # noqa: E402
from examples import tasks as ex  # noqa: E402


async def once(runs: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        async with trigger_do.local(tasks=ex, db=Path(tmp) / "t.db", workers=workers):
            t0 = time.perf_counter()
            batch = await ex.noop.batch_trigger([None] * runs)
            accepted = time.perf_counter() - t0
            await batch.results(timeout=600)
            total = time.perf_counter() - t0
    return runs / accepted, runs / total


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = []
    for i in range(args.repeat):
        acc, e2e = await once(args.runs, args.workers)
        results.append((acc, e2e))
        print(f"run {i + 1}: accepted {acc:,.0f} runs/s, end to end {e2e:,.0f} runs/s")
    print(f"median: accepted {statistics.median(r[0] for r in results):,.0f} runs/s, "
          f"end to end {statistics.median(r[1] for r in results):,.0f} runs/s "
          f"({args.runs} noop runs, {args.workers} workers)")


if __name__ == "__main__":
    asyncio.run(main())
