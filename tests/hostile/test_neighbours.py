"""One run never harms another: whatever a run raises, logs, stores or sets, its neighbours in
the same consumer batch (and the same coalesced writes) run once and finish untouched.
In-process driver: one batch of 50 noop runs plus one poison run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.driver import Driver
from tests.engine.tasks_for_tests import lines
from tests.hostile import poison
from trigger_do import RunState
from trigger_do.runs.index import RunIndexObject
from trigger_do.sdk.client import pop_client, push_client
from trigger_do.shared.limits import MAX_ERROR_MESSAGE_CHARS

NEIGHBOURS = 50


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    d = Driver(tmp_path / "h.db", lease_seconds=5.0, flush_interval=0.002)
    push_client(d.client)
    yield d
    pop_client(d.client)


async def run_beside_neighbours(
    driver: Driver, tmp_path: Path, poison_task: Any
) -> tuple[dict[str, Any], list[str]]:
    """One batch: the poison run amid `NEIGHBOURS` noop runs. Returns the poison run's row
    and the noop runs' ids; asserts every neighbour ran exactly once and completed."""
    items = [{"dir": str(tmp_path)} for _ in range(NEIGHBOURS)]
    noops = await poison.noop.batch_trigger(items[: NEIGHBOURS // 2])
    bad = await poison_task.trigger({})
    more = await poison.noop.batch_trigger(items[NEIGHBOURS // 2 :])
    ids = [r.id for r in noops.runs] + [r.id for r in more.runs]
    await driver.run_until_final([*ids, bad.id])
    rows = await driver.engine.get_runs(ids)
    assert {(r["state"], r["attempt"]) for r in rows.values()} == {("completed", 1)}
    executions = Counter(line.split()[0] for line in lines(tmp_path, "executions"))
    assert executions == Counter(dict.fromkeys(ids, 1))  # each ran once
    return await driver.engine.get_run(bad.id), ids


async def test_an_exception_with_a_3mb_message(driver: Driver, tmp_path: Path) -> None:
    row, _ = await run_beside_neighbours(driver, tmp_path, poison.raise_big)
    assert row["state"] == "failed" and row["error"]["name"] == "RuntimeError"
    message = row["error"]["message"]
    assert len(message) < MAX_ERROR_MESSAGE_CHARS + 100 and "characters truncated" in message
    logs = await driver.engine.logs(row["id"])
    assert "attempt 1 failed: RuntimeError" in logs[-1]["message"]  # its own log, truncated


@pytest.mark.parametrize(
    ("task", "what"),
    [
        (poison.log_big, "log line"),
        (poison.metadata_big, "metadata"),
        (poison.checkpoint_big, "checkpoint 'big'"),
    ],
)
async def test_a_3mb_log_line_metadata_or_checkpoint_fails_only_its_run(
    driver: Driver, tmp_path: Path, task: Any, what: str
) -> None:
    row, _ = await run_beside_neighbours(driver, tmp_path, task)
    assert row["state"] == "failed" and row["error"]["name"] == "PayloadTooLargeError"
    assert row["error"]["message"].startswith(f"{what} is 3000")  # it says what, and why
    assert "over the limit" in row["error"]["message"]


@pytest.mark.parametrize("task", [poison.exits, poison.interrupts, poison.sync_exits])
async def test_system_exit_and_keyboard_interrupt_are_the_runs_failure(
    driver: Driver, tmp_path: Path, task: Any
) -> None:
    row, _ = await run_beside_neighbours(driver, tmp_path, task)
    expected = "KeyboardInterrupt" if task is poison.interrupts else "SystemExit"
    assert row["state"] == "failed" and row["error"]["name"] == expected


async def test_an_exception_whose_str_raises_is_retried_like_any_other(
    driver: Driver, tmp_path: Path
) -> None:
    row, _ = await run_beside_neighbours(driver, tmp_path, poison.bad_str)
    assert (row["state"], row["attempt"]) == ("failed", 2)  # max_attempts held
    assert row["error"]["name"] == "BadStr"
    assert "str() failed" in row["error"]["message"]


async def test_a_failed_coalesced_write_falls_back_to_one_by_one(
    driver: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever makes a coalesced outcome write fail (here: the index refuses one run's
    outcome), the batch's other outcomes are written and only that run is affected."""
    culprit: list[str] = []
    real = RunIndexObject.finish_many

    def finish_many(self: RunIndexObject, outcomes: list[dict[str, Any]], *a: Any) -> Any:
        if any(o["id"] in culprit for o in outcomes):
            raise ValueError("this outcome cannot be written")
        return real(self, outcomes, *a)

    monkeypatch.setattr(RunIndexObject, "finish_many", finish_many)
    runs = await poison.noop.batch_trigger([{"dir": str(tmp_path)} for _ in range(NEIGHBOURS)])
    ids = [r.id for r in runs.runs]
    culprit.append(ids[7])
    await driver.step()  # one batch: every run executes once, one outcome write
    states = await driver.engine.get_states(ids)
    done = [i for i in ids if states[i][0] == RunState.COMPLETED]
    assert done == [i for i in ids if i != ids[7]]
    assert states[ids[7]][0] == RunState.RUNNING  # its lease lapses; it is redelivered
    executions = Counter(line.split()[0] for line in lines(tmp_path, "executions"))
    assert executions == Counter(dict.fromkeys(ids, 1))
