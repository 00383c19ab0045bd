"""Child runs inside a task: the parent suspends while its children run, resumes with their
outputs (or `RunFailedError`), carries the links, and its cancel reaches them."""

from __future__ import annotations

from tests.engine.driver import Driver, FakeClock
from tests.waits import tasks_waits as w
from tests.waits.drive import run_until_final, settle, state
from trigger_do import RunState
from trigger_do.sdk.handles import RunHandle


async def test_a_parent_waits_for_its_child_without_holding_anything(fake_driver: Driver) -> None:
    d = fake_driver
    parent = await w.parent.trigger({"value": "hello"})
    await d.step()  # the parent runs, triggers its child, and suspends
    assert state(d, parent.id) == "waiting"
    (child,) = await d.engine.list_runs(tasks=["w-echo"])
    assert child["state"] == "queued"
    await settle(d)
    status = await parent.status()
    assert status.state == RunState.COMPLETED and status.output == {"child": "hello"}
    child_status = await RunHandle(d.client, child["id"]).status()
    assert child_status.parent_run_id == parent.id and child_status.root_run_id == parent.id
    assert status.parent_run_id is None and status.root_run_id is None


async def test_a_failed_child_raises_run_failed_error_in_its_parent(fake_driver: Driver) -> None:
    parent = await w.parent.trigger({"fail": True, "value": 3})
    await run_until_final(fake_driver, [parent.id])
    out = await parent.result()
    assert out["state"] == "failed" and out["error"] == "child says no to 3"


async def test_root_run_id_is_the_top_of_the_tree(fake_driver: Driver) -> None:
    top = await w.grandparent.trigger("deep")
    await run_until_final(fake_driver, [top.id])
    assert await top.result() == "late"
    rows = {r["task"]: r for r in await fake_driver.engine.list_runs(limit=10)}
    assert rows["w-middle"]["options"]["parent_run_id"] == top.id
    assert rows["w-long-child"]["options"]["parent_run_id"] == rows["w-middle"]["id"]
    assert rows["w-long-child"]["options"]["root_run_id"] == top.id


async def test_cancelling_a_parent_cancels_its_waiting_children(fake_driver: Driver) -> None:
    d = fake_driver
    top = await w.grandparent.trigger("x")
    await settle(d)  # three runs waiting: top on middle, middle on long-child, its timer
    rows = {r["task"]: r for r in await d.engine.list_runs(limit=10)}
    assert {r["state"] for r in rows.values()} == {"waiting"}
    assert await top.cancel()
    states = await d.engine.get_states([r["id"] for r in rows.values()])
    assert {s for s, _ in states.values()} == {"canceled"}


async def test_cancelling_a_child_resumes_its_parent_with_the_failure(fake_driver: Driver) -> None:
    d = fake_driver
    parent = await w.middle.trigger("x")
    await settle(d)
    (child,) = await d.engine.list_runs(tasks=["w-long-child"])
    await d.engine.cancel(child["id"])
    await run_until_final(d, [parent.id])
    status = await parent.status()
    # RunFailedError, unhandled: the parent's failure, after its retries (each replay gets
    # the recorded outcome; no new child)
    assert status.state == RunState.FAILED and status.attempt == 3
    assert len(await d.engine.list_runs(tasks=["w-long-child"])) == 1
    assert status.error is not None and status.error["name"] == "RunFailedError"
    assert "canceled" in status.error["message"]


async def test_a_parent_and_child_on_one_queue_with_limit_one_both_finish(
    fake_driver: Driver,
) -> None:
    parent = await w.shared_parent.trigger("p")
    await run_until_final(fake_driver, [parent.id])
    assert await parent.result() == {"child": "p"}


async def test_a_parent_waits_on_a_thousand_children(fake_driver: Driver) -> None:
    parent = await w.fanout.trigger({"n": 1000})
    await fake_driver.step()
    assert state(fake_driver, parent.id) == "waiting"
    await run_until_final(fake_driver, [parent.id])
    assert await parent.result() == sum(range(1000))
    assert fake_driver.count("waitpoint_items") == 1000


async def test_child_idempotency_keys_are_scoped_to_the_run_by_default(
    fake_driver: Driver, clock: FakeClock
) -> None:
    first = await w.keys.trigger({"key": "k"})
    second = await w.keys.trigger({"key": "k"})
    await run_until_final(fake_driver, [first.id, second.id])
    a, b = await first.result(), await second.result()
    assert a[0] != b[0]  # run scope: each parent its own child
    assert a[1] != b[1]  # attempt scope: each attempt its own
    assert a[2] == b[2]  # global: one child for both
    assert len(set(a)) == 3
    run_child = await RunHandle(fake_driver.client, a[0]).status()
    assert run_child.idempotency_key is not None and run_child.idempotency_key.startswith("k")


