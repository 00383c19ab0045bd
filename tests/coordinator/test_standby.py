"""Standby runs (coordinator/standby.py): a key's next run waits, started, where its key's
runs run, and goes the instant one of them returns. Its slot is outside the limit until
then, and takes the slot of the run that let it go."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

import trigger_do
from tests.coordinator import coord_tasks as t
from tests.coordinator.test_swap import T0, Queue, specs
from tests.coordinator.util import max_overlap, overlaps_by_key, prepare_db, rows, slots
from tests.engine.driver import Driver
from trigger_do import RunState
from trigger_do.consumer import consumer as consumer_module
from trigger_do.coordinator.coordinator import CoordinatorObject
from trigger_do.coordinator.standby import Standbys
from trigger_do.sdk.client import pop_client, push_client
from trigger_do.shared.messages import RunMessage

MODULE = "tests.coordinator.coord_tasks"


def _requests(ids: list[str], key: str = "hot") -> list[dict[str, Any]]:
    return [
        {
            "id": r,
            "task": "t",
            "key": key,
            "rate_key": None,
            "body": RunMessage(r, "t", 1, queue="task/t", key=key).to_body(),
        }
        for r in ids
    ]


def _slots(q: Queue) -> dict[str, str]:
    return dict(q.sql.exec("SELECT run_id, state FROM coord_slots ORDER BY run_id"))


def test_a_standby_waits_outside_the_limit_then_takes_the_slot_it_was_let_go_into(
    tmp_path: Path,
) -> None:
    q = Queue(tmp_path / "c.db", CoordinatorObject)
    res = q("acquire", _requests(["r1", "r2", "r3", "r4", "r5", "r6"]), specs(2), T0, 10.0, 0)
    assert res["granted"] == ["r1", "r2"] and res["parked"] == ["r3", "r4", "r5", "r6"]

    # r1 ends: r3 takes its slot, as ever; r4 is this consumer's standby
    res = q("release", ["r1"], T0 + 1, 1, 10.0, {"hot": 1})
    assert [b["run_id"] for b in res["direct"]] == ["r3"]
    assert [b["run_id"] for b in res["standby"]] == ["r4"]
    assert _slots(q) == {"r2": "held", "r3": "held", "r4": "standby"}
    stats = q("stats", T0 + 1)
    assert stats["keys"]["hot"] == {"running": 2, "standby": 1, "parked": 4}  # r3-r6 rows

    # r2 ends and lets r4 go: r4's slot is held now, in r2's place; nothing else is free
    res = q("release", ["r2"], T0 + 2, 1, 10.0, {"hot": 1}, ["r4"])
    assert res["direct"] == [] and [b["run_id"] for b in res["standby"]] == ["r5"]
    assert _slots(q) == {"r3": "held", "r4": "held", "r5": "standby"}

    # a caller that asks for no standby gets none; the limit holds throughout
    res = q("release", ["r3"], T0 + 3, 1, 10.0, None, ["r5"])
    assert res["direct"] == [] and "standby" not in res
    assert _slots(q) == {"r4": "held", "r5": "held"}
    res = q("release", ["r4"], T0 + 4, 1, 10.0)
    assert [b["run_id"] for b in res["direct"]] == ["r6"]
    assert _slots(q) == {"r5": "held", "r6": "held"}


def test_a_standby_whose_consumer_died_goes_back_to_the_head_of_its_line(
    tmp_path: Path,
) -> None:
    q = Queue(tmp_path / "c.db", CoordinatorObject)
    q("acquire", _requests(["r1", "r2", "r3"]), specs(1), T0, 10.0, 0)
    res = q("release", ["r1"], T0 + 1, 1, 10.0, {"hot": 1})
    assert [b["run_id"] for b in res["direct"]] == ["r2"]
    assert [b["run_id"] for b in res["standby"]] == ["r3"]
    assert q("extend", ["r2", "r3"], T0 + 5, 10.0) == []  # its lease renews like a slot's
    # the consumer dies: both leases lapse, and both runs are in line again, in order:
    # r2 is handed back to run, r3 waits behind it
    res = q("wake", T0 + 30, 0)
    assert [b["run_id"] for b in res["handback"]] == ["r2"]
    assert _slots(q) == {"r2": "reserved"}
    assert q.sql.exec("SELECT run_id FROM coord_parked WHERE handed = 0") == [("r3",)]


def test_one_run_that_ended_lets_one_standby_go() -> None:
    async def main() -> None:
        sb = Standbys(lambda: 42.0)
        for r in ("a", "b"):
            sb.track(r, "q", "k")
        assert sb.wants("q", {"a"}) is None  # a has not ended: no quick run to ask for
        sb.ended("a", 0.01)
        assert sb.wants("q", {"a"}) == {"k": 1}  # b still runs: one standby for after it
        sb.wait("s1", "q", "k")
        assert sb.wants("q", {"a"}) is None  # (one already)
        go = sb.gate("s1")
        assert go is not None and not go.done()
        sb.ended("b", 0.01)
        assert go.done()  # b's end lets s1 go, and b's slot is s1's
        assert sb.promotions(["a", "b"]) == ["s1"]
        assert sb.ended_at == {"b": 42.0} and sb.started_at == {"s1": 42.0}
        sb.wait("s2", "q", "k")
        sb.ended("s2", 5.0)  # canceled before it went: lets nobody go
        assert sb.gate("s2") is None and ("q", "k") not in sb.lines
        sb.freed(["a", "b", "s2"])
        assert sb.promotions(["b"]) == [] and sb.running == {("q", "k"): 1}  # s1 runs
        sb.ended("s1", 0.2)
        assert sb.running == {} and sb.lines == {}  # (a key at rest leaves nothing behind)
        slow = Standbys(lambda: 0.0)
        slow.track("c", "q", "k")
        slow.track("d", "q", "k")
        slow.ended("c", 2.0)  # a long run: its key's next runs start as they always did
        assert slow.wants("q", {"c"}) is None

    asyncio.run(main())


async def test_only_an_outcome_that_frees_a_slot_for_another_is_written_at_once(
    tmp_path: Path,
) -> None:
    """A run whose end let a standby go frees no slot for anyone: the standby runs in it
    already. Its outcome joins the next flush; one that frees a slot is written at once."""
    gate = Driver(tmp_path / "d.db").consumer.gate
    a, b, s = (RunMessage(r, "t", 1, queue="task/t", key="k") for r in ("a", "b", "s"))
    gate._hold(a, "task/t")
    gate._hold(b, "task/t")
    gate._hold(s, "task/t", standby=True)
    assert gate.urgent("a") and gate.urgent("b")
    gate.standbys.ended("a", 0.01)  # a lets s go
    assert not gate.urgent("a")
    gate.standbys.ended("b", 0.01)  # no standby left: b's write frees its slot
    assert gate.urgent("b")
    assert not gate.urgent("elsewhere")  # no slot held here


async def test_short_runs_hand_over_at_once_and_never_exceed_the_limit(tmp_path: Path) -> None:
    """Across processes: what really ran at once (noted by the runs' own code) stays
    within the limit, the rows agree, and runs did go on standbys (a run's start is the
    very instant another of its key ended)."""
    db = tmp_path / "c.db"
    prepare_db(db)
    notes = tmp_path / "notes"
    notes.mkdir()
    async with trigger_do.local(MODULE, db=db, workers=2, lease_seconds=5.0) as rt:
        items = [
            {"org": f"org-{i % 3}", "sleep": 0.01, "dir": str(notes)} for i in range(600)
        ]
        batch = await t.coord_clocked.batch_trigger(items)
        await batch.results(timeout=120)
        for _ in range(200):  # the last releases are written after the last outcomes
            if not rt.sql.exec("SELECT 1 FROM coord_slots LIMIT 1"):
                break
            await asyncio.sleep(0.05)
    ran: dict[str, list[tuple[float, float]]] = {}
    for name in os.listdir(notes):
        for line in (notes / name).read_text().splitlines():
            org, began, ended = line.split()
            ran.setdefault(org, []).append((float(began), float(ended)))
    assert sum(map(len, ran.values())) == 600
    assert {org: max_overlap(v) for org, v in ran.items()} == dict.fromkeys(ran, 3)
    assert max(overlaps_by_key(db, "coord-clocked").values()) <= 3
    handoffs = rows(
        db,
        "SELECT count(*) FROM runs a JOIN runs b ON a.concurrency_key = b.concurrency_key "
        "AND a.started_at = b.finished_at AND a.id != b.id WHERE a.task = 'coord-clocked'",
    )[0][0]
    assert handoffs > 50, handoffs
    assert slots(db) == {}


@trigger_do.task(id="standby-lapse", concurrency={"limit": 1, "key": "payload.org"})
async def standby_lapse(p: dict[str, Any]) -> str:
    return str(p["org"])


async def test_a_standby_never_let_go_goes_back_in_line_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should no run of its key end where a standby waits, it gives up its wait after
    `STANDBY_WAIT` and is queued again (same attempt): it then runs as any run would."""
    monkeypatch.setattr(consumer_module, "STANDBY_WAIT", 0.2)
    d = Driver(tmp_path / "d.db", lease_seconds=5.0, flush_interval=0.001)
    push_client(d.client)
    try:
        handle = await standby_lapse.trigger({"org": "a"})
        # as though a release had made it this consumer's standby, behind no run here
        d.consumer.gate.standbys.wait(handle.id, standby_lapse.queue_name, "a")
        began = asyncio.get_running_loop().time()
        await d.step()
        assert asyncio.get_running_loop().time() - began >= 0.2
        status = await handle.status()
        assert (status.state, status.attempt) == (RunState.QUEUED, 1)
        assert d.consumer.gate.standbys.gate(handle.id) is None
        await d.run_until_final([handle.id])
        assert await handle.result() == "a"
        assert (await handle.status()).attempt == 1
    finally:
        pop_client(d.client)
