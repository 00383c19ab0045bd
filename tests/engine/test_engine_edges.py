"""Engine edges on the in-process driver: packets, size limits, retention, engine errors,
cancel while others share a write, a run whose dead letter raced its lease."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver, FakeClock
from trigger_do import RunFailedError, RunState, task
from trigger_do.ports import OutMessage
from trigger_do.runs.index import RunIndexObject
from trigger_do.sdk.client import pop_client, push_client
from trigger_do.shared.messages import RunMessage


@pytest.fixture
def small(tmp_path: Path) -> Any:
    d = Driver(
        tmp_path / "small.db",
        packet_threshold=2000,
        inline_message_limit=500,
        payload_limit=50_000,
        flush_interval=0.001,
    )
    push_client(d.client)
    yield d
    pop_client(d.client)


async def test_large_payloads_and_outputs_go_through_packets(small: Driver, tmp_path: Path) -> None:
    big = {"blob": "x" * 10_000}
    medium = {"blob": "y" * 1000}  # over the inline message limit, under the packet one
    h_big = await t.echo.trigger(big)
    h_medium = await t.echo.trigger(medium)
    body = {r[0]: r[1] for r in small.sql.exec("SELECT id, body FROM queue_messages ORDER BY id")}
    assert all('"payload"' not in b for b in body.values())  # neither rides in the message
    packets = small.sql.exec("SELECT payload_packet FROM runs WHERE id = ?", h_big.id)[0][0]
    assert packets and (tmp_path / "packets" / packets).exists()
    await small.run_until_final([h_big.id, h_medium.id])
    assert await h_big.result() == big and await h_medium.result() == medium
    out_packet = small.sql.exec("SELECT output_packet FROM runs WHERE id = ?", h_big.id)[0][0]
    assert out_packet and (tmp_path / "packets" / out_packet).exists()
    assert (await h_big.status()).output == big


async def test_an_output_over_the_limit_fails_the_run(small: Driver) -> None:
    handle = await t.echo.trigger(["z" * 20_000, "z" * 20_000, "z" * 20_000][:2])
    await small.run_until_final([handle.id])
    assert await handle.result() == ["z" * 20_000] * 2  # 40 KB: under the 50 KB limit

    @task(id="edge-huge-output", retry={"max_attempts": 3, "initial_delay": "10ms"})
    async def huge(payload: Any) -> str:
        return "w" * 60_000

    small.consumer.tasks[huge.id] = huge
    failing = await huge.trigger()
    await small.run_until_final([failing.id])
    status = await failing.status()
    assert (status.state, status.attempt) == (RunState.FAILED, 1)  # not retried
    assert status.error is not None and "over the limit of 50000 bytes" in status.error["message"]


async def test_retention_purges_finished_runs(tmp_path: Path, clock: FakeClock) -> None:
    d = Driver(tmp_path / "r.db", clock=clock, retention=3600.0, packet_threshold=1000)
    push_client(d.client)
    try:
        old = await t.chunks.trigger({"dir": str(tmp_path), "chunks": 3, "chunk_seconds": 0})
        big = await t.echo.trigger("b" * 5000)
        await d.run_until_final([old.id, big.id])
        assert d.count("checkpoints") == 3 and len(list((tmp_path / "packets").rglob("*.json")))
        clock.advance(1800)
        young = await t.echo.trigger("young")
        await d.run_until_final([young.id])
        assert (await d.engine.housekeeping())["purged"] == 0
        clock.advance(1801)
        assert (await d.engine.housekeeping())["purged"] == 2
        assert [r[0] for r in d.sql.exec("SELECT id FROM runs")] == [young.id]
        assert d.count("checkpoints") + d.count("steps") + d.count("logs") == 0
        assert list((tmp_path / "packets").rglob("*.json")) == []
    finally:
        pop_client(d.client)


async def test_a_task_this_consumer_does_not_know_is_a_system_failure(driver: Driver) -> None:
    @task(id="edge-unserved")
    async def unserved(payload: Any) -> None:
        return None

    handle = await unserved.trigger()  # known to the producer, not to the consumer
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert status.state == RunState.SYSTEM_FAILURE and status.api_status == "SYSTEM_FAILURE"
    assert status.error is not None and "'edge-unserved' is not defined" in status.error["message"]
    with pytest.raises(RunFailedError):
        await handle.result()


async def test_malformed_and_stale_messages_are_dropped(driver: Driver) -> None:
    handle = await t.echo.trigger(1)
    await driver.platform.queue.send_all(
        [
            OutMessage({"not": "a run message"}),
            # a stale dispatch (older than the run's: a run's messages only ever carry its
            # dispatch at the time, and the run's own goes up with each)
            OutMessage(RunMessage(handle.id, "t-echo", 1, 0).to_body()),
        ]
    )
    await driver.run_until_final([handle.id])
    await driver.step()
    assert driver.count("queue_messages") == 0
    assert await handle.result() == 1


async def test_canceling_one_run_leaves_its_batch_mates_alone(
    driver: Driver, tmp_path: Path
) -> None:
    """Runs in one consumer share coalesced checkpoint writes; canceling one of them while
    it waits on such a write must not cancel the others."""
    dirs = [tmp_path / str(i) for i in range(4)]
    for d in dirs:
        d.mkdir()
    handles = [
        await t.chunks.trigger({"dir": str(d), "chunks": 400, "chunk_seconds": 0}) for d in dirs
    ]
    batch = asyncio.ensure_future(driver.step())
    while len(t.lines(dirs[0], "work")) < 50:
        await asyncio.sleep(0.005)
    assert await handles[0].cancel() is True
    await batch
    await driver.run_until_final([h.id for h in handles], timeout=30)
    states = [(await h.status()) for h in handles]
    assert states[0].state == RunState.CANCELED
    for s in states[1:]:
        assert (s.state, s.attempt) == (RunState.COMPLETED, 1), s


async def test_a_running_run_whose_message_was_lost_is_dispatched_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A consumer died holding a run, and the run's last message was dead-lettered while
    the dead consumer's lease still looked live (so the run was not crashed). Housekeeping
    must notice the lapsed lease and dispatch the run again, not leave it running forever."""
    d = Driver(tmp_path / "lost.db", clock=clock, lease_seconds=30.0, stale_after=60.0)
    push_client(d.client)
    try:
        handle = await t.echo.trigger("orphan")
        index = d.engine.index.on(handle.id)
        (decision,) = await index(
            RunIndexObject.start_many, [[handle.id, 1]], "dead", clock.now(), 30.0
        )
        assert decision["decision"] == "start"
        letter = {"run_id": handle.id, "task": "t-echo", "dispatch": 1, "body": "{}"}
        res = await index(
            RunIndexObject.dead_letter, [{**letter, "deliveries": 4, "reason": "x"}], clock.now()
        )
        assert res["crashed"] == []  # its lease looked live: not crashed
        d.sql.exec("DELETE FROM queue_messages")  # the message is gone
        clock.advance(400)
        await d.engine.housekeeping()
        await d.run_until_final([handle.id])
        status = await handle.status()
        assert (status.state, status.attempt) == (RunState.COMPLETED, 2)
    finally:
        pop_client(d.client)


