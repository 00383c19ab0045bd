"""The SDK over the in-process driver (real SQLite, the real consumer, one batch at a time):
sync tasks, hooks, aborts, max_duration, models, metadata and progress, steps, sync twins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import trigger_do
from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver
from trigger_do import RunFailedError, RunState


async def test_trigger_result_and_status(driver: Driver) -> None:
    handle = await t.echo.trigger({"hello": "world"}, tags=["a", "b"], metadata={"k": 1})
    assert (await handle.status()).state == RunState.QUEUED
    await driver.run_until_final([handle.id])
    assert await handle.result(timeout=5) == {"hello": "world"}
    status = await handle.status()
    assert status.state == RunState.COMPLETED and status.api_status == "COMPLETED"
    assert status.attempt == 1
    assert status.tags == ["a", "b"]
    assert status.metadata == {"k": 1}
    assert status.progress == 1.0
    assert status.started_at is not None and status.finished_at is not None
    assert status.created_at <= status.started_at <= status.finished_at
    # a run with no checkpoints, steps or logs gets no run object
    assert driver.count("checkpoints") + driver.count("logs") + driver.count("steps") == 0


async def test_result_times_out_while_pending(driver: Driver) -> None:
    handle = await t.echo.trigger(1)
    with pytest.raises(TimeoutError):
        await handle.result(timeout=0.05)


async def test_trigger_and_wait(driver: Driver) -> None:
    waiting = asyncio.ensure_future(t.echo.trigger_and_wait([1, 2], timeout=10))
    while not driver.count("runs"):
        await asyncio.sleep(0.005)
    (run_id,) = [r[0] for r in driver.sql.exec("SELECT id FROM runs")]
    await driver.run_until_final([run_id])
    assert await waiting == [1, 2]


async def test_sync_task_runs_off_the_event_loop(driver: Driver) -> None:
    handle = await t.sync_double.trigger({"n": 21})
    await driver.run_until_final([handle.id])
    out = await handle.result()
    assert out["double"] == 42
    assert out["thread"].startswith("trigger-do-sync")


async def test_hooks_run_around_the_run(driver: Driver) -> None:
    ok = await t.hooked.trigger({})
    await driver.run_until_final([ok.id])
    assert await ok.result() == "done"
    assert t.EVENTS == [("start", ok.id), ("success", "done")]
    t.EVENTS.clear()
    bad = await t.hooked.trigger({"fail": True})
    await driver.run_until_final([bad.id])
    assert t.EVENTS[0] == ("start", bad.id)
    assert t.EVENTS[1][0] == "failure" and "the run failed" in t.EVENTS[1][1]
    assert (await bad.status()).state == RunState.FAILED


@pytest.mark.parametrize(("fail", "state"), [(False, "completed"), (True, "failed")])
async def test_a_failing_hook_is_logged_and_the_outcome_stands(
    driver: Driver, fail: bool, state: str
) -> None:
    handle = await t.bad_hooks.trigger({"fail": fail})
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert status.state == state
    assert status.attempt == 1
    if fail:
        assert status.error is not None and status.error["message"] == "the run failed"
    else:
        assert await handle.result() == "outcome stands"
    messages = [r.message async for r in handle.logs(follow=False)]
    hook_errors = [m for m in messages if "hook _explode failed" in m]
    assert len(hook_errors) == 2, messages  # on_start, then on_success or on_failure
    assert all("the hook exploded" in m for m in hook_errors)


async def test_abort_fails_without_retry(driver: Driver) -> None:
    handle = await t.abort.trigger()
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.FAILED, 1)
    assert status.error is not None and status.error["name"] == "AbortTaskRunError"
    with pytest.raises(RunFailedError) as err:
        await handle.result()
    assert err.value.state == "failed" and "no point in retrying" in str(err.value)


async def test_max_duration_is_retried(driver: Driver) -> None:
    handle = await t.slow.trigger({"fast_on": 2})
    await driver.run_until_final([handle.id])
    assert await handle.result() == "fast"
    assert (await handle.status()).attempt == 2


async def test_max_duration_on_the_last_attempt_is_timed_out(driver: Driver) -> None:
    handle = await t.slow.trigger({})
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.TIMED_OUT, 2)
    assert status.api_status == "TIMED_OUT"
    assert status.error is not None and status.error["name"] == "TimeoutError"
    assert "max_duration" in status.error["message"]
    with pytest.raises(RunFailedError) as err:
        await handle.result()
    assert err.value.state == "timed_out"


@pytest.mark.parametrize("max_duration", [None, "5s"])
async def test_a_timeout_error_the_task_raises_is_an_ordinary_failure(
    driver: Driver, max_duration: str | None
) -> None:
    options = {} if max_duration is None else {"max_duration": max_duration}
    handle = await t.upstream_timeout.trigger({}, **options)
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.FAILED, 2)  # retried, then failed
    assert status.error is not None and status.error["name"] == "TimeoutError"
    assert status.error["message"] == "the upstream API did not answer (attempt 2)"


async def test_max_duration_and_max_attempts_as_trigger_options(
    driver: Driver, tmp_path: Path
) -> None:
    handle = await t.sleeper.trigger(
        {"dir": str(tmp_path), "seconds": 5}, max_duration="100ms", max_attempts=1
    )
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.TIMED_OUT, 1)
    flaky = await t.flaky.trigger({"succeed_on": 3}, max_attempts=1)
    await driver.run_until_final([flaky.id])
    assert ((await flaky.status()).state, (await flaky.status()).attempt) == ("failed", 1)


async def test_pydantic_payloads_and_outputs(driver: Driver) -> None:
    from_dict = await t.model_task.trigger({"order_id": "o1", "quantity": 4})
    from_model = await t.model_task.trigger(t.Order(order_id="o2", quantity=2))
    await driver.run_until_final([from_dict.id, from_model.id])
    assert await from_dict.result() == {"order_id": "o1", "total": 10.0, "payload_type": "Order"}
    assert await from_model.result() == {"order_id": "o2", "total": 5.0, "payload_type": "Order"}
    assert (await from_model.status()).output == {
        "order_id": "o2",
        "total": 5.0,
        "payload_type": "Order",
    }


async def test_metadata_and_progress_are_visible_while_running(
    driver: Driver, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    handle = await t.meta.trigger({"release": str(release)}, metadata={"owner": "me"})
    batch = asyncio.ensure_future(driver.step())
    try:
        for _ in range(500):
            status = await handle.status()
            if status.progress == 0.5 and status.metadata.get("stage") == "halfway":
                break
            await asyncio.sleep(0.01)
        assert status.state == RunState.RUNNING
        assert status.progress == 0.5
        assert status.metadata == {"owner": "me", "stage": "halfway", "rows": 21}
    finally:
        release.touch()
        await batch
    final = await handle.status()
    assert final.state == RunState.COMPLETED
    assert final.metadata == {"owner": "me", "stage": "done", "rows": 21}
    assert final.progress == 1.0


async def test_steps_are_not_rerun_on_later_attempts(driver: Driver, tmp_path: Path) -> None:
    handle = await t.steps.trigger({"dir": str(tmp_path)})
    await driver.run_until_final([handle.id])
    out = await handle.result()
    assert out == {"charged": 1, "notified": {"sent": 1}, "attempt": 3}
    assert t.lines(tmp_path, "charge") == ["1"]  # the side effect happened once
    assert t.lines(tmp_path, "notify") == ["1"]
    rows = driver.sql.exec("SELECT name, attempt FROM steps WHERE run_id = ?", handle.id)
    assert sorted(rows) == [("charge", 1), ("notify", 1)]


async def test_checkpoints_are_in_status_and_context(driver: Driver, tmp_path: Path) -> None:
    handle = await t.chunks.trigger({"dir": str(tmp_path), "chunks": 5, "chunk_seconds": 0})
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert [c.name for c in status.checkpoints] == [f"chunk-{i}" for i in range(5)]
    assert status.checkpoints[-1].data == {"next": 5}
    assert {c.attempt for c in status.checkpoints} == {1}


async def test_trigger_by_id_and_batch_by_id(driver: Driver) -> None:
    handle = await trigger_do.tasks.trigger("t-echo", {"x": 1})
    batch = await trigger_do.tasks.batch_trigger("t-echo", [1, 2, 3])
    await driver.run_until_final([handle.id, *(r.id for r in batch.runs)])
    assert await handle.result() == {"x": 1}
    assert await batch.results() == [1, 2, 3]
    assert (await trigger_do.tasks.retrieve(handle.id)).state == RunState.COMPLETED


async def test_sync_twins(driver: Driver) -> None:
    """The `_sync` calls work from code outside an event loop (here: a plain thread)."""
    handle = await asyncio.to_thread(t.echo.trigger_sync, {"n": 1})
    batch = await asyncio.to_thread(t.echo.batch_trigger_sync, ["a", "b"])
    by_id = await asyncio.to_thread(trigger_do.tasks.trigger_sync, "t-sync", {"n": 2})
    await driver.run_until_final([handle.id, by_id.id, *(r.id for r in batch.runs)])
    assert (await asyncio.to_thread(handle.status_sync)).state == RunState.COMPLETED
    assert await asyncio.to_thread(handle.result_sync, 5) == {"n": 1}
    assert await asyncio.to_thread(batch.results_sync, 5) == ["a", "b"]
    assert (await asyncio.to_thread(by_id.result_sync, 5))["double"] == 4
    assert await asyncio.to_thread(handle.cancel_sync) is False
    # inside a running loop a sync twin refuses, with a hint
    with pytest.raises(RuntimeError, match="use the async call"):
        t.echo.trigger_sync(1)
