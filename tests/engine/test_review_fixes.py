"""Regressions found in review: long delays, duplicate deliveries, sync tasks using ctx,
idempotency keys of tasks whose ids contain ':'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_do import RunContext, task
from trigger_do.ports import OutMessage
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.messages import RunMessage
from trigger_do.shared.states import RunState

from . import tasks_for_tests as t
from .driver import Driver, FakeClock

CALLS: list[str] = []


@task(id="rf-count")
async def count(payload: Any) -> str:
    CALLS.append(str(payload))
    return "ok"


@task(id="rf-sync-ctx")
def sync_ctx(payload: dict[str, Any], ctx: RunContext) -> int:
    ctx.logger.info("from a thread", n=payload["n"])
    ctx.metadata.set("n", payload["n"])
    ctx.checkpoint_sync("half", {"n": payload["n"]})
    ctx.progress_sync(0.5)
    return int(ctx.step_sync("double", lambda: payload["n"] * 2))


@task(id="rf:a")
async def colon_a(payload: Any) -> str:
    return "a"


@task(id="rf:a:b")
async def colon_ab(payload: Any) -> str:
    return "ab"


async def test_a_delay_far_past_the_queue_maximum_runs_when_due(tmp_path: Path) -> None:
    clock = FakeClock()
    d = Driver(tmp_path / "t.db", clock=clock, max_message_delay=3600.0)
    run = await d.engine.trigger(TriggerRequest(t.echo.id, "late", {"delay": "3d"}))
    hops = 0
    while (await d.engine.get_run(run.id))["state"] == RunState.DELAYED:
        nxt = d.sql.exec("SELECT min(visible_at), max(attempts) FROM queue_messages")[0]
        assert nxt[1] == 0, "a re-sent delayed message is a new one, not a retry"
        clock.t = max(clock.t, nxt[0])
        await d.step()
        hops += 1
        assert hops < 200
    assert await d.dead_letters() == 0
    row = await d.engine.get_run(run.id)
    assert row["state"] == "completed" and row["output"] == "late"
    assert hops >= 72  # one message an hour for three days


async def test_a_duplicate_in_one_batch_runs_once(tmp_path: Path) -> None:
    d = Driver(tmp_path / "t.db")
    CALLS.clear()
    run = await d.engine.trigger(TriggerRequest(count.id, "x"))
    body = RunMessage(run.id, count.id, 1).to_body()
    await d.platform.queue.send_all([OutMessage(body), OutMessage(body)])  # two duplicates
    batch = d.queue.receive(10)
    assert len(batch) == 3
    await d.consumer.handle_batch(batch)
    assert CALLS == ["x"]
    assert all(m.outcome == ("ack", 0.0) for m in batch)


async def test_sync_tasks_can_use_ctx(tmp_path: Path) -> None:
    d = Driver(tmp_path / "t.db")
    run = await d.engine.trigger(TriggerRequest(sync_ctx.id, {"n": 21}))
    await d.run_until_final([run.id])
    row = await d.engine.get_run(run.id)
    assert row["state"] == "completed", row["error"]
    assert row["output"] == 42 and row["metadata"] == {"n": 21}
    assert [c["name"] for c in row["checkpoints"]] == ["half"]
    logs = await d.engine.logs(run.id)
    assert logs[0]["message"] == "from a thread" and logs[0]["extras"] == {"n": 21}


async def test_idempotency_keys_do_not_collide_across_tasks(tmp_path: Path) -> None:
    d = Driver(tmp_path / "t.db")
    a = await d.engine.trigger(TriggerRequest(colon_a.id, 1, {"idempotency_key": "b:k"}))
    ab = await d.engine.trigger(TriggerRequest(colon_ab.id, 1, {"idempotency_key": "k"}))
    assert a.id != ab.id and not ab.cached


async def _slow_success(payload: Any, output: Any) -> None:
    import asyncio

    await asyncio.sleep(1.2)  # outlives the time slice


@task(id="rf-slow-hook", on_success=_slow_success)
async def slow_hook(payload: Any) -> str:
    CALLS.append("ran")
    return "done"


async def test_a_slice_ending_during_a_hook_does_not_lose_the_outcome(tmp_path: Path) -> None:
    d = Driver(tmp_path / "t.db", slice_seconds=0.2, lease_seconds=1.5)
    CALLS.clear()
    run = await d.engine.trigger(TriggerRequest(slow_hook.id, None))
    await d.run_until_final([run.id])
    row = await d.engine.get_run(run.id)
    assert (row["state"], row["attempt"], row["output"]) == ("completed", 1, "done")
    assert CALLS == ["ran"]  # not continued and run again
