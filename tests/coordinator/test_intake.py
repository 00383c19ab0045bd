"""A key's backlog lines up at its coordinator when triggered (coordinator/intake.py):
only the heads of the lines reach the run queue, the rest start on the slots their
predecessors free; what is not lined up goes to the run queue as before.

In one process on a real database with a fake clock (the consumer is driven by hand)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.coordinator.test_redispatch_and_grants import GATE, Env
from trigger_do.coordinator.coordinator import CoordinatorObject
from trigger_do.coordinator.intake import BACKLOG
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.serialization import loads

N = BACKLOG + 1  # runs of one key of rd-one (limit 1): a backlog


@pytest.fixture
def env(tmp_path: Path) -> Env:
    GATE["open"] = asyncio.Event()
    return Env(tmp_path)


def _queued(env: Env) -> list[dict[str, Any]]:
    """The run queue's run messages (visible or not; not the coordinators' wake-ups)."""
    bodies = [loads(b) for (b,) in env.sql.exec("SELECT body FROM queue_messages ORDER BY id")]
    return [b for b in bodies if "run_id" in b]


async def test_a_backlog_waits_in_its_line_and_runs_in_order(env: Env) -> None:
    runs = await env.engine.batch_trigger([TriggerRequest("rd-one", i) for i in range(N)])
    free = await env.engine.trigger(TriggerRequest("rd-free", "x"))
    queued = _queued(env)
    # the head of rd-one's line on its reserved slot, and the unlimited run: nothing else
    assert [(m["run_id"], m.get("h")) for m in queued] == [(runs.runs[0].id, 1), (free.id, None)]
    assert (await env.engine.get_queue("task/rd-one"))["parked"] == N  # (the head as well)
    assert env.sql.exec("SELECT state FROM coord_slots") == [("reserved",)]  # on its way
    work = asyncio.ensure_future(env.consumer.handle_batch(env.queue.receive(10)))
    await env.settled(lambda: env.started() == 2)
    GATE["open"].set()  # each release grants the next run of the line to this consumer
    await env.settled(lambda: env.started() == N + 1)
    await work
    await env.consumer.gate.drain()
    starts = env.sql.exec(
        "SELECT id FROM runs WHERE task = 'rd-one' ORDER BY started_at, batch_index"
    )
    assert [r[0] for r in starts] == [r.id for r in runs.runs]  # in line order
    assert len(_queued(env)) == 2  # none but the first went through the run queue
    await env.consumer.shutdown(1.0)


async def test_a_small_backlog_goes_to_the_run_queue(env: Env) -> None:
    """Up to `BACKLOG` times its limit, a key's runs are cheaper claimed: its slots turn
    over while the claims are made, and few of them park."""
    runs = await env.engine.batch_trigger([TriggerRequest("rd-one", i) for i in range(BACKLOG)])
    assert [m["run_id"] for m in _queued(env)] == [r.id for r in runs.runs]
    assert (await env.engine.get_queue("task/rd-one"))["parked"] == 0


async def test_delayed_runs_and_runs_sent_to_another_queue_go_to_the_run_queue(
    env: Env,
) -> None:
    delayed = await env.engine.batch_trigger(
        [TriggerRequest("rd-one", i, {"delay": "1h"}) for i in range(N)]
    )
    elsewhere = await env.engine.batch_trigger(
        [TriggerRequest("rd-one", i, {"queue": "rd-shared"}) for i in range(N)]
    )
    queued = {m["run_id"]: m for m in _queued(env)}
    assert set(queued) == {r.id for r in delayed.runs + elsewhere.runs}
    assert not any(m.get("h") for m in queued.values())  # their consumers ask
    assert (await env.engine.get_queue("task/rd-one"))["parked"] == 0


async def test_a_coordinator_that_cannot_be_asked_leaves_the_runs_to_their_consumer(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: CoordinatorObject, *args: Any) -> Any:
        raise RuntimeError("coordinator down")

    monkeypatch.setattr(CoordinatorObject, "enqueue", broken)
    runs = await env.engine.batch_trigger([TriggerRequest("rd-one", i) for i in range(N)])
    queued = _queued(env)
    assert [m["run_id"] for m in queued] == [r.id for r in runs.runs]  # nothing lost
    monkeypatch.undo()
    work = asyncio.ensure_future(env.consumer.handle_batch(env.queue.receive(N)))
    await env.settled(lambda: env.started() == 1)  # the consumer's coordinator call decides
    assert (await env.engine.get_queue("task/rd-one"))["parked"] == N - 1
    GATE["open"].set()
    await env.settled(lambda: env.started() == N)
    await work
    await env.consumer.shutdown(1.0)


async def test_a_rate_limited_backlog_is_handed_back_a_window_at_a_time(env: Env) -> None:
    """rd-rated starts 5 runs a second per account: a batch of more than 64 times that for
    one account lines up, 5 heads are sent, and the coordinator's alarm (a wake-up
    message) hands back the next 5 once the window has room again."""
    n = BACKLOG * 5 + 1
    runs = await env.engine.batch_trigger(
        [TriggerRequest("rd-rated", {"a": "acct-1"}) for _ in range(n)]
    )
    ids = [r.id for r in runs.runs]
    assert [m["run_id"] for m in _queued(env)] == ids[:5]
    wakes = [b for (b,) in env.sql.exec("SELECT body FROM queue_messages") if "wake" in b]
    assert len(wakes) == 1  # the coordinator's alarm, for when the window opens
    work = asyncio.ensure_future(env.consumer.handle_batch(env.queue.receive(5)))
    await env.settled(lambda: env.started() == 5)  # their reservations turn into starts
    env.clock.t += 1.01
    woke = await env.consumer.gate.coordinators("task/rd-rated")(
        CoordinatorObject.wake, env.clock.now(), 0
    )
    assert [b["run_id"] for b in woke["handback"]] == ids[5:10]  # the next five, in order
    GATE["open"].set()
    await work
    await env.consumer.shutdown(1.0)