async def test_a_run_continued_into_the_same_consumer_is_still_sliced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A continued run's next message can start in the consumer that continued it before
    that delivery has returned (a worker is woken by the commit). The older delivery's
    cleanup must leave the newer one's run alone: its slice, lease renewals and cancels go
    through it. (It did not: the second slice ran on, uncut, to the end of the run.)"""
    d = Driver(tmp_path / "slices.db", slice_seconds=0.3, lease_seconds=0.9, flush_interval=0.001)
    push_client(d.client)
    try:
        work = {"dir": str(tmp_path), "chunks": 300, "chunk_seconds": 0.01}  # 3 s of work
        handle = await t.chunks.trigger(work)
        recorded = d.consumer._record_all
        hold = asyncio.Event()

        async def record_then_hold(wave: Any) -> None:
            await recorded(wave)  # the continuation's message is sent: held after that
            await hold.wait()

        monkeypatch.setattr(d.consumer, "_record_all", record_then_hold)
        first = asyncio.ensure_future(d.step())
        while handle.id not in d.consumer.running:
            await asyncio.sleep(0.005)
        held = d.consumer.running[handle.id]
        while not (again := d.queue.receive(10)):  # the first slice ends, its run continued
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(d.consumer.handle_batch(again))
        while d.consumer.running.get(handle.id) is held:
            await asyncio.sleep(0.005)
        hold.set()
        await first  # the first delivery returns while the second runs the next slice
        await asyncio.wait_for(second, timeout=30)
        d.queue.settle(again)
        status = await handle.status()
        assert status.state == RunState.QUEUED, status  # cut by its own slice, continued
        assert len(status.checkpoints) < 300
        ((dispatch,),) = d.sql.exec("SELECT dispatch FROM runs WHERE id = ?", handle.id)
        assert dispatch == 3
        await d.run_until_final([handle.id], timeout=60)
        assert await handle.result() == {"chunks": 300, "attempt": 1, "download_calls": 1}
    finally:
        pop_client(d.client)
