"""Definitions and values the engine cannot represent fail where they are made, with the
offending value named: durations past 10 years or under 1 ms, a retry policy given a bool,
NaN and Infinity in payloads and outputs, a payload annotation that does not resolve."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tests.engine import tasks_for_tests as t
from tests.engine.driver import Driver
from trigger_do import Retry, RunState, task
from trigger_do.errors import (
    InvalidDurationError,
    NonFiniteNumberError,
    PayloadValidationError,
    TaskDefinitionError,
)
from trigger_do.shared.durations import parse_duration
from trigger_do.shared.serialization import dumps


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("100000000d", "10 years"),
        (1e308, "10 years"),
        (timedelta(days=5000), "10 years"),
        (1e-320, "1 ms"),
        ("0.0001", "1 ms"),
    ],
)
def test_durations_are_bounded(value: Any, reason: str) -> None:
    with pytest.raises(InvalidDurationError, match=reason):
        parse_duration(value)
    assert parse_duration("3650d") == 3650 * 86400  # ten years: the longest


@pytest.mark.parametrize(
    "policy",
    [
        {"initial_delay": 1e-320},  # was accepted, then ended its runs system_failure
        {"max_attempts": True},  # was counted as 1
        {"factor": True},
        {"jitter": "yes"},
        {"max_delay": "100000000d"},
    ],
)
def test_a_retry_policy_refuses_what_it_cannot_mean(policy: dict[str, Any]) -> None:
    with pytest.raises(TaskDefinitionError, match="invalid retry policy"):
        Retry(**policy)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"delay": "100000000d"}, "100000000d"),
        ({"delay": 1e308}, "10 years"),
        ({"delay": datetime(9999, 1, 1, tzinfo=UTC)}, "10 years ahead"),
        ({"delay": "9999-01-01T00:00:00Z"}, "10 years ahead"),
        ({"ttl": "100000000d"}, "ttl"),
        ({"max_duration": 1e308}, "max_duration"),
        ({"idempotency_key": "k", "idempotency_key_ttl": "100000000d"}, "idempotency_key_ttl"),
    ],
)
async def test_a_trigger_refuses_a_date_or_duration_out_of_range(
    driver: Driver, options: dict[str, Any], named: str
) -> None:
    before = driver.written()
    with pytest.raises(PayloadValidationError, match=named):
        await t.echo.trigger("x", **options)
    assert driver.written() == before  # nothing written


async def test_a_reschedule_past_ten_years_is_refused(driver: Driver) -> None:
    handle = await t.echo.trigger("x", delay="1h")
    with pytest.raises(InvalidDurationError, match="10 years"):
        await driver.engine.reschedule(handle.id, driver.clock.now() + 1e12)


def test_nan_and_infinity_are_refused_not_stored_as_null() -> None:
    class Score(BaseModel):
        value: float

    @dataclass
    class Point:
        x: float

    nested = [{"a": [{"b": (1, None, {"c": float("inf")})}]}]
    for value in (
        float("nan"), {"a": [1.0, float("inf")]}, (float("-inf"),), nested,
        {"m": Score(value=float("nan"))}, [None, Point(float("-inf"))], {float("nan")},
    ):  # fmt: skip
        with pytest.raises(NonFiniteNumberError, match="NaN and Infinity"):
            dumps(value)
    assert dumps({"a": None, "b": 1.5, "c": [None, Point(2.0)]}) == (
        '{"a":null,"b":1.5,"c":[null,{"x":2.0}]}'
    )


async def test_a_payload_with_nan_is_refused(driver: Driver) -> None:
    before = driver.written()
    with pytest.raises(PayloadValidationError, match="NaN"):
        await t.echo.trigger({"score": float("nan")})
    assert driver.written() == before


@task(id="t-nan-output")
async def nan_output(payload: Any) -> dict[str, float]:
    return {"score": float("inf")}


async def test_an_output_with_infinity_fails_the_run_without_retrying(driver: Driver) -> None:
    handle = await nan_output.trigger({})
    await driver.run_until_final([handle.id])
    status = await handle.status()
    assert (status.state, status.attempt) == (RunState.FAILED, 1)
    assert status.error is not None and "NaN and Infinity" in status.error["message"]


def test_a_payload_annotation_that_does_not_resolve_fails_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="NoSuchType"):

        @task(id="t-unresolvable")
        async def unresolvable(payload: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
            return None

    # an unresolvable ctx annotation (imported only for type checking) is fine
    @task(id="t-ctx-unresolved")
    async def fine(payload: dict[str, Any], ctx: NotImportedHere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    assert fine.payload_json({"a": 1}) == '{"a":1}'
