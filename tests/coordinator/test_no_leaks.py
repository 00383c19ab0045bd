"""Thousands of mixed outcomes (success, failure with retry, abort, timeout, cancel while
parked and while running, a consumer killed mid-run): every slot comes back, nothing
stays parked, every run ends."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import trigger_do
from tests.coordinator import coord_tasks as t
from tests.coordinator.util import rows, slots
from trigger_do.shared.states import FINAL_STATES

MODULE = "tests.coordinator.coord_tasks"


async def test_no_slot_leaks_after_mixed_outcomes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    rng = random.Random(5)
    marker = str(tmp_path / "crashed-once")
    kinds = ["ok"] * 90 + ["fail"] * 4 + ["abort"] * 2 + ["timeout"] + ["slow"] * 2 + ["cancel"]
    items = []
    for i in range(2000):
        kind = rng.choice(kinds)
        item = {"org": f"org-{i % 10}", "kind": kind}
        if i == 700:
            item.update(kind="crash", crash_once=marker)
        items.append(item)
    async with trigger_do.local(MODULE, db=db, workers=3, lease_seconds=2.0) as rt:
        batch = await t.coord_mixed.batch_trigger(items)
        ids = [r.id for r in batch.runs]
        canceled = [rid for rid, item in zip(ids, items, strict=True) if item["kind"] == "cancel"]
        for rid in canceled[: len(canceled) // 2]:  # while queued or parked
            await rt.engine.cancel(rid)
        deadline = time.monotonic() + 120
        slow = {rid for rid, item in zip(ids, items, strict=True) if item["kind"] == "slow"}
        pending_cancel = set(canceled[len(canceled) // 2 :]) | slow
        while time.monotonic() < deadline:
            states = await rt.engine.get_states(ids)
            for rid in list(pending_cancel):  # while running (or whenever they get there)
                if states[rid][0] == "running" or rid in canceled:
                    await rt.engine.cancel(rid)
                    pending_cancel.discard(rid)
            if all(s[0] in FINAL_STATES for s in states.values()):
                break
            await asyncio.sleep(0.2)
        states = await rt.engine.get_states(ids)
        unfinished = {r: s for r, s in states.items() if s[0] not in FINAL_STATES}
        assert not unfinished, list(unfinished.items())[:5]
        deadline = time.monotonic() + 15  # releases are bulk, lapsed leases take 2 s
        while time.monotonic() < deadline and (slots(db) or _parked(db)):
            await asyncio.sleep(0.1)
    assert slots(db) == {}
    assert _parked(db) == 0
    outcomes = dict(rows(db, "SELECT state, count(*) FROM runs GROUP BY state"))
    print("outcomes:", outcomes)
    assert outcomes.get("completed", 0) > 1500
    assert outcomes.get("canceled", 0) >= 20
    assert outcomes.get("failed", 0) > 50
    assert outcomes.get("timed_out", 0) > 0
    assert Path(marker).exists()  # a consumer really died mid-run


def _parked(db: Path) -> int:
    return int(rows(db, "SELECT count(*) FROM coord_parked")[0][0])
