"""Chaos, bounded: batches of runs trickle in while workers and the supervisor itself are
SIGKILLed at random moments (a new supervisor started after each supervisor kill). At the
end: nothing lost, every run completed exactly once with its own output, every batch
whole. About 300 runs and 15 kills, in well under a minute."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

from tests.engine.tasks_for_tests import lines
from tests.hostile.test_processes import start_supervisor_for
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.processes import alive
from trigger_do.producer.producer import TriggerRequest

BATCHES, PER_BATCH, KILLS = 6, 50, 15
DELIVERIES = 4  # the local queue's: a first delivery and max_retries=3 more


async def test_chaos_loses_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", time.time()))
    rng = random.Random(seed)
    db = tmp_path / "t.db"
    platform, sql = open_local(db)
    engine = Engine(platform)
    supervisor = start_supervisor_for(db, "tests.hostile.poison")
    batches: list[tuple[str, list[str], int]] = []
    kills = {"worker": 0, "supervisor": 0}
    try:
        for b in range(BATCHES):
            items = [
                TriggerRequest("h-work", {"dir": str(tmp_path), "n": b * PER_BATCH + i,
                                          "seconds": rng.uniform(0.2, 1.0)})
                for i in range(PER_BATCH)
            ]  # fmt: skip
            made = await engine.batch_trigger(items, idempotency_key=f"chaos-{b}")
            batches.append((made.id, [r.id for r in made.runs], b))
            for _ in range(KILLS // BATCHES + (1 if b < KILLS % BATCHES else 0)):
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                pids = [int(r[0]) for r in sql.exec("SELECT pid FROM worker_sessions")]
                live = [p for p in pids if alive(p)]
                if rng.random() < 0.25 or not live:
                    os.kill(supervisor.pid, signal.SIGKILL)
                    supervisor.wait()
                    kills["supervisor"] += 1
                    supervisor = start_supervisor_for(db, "tests.hostile.poison")
                else:
                    os.kill(rng.choice(live), signal.SIGKILL)
                    kills["worker"] += 1
        ids = [rid for _, runs, _ in batches for rid in runs]
        deadline = time.monotonic() + 45
        while True:
            states = await engine.get_states(ids)
            if all(s[0] in ("completed", "failed", "crashed") for s in states.values()):
                break
            assert time.monotonic() < deadline, f"seed {seed}: not final: " + str(
                sorted({s[0] for s in states.values()})
            )
            await asyncio.sleep(0.2)
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=60)
    rows = await engine.get_runs(ids)
    assert len(rows) == BATCHES * PER_BATCH, f"seed {seed}: lost runs"
    # a run ends COMPLETED; or CRASHED, the poison rule, only once it was started on every
    # delivery the queue allows and each start was cut off by a kill (a worker holds dozens
    # of runs, so a few runs of some seeds are in four of its deaths)
    starts = Counter(line.split()[0] for line in lines(tmp_path, "work"))
    crashed = [r for r in ids if rows[r]["state"] == "crashed"]
    assert {rows[r]["state"] for r in ids if r not in crashed} <= {"completed"}, f"seed {seed}"
    assert all(starts[r] == DELIVERIES for r in crashed), f"seed {seed}: crashed too soon"
    for batch_id, runs, b in batches:  # whole, in order, each output its own
        found = await engine.get_batch(batch_id)
        assert found is not None and found["sealed"] and found["runs"] == runs, seed
        outputs = [rows[r]["output"] for r in runs]
        expected = range(b * PER_BATCH, (b + 1) * PER_BATCH)
        assert outputs == [None if r in crashed else n for r, n in zip(runs, expected, strict=True)]
    assert kills["worker"] + kills["supervisor"] == KILLS
    print(f"chaos seed {seed}: {kills}, {len(crashed)} crashed by the poison rule")