async def test_a_lost_completion_is_repaired_by_housekeeping(
    fake_driver: Driver, clock: FakeClock
) -> None:
    """A process died between a child's outcome and its parent's shard: housekeeping's
    sweep finds the open waitpoint whose child has ended and resumes the parent."""
    d = fake_driver
    parent = await w.parent.trigger({"value": 1})
    await d.step()
    (child,) = await d.engine.list_runs(tasks=["w-echo"])
    d.sql.exec(
        "UPDATE runs SET state = 'completed', output = '1', finished_at = ? WHERE id = ?",
        clock.now(),
        child["id"],
    )
    d.sql.exec("DELETE FROM queue_messages")  # its message, and its end never reached the parent
    await settle(d)
    assert state(d, parent.id) == "waiting"
    clock.advance(d.config.stale_after + 1)
    totals = await d.engine.housekeeping()
    assert totals["waits_completed"] == 1
    await settle(d)
    assert await parent.result() == {"child": 1}


async def test_a_bulk_cancel_reaches_the_children_too(fake_driver: Driver) -> None:
    d = fake_driver
    top = await w.grandparent.trigger("x")
    await settle(d)
    await d.engine.create_bulk_action("cancel", run_ids=[top.id], process_for=None)
    rows = await d.engine.list_runs(limit=10)
    assert len(rows) == 3 and {r["state"] for r in rows} == {"canceled"}


async def test_finished_runs_past_retention_take_their_waitpoints_along(
    fake_driver: Driver, clock: FakeClock
) -> None:
    d = fake_driver
    parent = await w.fanout.trigger({"n": 3})
    await run_until_final(d, [parent.id])
    assert d.count("waitpoints") == 1 and d.count("waitpoint_items") == 3
    clock.advance(d.config.retention + 1)
    await d.engine.housekeeping()
    assert d.count("runs") == 0
    assert d.count("waitpoints") == 0 and d.count("waitpoint_items") == 0


async def test_children_by_task_id_suspend_the_parent_too(fake_driver: Driver) -> None:
    parent = await w.by_id.trigger()
    await fake_driver.step()
    assert state(fake_driver, parent.id) == "waiting"
    await run_until_final(fake_driver, [parent.id])
    assert await parent.result() == ["one", ["a", "b"]]
    children = await fake_driver.engine.list_runs(tasks=["w-echo"])
    assert {c["options"]["parent_run_id"] for c in children} == {parent.id}


async def test_a_key_naming_a_child_that_already_ended_resumes_the_parent_at_once(
    fake_driver: Driver,
) -> None:
    first = await w.keyed_parent.trigger({"value": "made once"})
    await run_until_final(fake_driver, [first.id])
    second = await w.keyed_parent.trigger({"value": "never made"})
    await run_until_final(fake_driver, [second.id])  # no housekeeping needed
    assert await second.result() == "made once"
    assert len(await fake_driver.engine.list_runs(tasks=["w-echo"])) == 1


async def test_a_key_naming_a_child_still_running_resumes_both_parents(
    fake_driver: Driver,
) -> None:
    """Two parents await one child by a global key: its end resumes both."""
    d = fake_driver
    first = await w.keyed_parent.trigger({"value": "shared"})
    second = await w.keyed_parent.trigger({"value": "ignored"})
    await d.step()  # both run, both wait on the one child
    assert state(d, first.id) == state(d, second.id) == "waiting"
    await settle(d)
    assert await first.result() == "shared" and await second.result() == "shared"


async def test_the_sweep_completes_a_second_parents_wait_with_its_own_children(
    fake_driver: Driver, clock: FakeClock
) -> None:
    """Housekeeping matches ended children to each open waitpoint by its own list (a child a
    key shared names only the parent that made it)."""
    d = fake_driver
    first = await w.keyed_parent.trigger({"value": "shared"})
    second = await w.keyed_parent.trigger({"value": "ignored"})
    await d.step()
    d.sql.exec("DELETE FROM child_waiters")  # as if the second parent's link were lost
    await settle(d)
    assert await first.result() == "shared" and state(d, second.id) == "waiting"
    clock.advance(d.config.stale_after + 1)
    assert (await d.engine.housekeeping())["waits_completed"] == 1
    await settle(d)
    assert await second.result() == "shared"
