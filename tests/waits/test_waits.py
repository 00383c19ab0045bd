"""Durable waits on the in-process engine with a fake clock: a waiting run holds no
delivery and no slot, resumes at its due time, and replays with its records."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.driver import Driver, FakeClock
from tests.waits import tasks_waits as w
from tests.waits.drive import run_until_final, settle, state
from trigger_do import RunState
from trigger_do.platform.local.platform import RUN_QUEUE
from trigger_do.sdk.client import pop_client, push_client


async def test_a_wait_suspends_the_run_and_its_due_time_resumes_it(
    fake_driver: Driver, clock: FakeClock
) -> None:
    d = fake_driver
    handle = await w.sleeper.trigger({"wait": "1h"})
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.WAITING and status.api_status == "WAITING"
    # its delivery ended: no message, no lease; the shard's waits timer holds it
    assert d.count("queue_messages", "queue = ?", RUN_QUEUE) == 0
    assert d.sql.exec("SELECT lease_token FROM runs")[0][0] is None
    assert d.count("trigger_do_timers", "key = 'waits'") == 1
    clock.advance(3599)
    await settle(d)
    assert state(d, handle.id) == "waiting"
    clock.advance(1)
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.COMPLETED, status
    assert status.output == {"made": 1, "attempt": 1}  # the same attempt, continued
    assert w.CALLS["before"] == 1 and w.CALLS["replayed"] == 2 and w.CALLS["after"] == 1
    assert d.count("trigger_do_timers") == 0


async def test_wait_until_a_date(fake_driver: Driver, clock: FakeClock) -> None:
    at = clock.now() + 86_400
    handle = await w.until.trigger({"at": at})
    await run_until_final(fake_driver, [handle.id])
    assert await handle.result() == "woke"
    assert clock.now() == pytest.approx(at)  # not a moment before


async def test_waits_of_five_seconds_or_less_sleep_in_place(
    fake_driver: Driver, clock: FakeClock
) -> None:
    handle = await w.sleeper.trigger({"wait": 0.02})
    await settle(fake_driver)
    assert (await handle.status()).state == RunState.COMPLETED
    assert w.CALLS["replayed"] == 1  # never suspended
    assert fake_driver.count("waitpoints") == 0


async def test_a_wait_survives_a_restart_of_everything(tmp_path: Path, clock: FakeClock) -> None:
    """A dev server stopped during a 3-day wait and started again resumes it on time."""
    db = tmp_path / "restart.db"
    first = Driver(db, clock=clock, flush_interval=0.001)
    push_client(first.client)
    try:
        handle = await w.sleeper.trigger({"wait": "3d"})
        await settle(first)
        assert state(first, handle.id) == "waiting"
    finally:
        pop_client(first.client)
    clock.advance(2 * 86_400)  # down for two days
    second = Driver(db, clock=clock, flush_interval=0.001)  # a new engine on the same file
    push_client(second.client)
    try:
        await settle(second)
        assert state(second, handle.id) == "waiting"
        await run_until_final(second, [handle.id])
        status = await handle.status()
        assert status.state == RunState.COMPLETED
        assert status.finished_at is not None
        assert status.finished_at.timestamp() == pytest.approx(
            status.created_at.timestamp() + 3 * 86_400, abs=1
        )
    finally:
        pop_client(second.client)


async def test_a_replay_returns_recorded_steps_waits_and_children(
    fake_driver: Driver, clock: FakeClock
) -> None:
    handle = await w.journey.trigger({"fail_once": True})
    await run_until_final(fake_driver, [handle.id])
    status = await handle.status()
    assert status.state == RunState.COMPLETED, status.error
    out = status.output
    assert out["report"] == {"account": 7} and out["pages"] == [{"page": p} for p in range(3)]
    assert out["attempt"] == 2  # the first attempt failed after everything; the retry replayed
    assert w.CALLS["create"] == 1  # steps once
    assert w.CALLS["end"] == 2  # the code after the last wait: once per attempt
    # children once each: the retry got their recorded outputs
    children = await fake_driver.engine.list_runs(tasks=["w-echo"], limit=100)
    assert len(children) == 4
    assert {c["options"]["parent_run_id"] for c in children} == {handle.id}


async def test_a_replay_reaching_another_kind_of_call_names_both(
    fake_driver: Driver, clock: FakeClock
) -> None:
    handle = await w.changes.trigger()
    await settle(fake_driver)
    assert state(fake_driver, handle.id) == "waiting"
    w.SWITCH["changed"] = True  # new code deployed while it waits
    await run_until_final(fake_driver, [handle.id])
    status = await handle.status()
    assert status.state == RunState.FAILED
    assert status.error is not None and status.error["name"] == "WaitMismatchError"
    message = status.error["message"]
    assert "call 1 is now a trigger_and_wait" in message and "a wait was recorded" in message


async def test_a_sync_task_cannot_wait_and_says_so(fake_driver: Driver) -> None:
    waits = await w.sync_waiter.trigger("wait", max_attempts=1)
    child = await w.sync_waiter.trigger("child", max_attempts=1)
    await run_until_final(fake_driver, [waits.id, child.id])
    for handle in (waits, child):
        status = await handle.status()
        assert status.state == RunState.FAILED
        assert status.error is not None and status.error["name"] == "MisuseError"
        assert "only async tasks can wait" in status.error["message"]


async def test_a_waiting_run_is_canceled(fake_driver: Driver) -> None:
    handle = await w.sleeper.trigger({"wait": "1h"})
    await settle(fake_driver)
    assert await handle.cancel()
    assert (await handle.status()).state == RunState.CANCELED


async def test_wait_arguments_are_checked_where_they_are_made(fake_driver: Driver) -> None:
    runs = [await w.bad_wait.trigger(p) for p in ("duration", "far", "date")]
    await run_until_final(fake_driver, [r.id for r in runs])
    assert w.CALLS["InvalidDurationError"] == 2 and w.CALLS["InvalidArgumentError"] == 1
