"""The Timers port: a due time for a key, owned by an engine object, fired on time. Locally
the runtime's supervisor fires what is due (here: `Engine.fire_due_timers`, as it does,
on a fake clock); TTL expiry is its first user. (On Cloudflare: test_cf_contract.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver, FakeClock
from trigger_do import BatchItem, RunState
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.shared.timers import ObjectTimers, due_objects


def test_object_timers_set_move_cancel_and_fire_once(tmp_path: Path) -> None:
    _, sql = open_local(tmp_path / "t.db")
    a, b = ObjectTimers(sql, "run-index", "shard-0"), ObjectTimers(sql, "run", "r1")
    a.set("x", 10.0)
    a.set_earliest("x", 20.0)  # later: kept at 10
    a.set_earliest("y", 5.0)
    b.set("x", 7.0)
    assert a.next_due() == 5.0 and b.next_due() == 7.0
    assert due_objects(sql, 6.0) == [("run-index", "shard-0")]
    assert due_objects(sql, 7.0) == [("run", "r1"), ("run-index", "shard-0")]
    a.set("y", 30.0)  # moved later
    assert a.take_due(10.0) == ["x"] and a.take_due(10.0) == []  # each fires once
    b.cancel("x")
    assert b.next_due() is None and due_objects(sql, 100.0) == [("run-index", "shard-0")]


async def test_a_ttl_expires_the_run_at_its_due_time(fake_driver: Driver, clock: FakeClock) -> None:
    late = await t.echo.trigger("late", ttl="10s")
    assert await fake_driver.engine.fire_due_timers() == 0  # not due yet
    clock.advance(9.9)
    assert await fake_driver.engine.fire_due_timers() == 0
    assert (await late.status()).state == RunState.QUEUED
    clock.advance(0.2)
    assert await fake_driver.engine.fire_due_timers() == 1  # no consumer, no housekeeping
    status = await late.status()
    assert status.state == RunState.EXPIRED and status.attempt == 0
    assert status.finished_at is not None
    assert abs(status.finished_at.timestamp() - clock.now()) < 1e-6


async def test_the_ttl_timer_moves_to_the_next_expiry_and_skips_started_runs(
    fake_driver: Driver, clock: FakeClock
) -> None:
    started = await t.echo.trigger("started", ttl="5s")
    await fake_driver.step()  # it ran: a ttl no longer applies
    first = await t.echo.trigger("first", ttl="10s")
    second = await t.echo.trigger("second", ttl="1m")
    clock.advance(11)
    assert await fake_driver.engine.fire_due_timers() == 1
    states = await fake_driver.engine.get_states([started.id, first.id, second.id])
    assert [states[r.id][0] for r in (started, first, second)] == [
        "completed",
        "expired",
        "queued",
    ]
    clock.advance(48)  # 59 s in
    assert await fake_driver.engine.fire_due_timers() == 0
    clock.advance(1)
    assert await fake_driver.engine.fire_due_timers() == 1
    assert (await second.status()).state == RunState.EXPIRED
    assert fake_driver.count("trigger_do_timers") == 0  # nothing left to time


async def test_a_backlog_of_expiries_is_worked_off(fake_driver: Driver, clock: FakeClock) -> None:
    batch = await t.echo.batch_trigger([BatchItem(i, ttl="5s") for i in range(1_200)])
    clock.advance(6)
    rounds = 0
    while await fake_driver.engine.fire_due_timers():
        rounds += 1
    states = await fake_driver.engine.get_states([r.id for r in batch.runs])
    assert {s[0] for s in states.values()} == {"expired"} and rounds == 3  # 500 a round


async def test_the_runtime_fires_ttl_timers_between_housekeeping_rounds(
    make_runtime: Callable[..., AbstractAsyncContextManager[LocalRuntime]],
) -> None:
    async with make_runtime(workers=1) as rt:  # housekeeping every 30 s: too late
        await rt.engine.pause_queue(t.echo.queue_name)  # nothing will start it
        handle = await t.echo.trigger("paused", ttl="1s")
        deadline = time.monotonic() + 20
        while (await handle.status()).state != RunState.EXPIRED:
            assert time.monotonic() < deadline, "not expired"
            await asyncio.sleep(0.05)
        status = await handle.status()
        assert status.expires_at is not None and status.finished_at is not None
        # expired by the supervisor's timer tick, not by a housekeeping round
        assert status.finished_at.timestamp() - status.expires_at.timestamp() < 5
