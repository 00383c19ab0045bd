"""Delay, ttl, idempotency keys, cancel in each waiting state and batches, on the
in-process driver with a fake clock: no waiting, no sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver, FakeClock
from trigger_do import BatchItem, RunFailedError, RunState

# --- delay -------------------------------------------------------------------------------------


async def test_delay_runs_after_not_before(fake_driver: Driver, clock: FakeClock) -> None:
    handle = await t.echo.trigger("later", delay="1m")
    status = await handle.status()
    assert status.state == RunState.DELAYED and status.api_status == "DELAYED"
    assert status.delay_until is not None
    due = status.delay_until.timestamp()
    assert due == pytest.approx(clock.now() + 60)
    clock.advance(59)
    assert await fake_driver.step() == []  # not delivered before it is due
    assert (await handle.status()).state == RunState.DELAYED
    clock.advance(1.5)
    assert len(await fake_driver.step()) == 1
    status = await handle.status()
    assert status.state == RunState.COMPLETED
    assert status.started_at is not None and status.started_at.timestamp() >= due


async def test_delay_until_a_datetime(fake_driver: Driver, clock: FakeClock) -> None:
    when = datetime.fromtimestamp(clock.now(), UTC) + timedelta(hours=2)
    handle = await t.echo.trigger(1, delay=when)
    assert (await handle.status()).delay_until == when
    clock.advance(3600)
    assert await fake_driver.step() == []
    clock.advance(3601)
    await fake_driver.run_until_final([handle.id])
    status = await handle.status()
    assert status.started_at is not None and status.started_at >= when


async def test_delay_beyond_the_queues_maximum(tmp_path: Path, clock: FakeClock) -> None:
    """A delay past the queue's longest (12 h on Cloudflare) is looked at again until due."""
    from trigger_do.sdk.client import pop_client, push_client

    d = Driver(tmp_path / "long.db", clock=clock, max_message_delay=100.0)
    push_client(d.client)
    try:
        handle = await t.echo.trigger(1, delay="250s")
        clock.advance(101)
        assert len(await d.step()) == 1  # delivered early: put back, not started
        assert (await handle.status()).state == RunState.DELAYED
        await d.run_until_final([handle.id])
        status = await handle.status()
        assert status.started_at is not None
        assert status.started_at.timestamp() >= status.created_at.timestamp() + 250
    finally:
        pop_client(d.client)


# --- ttl ---------------------------------------------------------------------------------------


async def test_ttl_expires_a_run_not_started_in_time(fake_driver: Driver, clock: FakeClock) -> None:
    late = await t.echo.trigger("late", ttl="10s")
    clock.advance(11)
    await fake_driver.run_until_final([late.id])
    status = await late.status()
    assert status.state == RunState.EXPIRED and status.api_status == "EXPIRED"
    assert status.started_at is None and status.attempt == 0
    with pytest.raises(RunFailedError) as err:
        await late.result()
    assert err.value.state == "expired"


async def test_ttl_counts_from_the_end_of_the_delay(fake_driver: Driver, clock: FakeClock) -> None:
    handle = await t.echo.trigger("on time", ttl="10s", delay="1m")
    clock.advance(65)  # past created + ttl, within delay + ttl
    await fake_driver.run_until_final([handle.id])
    assert await handle.result() == "on time"


async def test_housekeeping_expires_runs_nobody_delivered(
    fake_driver: Driver, clock: FakeClock
) -> None:
    handle = await t.echo.trigger("late", ttl="5s")
    clock.advance(6)
    totals = await fake_driver.engine.housekeeping()
    assert totals["expired"] == 1
    assert (await handle.status()).state == RunState.EXPIRED
    await fake_driver.step()  # its message is then skipped
    assert fake_driver.count("queue_messages") == 0


async def test_a_started_run_does_not_expire(fake_driver: Driver, clock: FakeClock) -> None:
    handle = await t.flaky.trigger({"succeed_on": 2}, ttl="1s")
    await fake_driver.step()
    assert (await handle.status()).state == RunState.WAITING_FOR_RETRY
    clock.advance(5)
    assert (await fake_driver.engine.housekeeping())["expired"] == 0
    await fake_driver.run_until_final([handle.id])
    assert await handle.result() == 2


# --- idempotency -------------------------------------------------------------------------------


