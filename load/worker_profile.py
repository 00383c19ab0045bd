"""One worker's cost per run, in process: `python -m load.worker_profile [N] [--profile]`.

Triggers N noop runs (`load-noop`) into a fresh database, then drains them with one
in-process `Worker` and prints the producer's rate, the worker's drain rate and the CPU
time the worker spent per run (process CPU, which a noisy machine disturbs far less than
wall time). `--profile` prints cProfile's top functions; `DROP_INDEX=a,b` leaves those
indexes of the runs table out (to measure what each costs). Compare two trees by running
it in each, alternating (see load/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time

import load.tasks  # noqa: F401  (registers load-noop)
import trigger_do.runs.index_schema as schema
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.worker import Worker
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig

for name in filter(None, os.environ.get("DROP_INDEX", "").split(",")):
    schema.SCHEMA[:] = [q for q in schema.SCHEMA if name not in q]


async def main(n: int, profile: bool) -> None:
    db = os.path.join(tempfile.mkdtemp(), "t.db")
    platform, sql = open_local(db)
    engine = Engine(platform)
    t0 = time.perf_counter()
    for i in range(0, n, 5000):
        await engine.batch_trigger([TriggerRequest("load-noop", None)] * min(5000, n - i))
    t1 = time.perf_counter()
    worker = Worker(db, EngineConfig())

    async def stop_when_done() -> None:
        while True:
            await asyncio.sleep(0.05)
            (done,) = sql.exec("SELECT count(*) FROM runs WHERE state = 'completed'")[0]
            if done >= n:
                worker.stop_event.set()
                return

    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    t2, c2 = time.perf_counter(), time.process_time()
    await asyncio.gather(worker.run(), stop_when_done())
    t3, c3 = time.perf_counter(), time.process_time()
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    print(
        f"produce {n / (t1 - t0):.0f}/s  drain (1 worker) {n / (t3 - t2):.0f}/s  "
        f"worker cpu {1e6 * (c3 - c2) / n:.1f} us/run"
    )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(args[0]) if args else 20000, "--profile" in sys.argv))
