"""The pure parts, without processes or IO: retry math, the state table, durations."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from trigger_do import Retry, RunState, TaskDefinitionError
from trigger_do.errors import InvalidDurationError
from trigger_do.shared.durations import parse_duration
from trigger_do.shared.retry import (
    JITTER_HIGH,
    JITTER_LOW,
    Finish,
    RetryAt,
    as_retry,
    decide_failure,
)
from trigger_do.shared.states import (
    API_STATUS,
    CANCELABLE,
    FINAL_STATES,
    TRANSITIONS,
    sources_for,
)

# --- retry schedules ---------------------------------------------------------------------------


def test_default_retry_is_the_seeds() -> None:
    r = Retry()
    assert (r.max_attempts, r.backoff, r.initial_delay, r.max_delay, r.factor, r.jitter) == (
        3,
        "exponential",
        1.0,
        3600.0,
        2.0,
        True,
    )
    assert r.schedule() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            Retry(max_attempts=6, backoff="exponential", initial_delay="1s"),
            [1.0, 2.0, 4.0, 8.0, 16.0],
        ),
        (
            Retry(max_attempts=5, backoff="exponential", initial_delay="500ms", factor=3),
            [0.5, 1.5, 4.5, 13.5],
        ),
        (
            Retry(max_attempts=6, backoff="exponential", initial_delay="1s", max_delay="5s"),
            [1.0, 2.0, 4.0, 5.0, 5.0],
        ),
        (Retry(max_attempts=5, backoff="linear", initial_delay="2s"), [2.0, 4.0, 6.0, 8.0]),
        (
            Retry(max_attempts=5, backoff="linear", initial_delay=1, max_delay=3),
            [1.0, 2.0, 3.0, 3.0],
        ),
        (Retry(max_attempts=4, backoff="fixed", initial_delay="1m"), [60.0, 60.0, 60.0]),
        (Retry(max_attempts=1), []),
    ],
    ids=["exp", "exp-factor3", "exp-capped", "linear", "linear-capped", "fixed", "no-retry"],
)
def test_schedule_per_backoff(policy: Retry, expected: list[float]) -> None:
    assert policy.schedule() == pytest.approx(expected)
    # without jitter the delay is exactly the schedule's
    plain = policy.model_copy(update={"jitter": False})
    assert [plain.delay(a) for a in range(1, policy.max_attempts)] == pytest.approx(expected)


@pytest.mark.parametrize("backoff", ["exponential", "linear", "fixed"])
def test_jitter_stays_in_bounds_and_varies(backoff: str) -> None:
    policy = Retry(max_attempts=8, backoff=backoff, initial_delay="1s", max_delay="20s")
    rng = random.Random(7)
    for attempt in range(1, 8):
        base = policy.base_delay(attempt)
        samples = [policy.delay(attempt, rng) for _ in range(400)]
        assert min(samples) >= base * JITTER_LOW
        assert max(samples) <= min(base * JITTER_HIGH, policy.max_delay)
        assert max(samples) - min(samples) > base * 0.2  # it is jittered, not constant
    # capped delays never exceed max_delay, even jittered upward
    assert all(policy.delay(20, rng) <= 20.0 for _ in range(200))


def test_decide_failure_outcomes() -> None:
    policy = Retry(max_attempts=3, initial_delay="1s", jitter=False)
    assert decide_failure(policy, 1, kind="error") == RetryAt(1.0)
    assert decide_failure(policy, 2, kind="error") == RetryAt(2.0)
    assert decide_failure(policy, 3, kind="error") == Finish(RunState.FAILED)
    assert decide_failure(policy, 1, kind="abort") == Finish(RunState.FAILED)
    assert decide_failure(policy, 1, kind="timeout") == RetryAt(1.0)
    assert decide_failure(policy, 3, kind="timeout") == Finish(RunState.TIMED_OUT)
    # a trigger's max_attempts overrides the task's
    assert decide_failure(policy, 3, kind="error", max_attempts=5) == RetryAt(4.0)
    assert decide_failure(policy, 1, kind="error", max_attempts=1) == Finish(RunState.FAILED)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": "many"}, "max_attempts"),
        ({"backoff": "cubic"}, "cubic"),
        ({"factor": 0.5}, "factor"),
        ({"initial_delay": "soon"}, "soon"),
        ({"initial_delay": -1}, "negative"),
        ({"initial_delay": "10s", "max_delay": "1s"}, "max_delay"),
        ({"retries": 3}, "retries"),
    ],
)
def test_bad_retry_settings_are_named(settings: dict[str, object], named: str) -> None:
    with pytest.raises(TaskDefinitionError) as err:
        Retry(**settings)
    assert named in str(err.value)
    with pytest.raises(TaskDefinitionError):
        as_retry(settings)


def test_retry_must_be_a_policy() -> None:
    with pytest.raises(TaskDefinitionError, match="retry must be"):
        as_retry(3)  # type: ignore[arg-type]


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        (" 1m 30s ", 90.0),
        ("1.5s", 1.5),
        ("12", 12.0),
        (3, 3.0),
        (0.25, 0.25),
        (timedelta(minutes=2), 120.0),
        (0, 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["", "soon", "5 parsecs", "1y", "-1s", "1s-", "ms", True, None, [1], float("nan"), -3]
)
def test_malformed_durations_name_the_value(value: object) -> None:
    with pytest.raises(InvalidDurationError) as err:
        parse_duration(value)  # type: ignore[arg-type]
    assert repr(value) in str(err.value)


def test_zero_duration_where_not_allowed() -> None:
    with pytest.raises(InvalidDurationError, match="greater than zero"):
        parse_duration("0s", allow_zero=False)


# --- the state table ---------------------------------------------------------------------------


def test_every_state_has_a_row_and_an_api_status() -> None:
    assert set(TRANSITIONS) == set(RunState)
    assert set(API_STATUS) == set(RunState)
    assert RunState.WAITING_FOR_RETRY.api_status == "QUEUED"
    assert RunState.RUNNING.api_status == "EXECUTING"
    assert set(RunState.from_api_status("queued")) == {
        RunState.QUEUED,
        RunState.WAITING_FOR_RETRY,
    }


def test_final_states_are_final() -> None:
    assert FINAL_STATES == {
        RunState.COMPLETED,
        RunState.FAILED,
        RunState.CANCELED,
        RunState.TIMED_OUT,
        RunState.CRASHED,
        RunState.EXPIRED,
        RunState.SYSTEM_FAILURE,
    }
    for state in FINAL_STATES:
        allowed = TRANSITIONS[state]
        # the only way out of a final state: reviving a dead-lettered (crashed) run
        assert allowed == ({RunState.QUEUED} if state == RunState.CRASHED else set()), state
        assert state.is_final
    assert CANCELABLE == {
        RunState.QUEUED,
        RunState.DELAYED,
        RunState.RUNNING,
        RunState.WAITING_FOR_RETRY,
        RunState.WAITING,
    }


def test_the_writes_sources_agree_with_the_table() -> None:
    for old in RunState:
        for new in RunState:
            assert (str(old) in sources_for(new)) == (new in TRANSITIONS[old]), (old, new)


@pytest.mark.parametrize(
    "payload, queue, key, rate_key",
    [(None, None, None, None), ('{"a":1}', "task/t", "org-1", "u-2"), ("null", None, "k", None)],
)
def test_a_first_body_is_the_first_run_message(
    payload: str | None, queue: str | None, key: str | None, rate_key: str | None
) -> None:
    from trigger_do.shared.messages import RunMessage

    body = RunMessage.first_body("run_1", "t", payload, queue, key, rate_key)
    full = RunMessage("run_1", "t", 1, payload=payload, queue=queue, key=key, rate_key=rate_key)
    assert body == full.to_body() and RunMessage.from_body(body) == full