async def test_same_key_same_run_until_its_ttl(fake_driver: Driver, clock: FakeClock) -> None:
    first = await t.echo.trigger(1, idempotency_key="order-1", idempotency_key_ttl="1m")
    again = await t.echo.trigger(2, idempotency_key="order-1")
    assert again.id == first.id and again.is_cached and not first.is_cached
    other_task = await t.sync_double.trigger({"n": 1}, idempotency_key="order-1")
    assert other_task.id != first.id  # keys are per task
    clock.advance(61)
    fresh = await t.echo.trigger(3, idempotency_key="order-1")
    assert fresh.id != first.id and not fresh.is_cached
    assert fake_driver.count("runs", "task = 't-echo'") == 2
    await fake_driver.run_until_final([first.id, fresh.id])
    assert await first.result() == 1 and await fresh.result() == 3
    assert (await first.status()).idempotency_key == "order-1"


async def test_concurrent_triggers_with_one_key(fake_driver: Driver) -> None:
    handles = await asyncio.gather(
        *(t.echo.trigger(i, idempotency_key="same") for i in range(20)),
        *(asyncio.to_thread(t.echo.trigger_sync, i, idempotency_key="same") for i in range(5)),
    )
    assert len({h.id for h in handles}) == 1
    assert sum(not h.is_cached for h in handles) == 1
    assert fake_driver.count("runs") == 1 and fake_driver.count("queue_messages") == 1


async def test_batch_idempotency_key(fake_driver: Driver) -> None:
    one = await t.echo.batch_trigger([1, 2, 3], idempotency_key="b-1")
    two = await t.echo.batch_trigger([4, 5, 6], idempotency_key="b-1")
    assert two.id == one.id and two.is_cached
    assert [r.id for r in two.runs] == [r.id for r in one.runs]
    assert fake_driver.count("runs") == 3


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_a_queued_run(fake_driver: Driver) -> None:
    handle = await t.echo.trigger(1)
    assert await handle.cancel() is True
    status = await handle.status()
    assert status.state == RunState.CANCELED and status.finished_at is not None
    await fake_driver.step()  # its message is delivered and skipped
    status = await handle.status()
    assert (status.state, status.attempt, status.started_at) == (RunState.CANCELED, 0, None)
    assert fake_driver.count("queue_messages") == 0
    with pytest.raises(RunFailedError) as err:
        await handle.result()
    assert err.value.state == "canceled"


async def test_cancel_a_delayed_run(fake_driver: Driver, clock: FakeClock) -> None:
    handle = await t.echo.trigger(1, delay="1h")
    assert await handle.cancel() is True
    clock.advance(3601)
    await fake_driver.step()
    status = await handle.status()
    assert (status.state, status.attempt, status.started_at) == (RunState.CANCELED, 0, None)


async def test_cancel_a_run_waiting_for_retry(fake_driver: Driver, clock: FakeClock) -> None:
    handle = await t.flaky.trigger({"succeed_on": 2})
    await fake_driver.step()
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.WAITING_FOR_RETRY, 1)
    assert status.api_status == "QUEUED"
    assert await handle.cancel() is True
    clock.advance(60)
    await fake_driver.step()
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.CANCELED, 1)
    checkpoints = fake_driver.sql.exec("SELECT data FROM checkpoints WHERE run_id = ?", handle.id)
    assert checkpoints == [("1",)]  # attempt 2 never ran


async def test_cancel_a_finished_run_returns_false(fake_driver: Driver) -> None:
    handle = await t.echo.trigger(1)
    await fake_driver.run_until_final([handle.id])
    assert await handle.cancel() is False
    assert (await handle.status()).state == RunState.COMPLETED


# --- batches -----------------------------------------------------------------------------------


async def test_batch_items_with_their_own_options(fake_driver: Driver, clock: FakeClock) -> None:
    batch = await t.echo.batch_trigger(
        [
            "plain",
            BatchItem("tagged", tags=["vip"], metadata={"n": 1}),
            BatchItem("delayed", delay="1m"),
            BatchItem("keyed", idempotency_key="k1"),
        ]
    )
    assert len(batch) == 4 and batch.id.startswith("batch_")
    states = [(await r.status()).state for r in batch.runs]
    assert states == ["queued", "queued", "delayed", "queued"]
    assert (await batch.runs[1].status()).tags == ["vip"]
    assert (await batch.runs[1].status()).batch_id == batch.id
    await fake_driver.run_until_final([r.id for r in batch.runs])
    assert await batch.results() == ["plain", "tagged", "delayed", "keyed"]


async def test_batch_results_raise_for_the_first_failed_run(fake_driver: Driver) -> None:
    batch = await t.hooked.batch_trigger([{}, {"fail": True}, {}])
    await fake_driver.run_until_final([r.id for r in batch.runs])
    with pytest.raises(RunFailedError) as err:
        await batch.results()
    assert err.value.run_id == batch.runs[1].id
