"""Bulk actions on the engine (trigger_do/bulk.py): cancel and replay thousands of runs by
filter or by id, in chunks; counts, polling, abort; a crash between applying a chunk and
recording it, a processor that dies holding the lease, and one that keeps dying; the same
on a sharded run index (the Cloudflare fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.driver import Driver, FakeClock
from trigger_do.bulk import (
    CHUNK,
    LEASE_SECONDS,
    MAX_INTERRUPTIONS,
    BulkActionError,
    BulkActionNotFoundError,
    BulkActions,
    BulkIndex,
)
from trigger_do.engine import Engine
from trigger_do.producer.producer import TriggerRequest


async def delayed(engine: Engine, n: int, tag: str, task: str = "t-echo") -> list[str]:
    """`n` runs an hour away (so nothing starts them), tagged `tag`."""
    made = await engine.batch_trigger(
        [TriggerRequest(task, {"i": i}, {"delay": "1h", "tags": [tag]}) for i in range(n)]
    )
    return [r.id for r in made.runs]


async def states(engine: Engine, run_ids: list[str]) -> set[str]:
    return {s for s, _ in (await engine.get_states(run_ids)).values()}


async def marked(engine: Engine, bulk_id: str) -> list[dict[str, Any]]:
    return await engine.list_runs(limit=100_000, bulk_action=bulk_id)


async def test_cancel_thousands_of_runs_by_filter(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 3000, "doomed")
    spared = await delayed(engine, 20, "spared")
    action = await engine.create_bulk_action(
        "cancel", filters={"tags": ["doomed"]}, name="clean up", process_for=None
    )
    assert action["status"] == "completed" and action["name"] == "clean up"
    assert (action["total"], action["succeeded"], action["failed"]) == (3000, 3000, 0)
    assert action["chunks"] == 3000 // CHUNK["cancel"]  # never one giant write
    assert action["completed_at"] is not None and action["error"] is None
    assert await states(engine, ids) == {"canceled"}
    assert await states(engine, spared) == {"delayed"}
    assert {r["id"] for r in await marked(engine, action["id"])} == set(ids)


async def test_cancel_by_ids_counts_what_it_could_not_cancel(driver: Driver) -> None:
    engine = driver.engine
    live = await delayed(engine, 5, "live")
    done = (await engine.batch_trigger([TriggerRequest("t-echo", {"i": i}) for i in range(2)])).runs
    await driver.run_until_final([r.id for r in done])
    selection = [*live, done[0].id, done[1].id, "run_doesnotexist", live[0]]  # a repeat too
    action = await engine.create_bulk_action("cancel", run_ids=selection, process_for=None)
    assert (action["total"], action["succeeded"], action["failed"]) == (8, 5, 3)
    assert action["run_count"] == 8 and action["filters"] is None
    assert await states(engine, live) == {"canceled"}
    assert await states(engine, [r.id for r in done]) == {"completed"}
    # like Trigger.dev, the runs it tried carry it too, not only those it canceled
    assert {r["id"] for r in await marked(engine, action["id"])} == {*live, *(r.id for r in done)}


async def test_an_action_is_processed_in_chunks_and_can_be_polled(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 1200, "slow")
    action = await engine.create_bulk_action("cancel", filters={"tags": ["slow"]})
    assert action["status"] == "pending" and action["total"] == 1200
    assert action["succeeded"] == 0 and action["cursor"] is None
    seen = []
    while action["status"] in ("pending", "running"):
        action = await engine.bulk.process(action["id"], max_chunks=1)
        seen.append((action["status"], action["succeeded"]))
        assert (await engine.get_bulk_action(action["id"]))["succeeded"] == action["succeeded"]
    assert seen == [("running", 500), ("running", 1000), ("running", 1200), ("completed", 1200)]
    assert await states(engine, ids) == {"canceled"}
    again = await engine.bulk.process(action["id"])  # a completed action: nothing to do
    assert again == await engine.get_bulk_action(action["id"])
    assert again["succeeded"] == 1200 and again["chunks"] == 3


async def test_replay_by_filter_replays_each_run_once(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 120, "again")
    action = await engine.create_bulk_action(
        "replay", filters={"tags": ["again"], "states": ["delayed"]}, process_for=None
    )
    assert (action["total"], action["succeeded"], action["failed"]) == (120, 120, 0)
    replays = await marked(engine, action["id"])  # the runs it made carry it
    assert len(replays) == 120 and not {r["id"] for r in replays} & set(ids)
    assert {r["state"] for r in replays} == {"queued"}  # the originals were delayed
    assert sorted(r["payload"]["i"] for r in await _rows(engine, replays)) == list(range(120))
    assert all(r["tags"] == ["again"] for r in replays)
    assert driver.count("runs") == 240  # its own replays (tagged too) were not replayed


async def _rows(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list((await engine.get_runs([r["id"] for r in rows])).values())


async def test_replay_counts_runs_it_cannot_replay(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 60, "mixed")
    driver.sql.exec("UPDATE runs SET task = 'gone-task' WHERE id IN (?, ?)", ids[3], ids[41])
    action = await engine.create_bulk_action(
        "replay", run_ids=[*ids, "run_missing"], process_for=None
    )
    assert (action["total"], action["succeeded"], action["failed"]) == (61, 58, 3)
    assert len(await marked(engine, action["id"])) == 58


async def test_a_chunk_applied_twice_is_counted_once(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after a chunk's runs were canceled or replayed, before its counts were
    recorded: the next `process` applies the chunk again, with the same outcomes."""
    engine = driver.engine
    ids = await delayed(engine, 130, "crashy")
    real = BulkIndex.advance
    calls = {"n": 0}

    async def crash_on_first(self: BulkIndex, *args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the process died here")
        return await real(self, *args)

    monkeypatch.setattr(BulkIndex, "advance", crash_on_first)
    for kind in ("replay", "cancel"):
        calls["n"] = 0
        filters = {"tags": ["crashy"], "states": ["delayed"]}  # not the (queued) replays
        action = await engine.create_bulk_action(kind, filters=filters)
        action = await engine.bulk.process(action["id"])
        assert action["status"] == "running" and action["interruptions"] == 1
        assert "ConnectionError: the process died here" in action["error"]
        assert action["pending"] is not None  # the chunk in flight is written down
        action = await engine.bulk.process(action["id"])
        assert action["status"] == "completed" and action["pending"] is None
        assert (action["total"], action["succeeded"], action["failed"]) == (130, 130, 0)
    replays = driver.count("runs", "task = 't-echo'") - len(ids)
    assert replays == 130  # not one run replayed twice
    assert await states(engine, ids) == {"canceled"}


async def test_a_processor_that_dies_is_taken_over_after_its_lease(
    fake_driver: Driver, clock: FakeClock
) -> None:
    engine = fake_driver.engine
    ids = await delayed(engine, 700, "orphan")
    action = await engine.create_bulk_action("cancel", filters={"tags": ["orphan"]})
    index = BulkIndex(engine.platform)
    # a processor takes the lease, writes down its first chunk, cancels it, and dies
    assert (await index.claim(action["id"], "lease_dead", clock.now()))["claimed"]
    first = [r[1] for r in await index.select(action["id"], action["filters"], None, 500)]
    assert await index.begin_chunk(action["id"], "lease_dead", first, None, clock.now())
    await index.cancel(action["id"], first, clock.now())
    # while its lease lasts nobody else works on it; a poll just reads it
    assert (await engine.get_bulk_action(action["id"], process_for=5))["succeeded"] == 0
    clock.advance(LEASE_SECONDS + 1)
    [after] = await engine.resume_bulk_actions()
    assert after["status"] == "completed" and after["interruptions"] == 1
    assert (after["succeeded"], after["failed"]) == (700, 0)
    assert await states(engine, ids) == {"canceled"}
    # the dead holder's late write changes nothing
    assert await index.advance(action["id"], "lease_dead", None, (1, 1), True, clock.now()) is None
    assert (await engine.get_bulk_action(action["id"]))["succeeded"] == 700


async def test_an_action_whose_processors_keep_dying_ends_aborted(
    fake_driver: Driver, clock: FakeClock
) -> None:
    engine = fake_driver.engine
    await delayed(engine, 10, "cursed")
    action = await engine.create_bulk_action("cancel", filters={"tags": ["cursed"]})
    index = BulkIndex(engine.platform)
    for i in range(MAX_INTERRUPTIONS + 1):
        assert (await index.claim(action["id"], f"lease_{i}", clock.now()))["claimed"]
        clock.advance(LEASE_SECONDS + 1)  # ... and it died
    [after] = await engine.resume_bulk_actions()  # the next one finds it interrupted once more
    assert after["status"] == "aborted" and after["completed_at"] is not None
    assert f"interrupted {MAX_INTERRUPTIONS + 1} times" in after["error"]
    assert await engine.resume_bulk_actions() == []  # final: nothing to resume


async def test_abort_stops_an_action_between_chunks(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 1100, "halt")
    action = await engine.create_bulk_action("cancel", filters={"tags": ["halt"]})
    await engine.bulk.process(action["id"], max_chunks=1)
    done = await engine.abort_bulk_action(action["id"])
    assert done["aborted"] and done["action"]["status"] == "aborted"
    after = await engine.bulk.process(action["id"])  # an aborted action is not resumed
    assert (after["status"], after["succeeded"]) == ("aborted", 500)
    assert sorted((await engine.get_states(ids)).values()) == sorted(
        [["canceled", 0]] * 500 + [["delayed", 0]] * 600
    )
    assert not (await engine.abort_bulk_action(action["id"]))["aborted"]
    with pytest.raises(BulkActionNotFoundError):
        await engine.abort_bulk_action("bulk_nope")
    with pytest.raises(BulkActionNotFoundError):
        await engine.get_bulk_action("bulk_nope", process_for=1)


async def test_abort_while_a_chunk_is_in_flight(
    driver: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = driver.engine
    await delayed(engine, 1100, "midway")
    action = await engine.create_bulk_action("cancel", filters={"tags": ["midway"]})
    real = BulkActions._apply

    async def abort_after_applying(self: BulkActions, *args: Any) -> tuple[int, int]:
        counts = await real(self, *args)
        await engine.abort_bulk_action(action["id"])  # say, from the dashboard
        return counts

    monkeypatch.setattr(BulkActions, "_apply", abort_after_applying)
    after = await engine.bulk.process(action["id"])
    assert (after["status"], after["succeeded"], after["chunks"]) == ("aborted", 500, 1)
    assert after["lease_until"] is None and after["pending"] is None


async def test_housekeeping_finishes_what_nobody_polls(driver: Driver) -> None:
    engine = driver.engine
    ids = await delayed(engine, 40, "forgotten")
    action = await engine.create_bulk_action("cancel", run_ids=ids)  # recorded, not processed
    assert await engine.bulk_housekeeping() == {"bulk_resumed": 1, "bulk_purged": 0}
    assert (await engine.get_bulk_action(action["id"]))["status"] == "completed"
    assert await states(engine, ids) == {"canceled"}
    assert await engine.bulk_housekeeping() == {"bulk_resumed": 0, "bulk_purged": 0}


async def test_a_retried_create_makes_one_action(driver: Driver) -> None:
    engine = driver.engine
    await delayed(engine, 3, "once")
    first = await engine.create_bulk_action(
        "cancel", filters={"tags": ["once"]}, request_key="req-1", process_for=None
    )
    second = await engine.create_bulk_action(
        "cancel", filters={"tags": ["once"]}, request_key="req-1", process_for=None
    )
    assert second["cached"] and second["id"] == first["id"] and second["succeeded"] == 3
    assert [a["id"] for a in await engine.list_bulk_actions()] == [first["id"]]


async def test_listing_pages_newest_first_and_purge(driver: Driver) -> None:
    engine = driver.engine
    await delayed(engine, 2, "listed")
    made = [
        (await engine.create_bulk_action("cancel", filters={"tags": ["listed"]}))["id"]
        for _ in range(5)
    ]
    newest_first = sorted(made, reverse=True)  # ids sort by creation (to the millisecond)
    assert [a["id"] for a in await engine.list_bulk_actions(limit=2)] == newest_first[:2]
    page = await engine.list_bulk_actions(limit=2, after=newest_first[1])
    assert [a["id"] for a in page] == newest_first[2:4]
    back = await engine.list_bulk_actions(limit=2, before=newest_first[2])
    assert [a["id"] for a in back] == newest_first[:2]
    for bulk_id in made:
        await engine.bulk.process(bulk_id)
    assert driver.count("bulk_action_runs") == 5 * 2  # each action marks both runs it tried
    assert await engine.bulk.purge(retention=0) == 5 + 5 * 2  # records and marks
    assert driver.count("bulk_action_runs") == 0
    assert await engine.list_bulk_actions() == []


@pytest.mark.parametrize(
    ("kind", "selection", "message"),
    [
        ("delete", {"run_ids": ["run_1"]}, "unknown bulk action 'delete'"),
        ("cancel", {}, "exactly one of them"),
        ("cancel", {"run_ids": ["run_1"], "filters": {"tags": ["a"]}}, "exactly one of them"),
        ("cancel", {"run_ids": []}, "select at least one run"),
        ("cancel", {"run_ids": ["run_1", ""]}, "non-empty strings"),
        ("replay", {"filters": {}}, "the filter is empty"),
        ("replay", {"filters": {"queue": "q"}}, "unknown filter 'queue'"),
        ("cancel", {"filters": {"states": ["QUEUED"]}}, "unknown run state 'QUEUED'"),
        ("cancel", {"filters": {"tags": []}}, "tags is empty"),
        ("cancel", {"filters": {"created_from": "yesterday"}}, "epoch seconds"),
        ("cancel", {"filters": {"created_from": 20.0, "created_to": 10.0}}, "after created_to"),
        ("cancel", {"filters": {"batch_id": 7}}, "batch_id is a non-empty string"),
    ],
)
async def test_bad_selections_are_refused_before_anything_is_written(
    driver: Driver, kind: str, selection: dict[str, Any], message: str
) -> None:
    with pytest.raises(BulkActionError, match=message) as raised:
        await driver.engine.create_bulk_action(kind, **selection)
    assert raised.value.errors and raised.value.errors[0]["msg"]
    assert await driver.engine.list_bulk_actions() == []


async def test_a_name_over_255_characters_is_refused(driver: Driver) -> None:
    with pytest.raises(BulkActionError, match="at most 255"):
        await driver.engine.create_bulk_action("cancel", run_ids=["run_1"], name="x" * 256)


async def test_bulk_actions_across_index_shards() -> None:
    """On the Cloudflare fakes with 4 run-index shards: the record on shard 0, selections
    merged from every shard, each run's mark on its own shard."""
    from tests.cloudflare.cf_fakes import make_cloud

    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    ids = await delayed(engine, 1300, "sharded")
    action = await engine.create_bulk_action(
        "cancel", filters={"tags": ["sharded"]}, process_for=None
    )
    assert (action["total"], action["succeeded"], action["failed"]) == (1300, 1300, 0)
    assert await states(engine, ids) == {"canceled"}
    replay = await engine.create_bulk_action("replay", run_ids=ids[:130], process_for=None)
    assert (replay["succeeded"], replay["failed"]) == (130, 0)
    made = await marked(engine, replay["id"])
    assert len(made) == 130 and {r["state"] for r in made} == {"queued"}
    ns = cloud.namespaces["RUN_INDEX"]
    homes = {
        oid.name: conn.execute("SELECT count(*) FROM bulk_actions").fetchone()[0]
        for oid, conn in ns.databases.items()
    }
    assert homes["shard-0"] == 2 and sum(homes.values()) == 2
    spread = [
        conn.execute("SELECT count(*) FROM bulk_action_runs").fetchone()[0]
        for conn in ns.databases.values()
    ]
    assert sum(spread) == 1300 + 130 and min(spread) > 0
