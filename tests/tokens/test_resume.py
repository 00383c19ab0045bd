"""The completion hook by itself (the waits are built elsewhere): every road that completes a
token (the API call, the callback's same call, a timeout, a token already complete when the
wait registers, a redelivery after a crash) hands each waiting waitpoint exactly the item
the waits' `complete_items` takes, and that item replays as the run's `WaitResult`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.engine.driver import Driver, FakeClock
from trigger_do.errors import TriggerDoError, WaitpointTimeoutError
from trigger_do.waitpoints.resume import (
    TOKEN_KIND,
    WaitResult,
    completion_items,
    result_of,
    resume_hook,
)
from trigger_do.waitpoints.service import TokenCompletion

T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC).timestamp()


class Waits:
    """Stands in for `Waits.complete` (not built in this branch): records the items, each
    waitpoint's first one only, as `complete_items` writes an item once."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls = 0

    async def complete(self, items: list[dict[str, Any]]) -> int:
        self.calls += 1
        fresh = [i for i in items if i["waitpoint"] not in self.items]
        for i in fresh:
            self.items[i["waitpoint"]] = i
        return len(fresh)


@pytest.fixture
def waits(fake_driver: Driver, clock: FakeClock) -> Waits:
    clock.t = T0
    w = Waits()
    fake_driver.engine.tokens.hooks.append(resume_hook(w.complete))
    return w


def _replayed(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the waits' `waits_of` hands it back on replay (`error` decoded)."""
    import json

    return {**item, "error": json.loads(item["error"]) if item["error"] else None}


async def test_completed_token_resumes_its_waiters(fake_driver: Driver, waits: Waits) -> None:
    tokens = fake_driver.engine.tokens
    token, _ = await tokens.create()
    await tokens.wait_on(token["id"], "run_a:1")
    await tokens.wait_on(token["id"], "run_b:3")
    await tokens.complete(token["id"], {"approved": True})
    assert waits.items["run_a:1"] == {
        "waitpoint": "run_a:1",
        "idx": 0,
        "run_id": token["id"],
        "state": "completed",
        "output": '{"approved":true}',
        "output_packet": None,
        "error": None,
    }
    assert set(waits.items) == {"run_a:1", "run_b:3"}
    assert result_of(_replayed(waits.items["run_b:3"])) == WaitResult(True, {"approved": True})
    await tokens.complete(token["id"], "again")  # nothing more is told
    assert waits.calls == 1


async def test_timeout_resumes_with_the_error(
    fake_driver: Driver, clock: FakeClock, waits: Waits
) -> None:
    tokens = fake_driver.engine.tokens
    token, _ = await tokens.create(timeout="5m")
    await tokens.wait_on(token["id"], "run_a:2")
    clock.t = T0 + 300
    await fake_driver.engine.fire_due_timers()
    item = waits.items["run_a:2"]
    assert item["state"] == "timed_out" and item["output"] is None
    result = result_of(_replayed(item))
    assert not result.ok and result.error == {
        "code": "TRIGGER_WAITPOINT_TIMEOUT",
        "message": "Waitpoint timed out at 2026-05-04T08:05:00.000Z",
    }
    with pytest.raises(WaitpointTimeoutError, match="timed out at 2026-05-04T08:05") as info:
        result.unwrap()
    assert isinstance(info.value, TriggerDoError) and info.value.error == result.error


async def test_a_token_complete_before_the_wait(fake_driver: Driver, waits: Waits) -> None:
    """The wait registers after the completion: `wait_on` answers at once (the run completes
    its own waitpoint with it), and the hook is not called for it."""
    tokens = fake_driver.engine.tokens
    token, _ = await tokens.create(idempotency_key="k")
    await tokens.complete(token["id"], [1, 2])
    done = await tokens.wait_on(token["id"], "run_c:1")
    assert done is not None
    (item,) = completion_items([done])
    assert result_of(_replayed(item)).unwrap() == [1, 2]
    assert waits.items == {}


async def test_a_redelivery_is_a_no_op_for_the_waits(
    fake_driver: Driver, clock: FakeClock, waits: Waits
) -> None:
    tokens = fake_driver.engine.tokens
    token, _ = await tokens.create()
    await tokens.wait_on(token["id"], "run_d:1")
    crash = [True]

    async def dies_once(done: list[TokenCompletion]) -> None:
        if crash.pop() if crash else False:
            raise RuntimeError("the process died after telling the waits")

    tokens.hooks.append(dies_once)  # after the waits' hook: they were told, not forgotten
    with pytest.raises(RuntimeError):
        await tokens.complete(token["id"], "ok")
    clock.t += 120
    assert await tokens.redeliver() == 1  # told again, written once
    assert waits.calls == 2 and list(waits.items) == ["run_d:1"]
    assert await tokens.redeliver() == 0


def test_kind_name() -> None:
    assert TOKEN_KIND == "token"
    assert WaitResult(True, 3).unwrap() == 3
