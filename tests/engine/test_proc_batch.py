"""A batch of 10,000 items over real worker processes."""

from __future__ import annotations

import time

from tests.engine import tasks_for_tests as t
from trigger_do.platform.local.runtime import LocalRuntime


async def test_a_batch_of_ten_thousand(runtime: LocalRuntime) -> None:
    items = [{"i": i} for i in range(10_000)]
    began = time.monotonic()
    batch = await t.echo.batch_trigger(items)
    triggered = time.monotonic() - began
    assert len(batch.runs) == 10_000 and len({r.id for r in batch.runs}) == 10_000
    results = await batch.results(timeout=240)
    elapsed = time.monotonic() - began
    assert results == items  # every run completed; outputs in input order
    info = await runtime.engine.get_batch(batch.id)
    assert info is not None
    assert info["run_count"] == 10_000 and info["finished"] == 10_000
    assert info["runs"] == [r.id for r in batch.runs]
    counts = dict(runtime.sql.exec("SELECT state, count(*) FROM runs GROUP BY state"))
    assert counts == {"completed": 10_000}
    assert runtime.sql.exec("SELECT max(attempt) FROM runs")[0][0] == 1
    print(f"10,000-item batch: triggered in {triggered:.2f}s, all completed in {elapsed:.2f}s")
