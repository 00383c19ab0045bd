"""Every bad input gets a clear error naming what is wrong, and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver
from trigger_do import (
    BatchItem,
    PayloadTooLargeError,
    PayloadValidationError,
    Retry,
    TaskDefinitionError,
    UnknownTaskError,
    task,
    tasks,
)
from trigger_do.errors import InvalidDurationError
from trigger_do.sdk.client import pop_client, push_client

NOTHING = {"runs": 0, "queue_messages": 0, "batches": 0, "idempotency": 0}


async def _noop(payload: Any) -> None:
    return None


# --- at trigger time ---------------------------------------------------------------------------


async def test_unknown_task(driver: Driver) -> None:
    with pytest.raises(UnknownTaskError, match="'no-such-task'"):
        await tasks.trigger("no-such-task", {})
    assert driver.written() == NOTHING


async def test_payload_failing_its_schema_names_the_field(driver: Driver) -> None:
    with pytest.raises(PayloadValidationError) as err:
        await t.model_task.trigger({"order_id": "o1", "quantity": 0})
    assert "quantity" in str(err.value)
    assert [e["loc"] for e in err.value.errors] == ["quantity"]
    with pytest.raises(PayloadValidationError, match="order_id"):
        await t.model_task.trigger({"quantity": 1})
    with pytest.raises(PayloadValidationError, match="not JSON serializable"):
        await t.echo.trigger({"x": object()})
    assert driver.written() == NOTHING


async def test_oversized_payload(tmp_path: Any) -> None:
    small = Driver(tmp_path / "small.db", payload_limit=1000)
    push_client(small.client)
    try:
        with pytest.raises(PayloadTooLargeError, match="over the limit of 1000 bytes") as err:
            await t.echo.trigger({"blob": "x" * 2000})
        assert err.value.size > 1000 and err.value.limit == 1000
        ok = await t.echo.trigger({"blob": "x" * 900})  # under the limit: accepted
        assert ok.id
        assert small.count("runs") == 1
    finally:
        pop_client(small.client)


async def test_oversized_payload_from_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIGGER_DO_PAYLOAD_LIMIT", "500")
    d = Driver(tmp_path / "env.db")
    push_client(d.client)
    try:
        with pytest.raises(PayloadTooLargeError, match="500"):
            await t.echo.trigger("y" * 600)
        assert d.written() == NOTHING
    finally:
        pop_client(d.client)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"delay": "soon"}, "soon"),
        ({"ttl": "5 parsecs"}, "5 parsecs"),
        ({"ttl": 0}, "greater than zero"),
        ({"idempotency_key_ttl": "-1s"}, "-1s"),
        ({"tags": ["ok", ""]}, "tag"),
        ({"tags": ["x" * 200]}, "tag"),
        ({"tags": [f"t{i}" for i in range(11)]}, "at most 10 tags"),
        ({"tags": [1]}, "tag"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"metadata": "not a dict"}, "metadata"),
        ({"queue": ""}, "queue"),
        ({"priority": 5}, "priority"),  # not an option
        ({"delayy": "1s"}, "delayy"),
    ],
)
async def test_bad_trigger_options(driver: Driver, options: dict[str, Any], named: str) -> None:
    with pytest.raises(PayloadValidationError) as err:
        await t.echo.trigger({}, **options)
    assert named in str(err.value)
    assert driver.written() == NOTHING


async def test_a_batch_with_invalid_items_is_rejected_whole(driver: Driver) -> None:
    items: list[Any] = [{"order_id": f"o{i}", "quantity": 1} for i in range(10)]
    items[3] = {"order_id": "o3", "quantity": -1}
    items[7] = BatchItem({"order_id": "o7", "quantity": 1}, ttl="nonsense")
    with pytest.raises(PayloadValidationError) as err:
        await t.model_task.batch_trigger(items)
    assert err.value.bad_indexes == [3, 7]
    assert "indexes [3, 7]" in str(err.value)
    assert "quantity" in str(err.value) and "nonsense" in str(err.value)
    assert driver.written() == NOTHING


async def test_a_batch_by_id_with_an_unknown_task_is_rejected(driver: Driver) -> None:
    with pytest.raises(PayloadValidationError, match=r"indexes \[0, 1\].*'no-such-task'"):
        await tasks.batch_trigger("no-such-task", [1, 2])
    assert driver.written() == NOTHING


# --- at definition time ------------------------------------------------------------------------


def test_unknown_task_option() -> None:
    with pytest.raises(TaskDefinitionError, match="unknown option 'retries'"):
        task(id="bad-option", run=_noop, retries=3)
    with pytest.raises(TaskDefinitionError, match="'timeout'"):
        task(id="bad-option-2", timeout="1s")


def test_duplicate_task_id() -> None:
    async def first(payload: Any) -> int:
        return 1

    async def second(payload: Any) -> int:
        return 2

    task(id="dup-task", run=first)
    with pytest.raises(TaskDefinitionError, match="duplicate task id 'dup-task'"):
        task(id="dup-task", run=second)
    with pytest.raises(TaskDefinitionError, match="duplicate task id 't-echo'"):
        task(id="t-echo", run=second)


@pytest.mark.parametrize("bad_id", ["", "has space", "-leading", "x" * 200, 42])
def test_bad_task_id(bad_id: Any) -> None:
    with pytest.raises(TaskDefinitionError, match="invalid task id"):
        task(id=bad_id, run=_noop)


@pytest.mark.parametrize(
    ("options", "exc", "named"),
    [
        ({"max_duration": "5 parsecs"}, InvalidDurationError, "5 parsecs"),
        ({"max_duration": 0}, InvalidDurationError, "greater than zero"),
        ({"retry": Retry}, TaskDefinitionError, "retry must be"),
        ({"retry": {"max_attempts": 0}}, TaskDefinitionError, "max_attempts"),
        ({"retry": {"backoff": "random"}}, TaskDefinitionError, "random"),
        ({"retry": {"initial_delay": "1 fortnight"}}, TaskDefinitionError, "1 fortnight"),
        ({"concurrency": {"limit": 0}}, TaskDefinitionError, "limit"),
        ({"concurrency": {"limit": 2, "key": "payload..org"}}, TaskDefinitionError, "payload..org"),
        ({"concurrency": {"limit": 2, "key": "env.SECRET"}}, TaskDefinitionError, "'env'"),
        ({"concurrency": {"limit": 2, "key": "payload.a +"}}, TaskDefinitionError, "ends with"),
        ({"concurrency": {"limit": 2, "key": "payload.a payload.b"}}, TaskDefinitionError, "'+'"),
        ({"rate_limit": {"limit": 10, "period": "often"}}, TaskDefinitionError, "often"),
        ({"rate_limit": {"limit": 10, "period": "1m", "key": ""}}, TaskDefinitionError, "empty"),
        ({"rate_limit": "lots per day"}, TaskDefinitionError, "lots per day"),
        ({"on_success": "not callable"}, TaskDefinitionError, "on_success"),
        ({"queue": 5}, TaskDefinitionError, "queue"),
    ],
)
def test_bad_task_definitions_name_the_value(
    options: dict[str, Any], exc: type[Exception], named: str
) -> None:
    with pytest.raises(exc) as err:
        task(id="bad-definition", run=_noop, **options)
    assert named in str(err.value)


def test_run_must_be_callable() -> None:
    with pytest.raises(TaskDefinitionError, match="run must be a function"):
        task(id="not-callable", run="nope")
