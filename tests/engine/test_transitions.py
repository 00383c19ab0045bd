"""Walk the state table against the run index's bulk writes on a real SQLite file.

For every (old, new) pair of states: put a run in `old`, then apply every write that can
produce `new`. An allowed pair must be reached by at least one of them; a disallowed pair
must be refused by all of them (their WHERE names the table's sources), leaving the row
exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trigger_do.platform.local.database import LocalSql
from trigger_do.platform.local.platform import open_local
from trigger_do.runs.index import RunIndexObject
from trigger_do.shared.serialization import dumps
from trigger_do.shared.states import TRANSITIONS, RunState

S = RunState
TOKEN = "lease_holder"
RUN = "run_walk"
Write = Callable[[RunIndexObject, float], Any]


def _finish(state: RunState) -> Write:
    def write(idx: RunIndexObject, now: float) -> Any:
        outcome: dict[str, Any] = {"id": RUN, "attempt": 1, "state": str(state)}
        if state == S.COMPLETED:
            outcome["output"] = dumps({"ok": True})
        if state in (S.WAITING_FOR_RETRY, S.QUEUED):
            outcome["due_at"] = now
        return idx.finish_many([outcome], TOKEN, now)

    write.__name__ = f"finish_many({state})"
    return write


def _suspend(idx: RunIndexObject, now: float) -> Any:
    """An attempt that ends waiting on an open waitpoint (without one it resumes at once)."""
    idx.create_waitpoint(RUN, 1, "timer", None, now + 60, 1, [], now)
    return _finish(S.WAITING)(idx, now)


def _resume(idx: RunIndexObject, now: float) -> Any:
    """A waitpoint completes (its due time): a waiting run resumes."""
    idx.create_waitpoint(RUN, 1, "timer", None, now, 1, [], now)
    return idx.fire_waits(now)


def _start(idx: RunIndexObject, now: float) -> Any:
    return idx.start_many([[RUN, 1]], "another_holder", now, 30.0)


def _requeue(idx: RunIndexObject, now: float) -> Any:
    return idx.requeue_dead([RUN], now)


def _reschedule(idx: RunIndexObject, now: float) -> Any:
    return idx.reschedule(RUN, now + 60, now)


def _cancel(idx: RunIndexObject, now: float) -> Any:
    return idx.cancel(RUN, now)


def _dead_letter(idx: RunIndexObject, now: float) -> Any:
    letter = {"run_id": RUN, "task": "t", "dispatch": 1, "body": "{}", "deliveries": 4}
    return idx.dead_letter([{**letter, "reason": "max deliveries exceeded"}], now)


def _housekeeping(idx: RunIndexObject, now: float) -> Any:
    return idx.housekeeping(now, 300.0, 86400.0)


def _expire(idx: RunIndexObject, now: float) -> Any:
    return idx._finish_simple([RUN], S.EXPIRED, now)


# Every write that can move a run into each state.
WRITERS: dict[RunState, list[Write]] = {
    S.QUEUED: [_finish(S.QUEUED), _requeue, _resume],
    S.DELAYED: [_reschedule],
    S.RUNNING: [_start],
    S.WAITING_FOR_RETRY: [_finish(S.WAITING_FOR_RETRY)],
    S.WAITING: [_finish(S.WAITING), _suspend],
    S.COMPLETED: [_finish(S.COMPLETED)],
    S.FAILED: [_finish(S.FAILED)],
    S.CANCELED: [_cancel],
    S.TIMED_OUT: [_finish(S.TIMED_OUT)],
    S.CRASHED: [_dead_letter],
    S.EXPIRED: [_housekeeping, _start, _expire],
    S.SYSTEM_FAILURE: [_finish(S.SYSTEM_FAILURE)],
}


@pytest.fixture
def index(tmp_path: Path) -> tuple[LocalSql, RunIndexObject]:
    _, sql = open_local(tmp_path / "walk.db")
    return sql, RunIndexObject(sql, "shard-0")


def _put(sql: LocalSql, idx: RunIndexObject, state: RunState, target: RunState, now: float) -> None:
    """A run in `state` whose lease (held by TOKEN) has lapsed, on attempt 1 and dispatch 1
    (for EXPIRED: never started, its ttl passed), so only the state decides each write."""
    sql.exec("DELETE FROM runs")
    sql.exec("DELETE FROM waitpoints")
    sql.transaction(
        lambda: idx.insert_runs([{"id": RUN, "task": "t", "state": "queued", "payload": "{}"}], now)
    )
    expiring = target == S.EXPIRED
    sql.exec(
        "UPDATE runs SET state = ?, attempt = ?, dispatch = 1, lease_token = ?, "
        "lease_until = ?, expires_at = ?, delay_until = NULL WHERE id = ?",
        str(state),
        0 if expiring else 1,
        TOKEN,
        now - 1,
        now - 1 if expiring else None,
        RUN,
    )


def _row(sql: LocalSql) -> tuple[Any, ...]:
    return sql.exec("SELECT * FROM runs WHERE id = ?", RUN)[0]


def test_every_pair_of_the_state_table(index: tuple[LocalSql, RunIndexObject]) -> None:
    sql, idx = index
    now = 1_900_000_000.0
    reached: set[tuple[RunState, RunState]] = set()
    for old in RunState:
        for new in RunState:
            for write in WRITERS[new]:
                _put(sql, idx, old, new, now)
                before = _row(sql)
                sql.transaction(lambda w=write: w(idx, now))  # type: ignore[misc]
                state = RunState(sql.exec("SELECT state FROM runs WHERE id = ?", RUN)[0][0])
                moved = _row(sql) != before
                if new in TRANSITIONS[old]:
                    if state == new and (old != new or moved):
                        reached.add((old, new))
                elif old == new:
                    assert not moved, f"{write.__name__} rewrote a {old} run as {new}"
                else:
                    assert state != new, f"{write.__name__} moved {old} to {new}"
                    # a write aimed elsewhere may make another allowed move (a lapsed
                    # running run is restarted, not expired); otherwise nothing changes
                    assert state == old or state in TRANSITIONS[old], (write.__name__, state)
                    if state == old and old not in TRANSITIONS[old]:
                        assert not moved, f"{write.__name__} changed a {old} run"
    allowed = {(o, n) for o, nxt in TRANSITIONS.items() for n in nxt}
    assert allowed - reached == set()


def test_stale_writes_change_nothing(index: tuple[LocalSql, RunIndexObject]) -> None:
    sql, idx = index
    now = 1_900_000_000.0
    _put(sql, idx, S.RUNNING, S.COMPLETED, now)
    before = _row(sql)
    done = {"id": RUN, "attempt": 1, "state": "completed", "output": "1"}
    # another holder's token, an older attempt: refused
    assert sql.transaction(lambda: idx.finish_many([done], "someone_else", now)) == {"applied": {}}
    stale = {**done, "attempt": 0}
    assert sql.transaction(lambda: idx.finish_many([stale], TOKEN, now)) == {"applied": {}}
    # a dead letter of an older dispatch: refused
    letter = {"run_id": RUN, "task": "t", "dispatch": 0, "body": "{}", "deliveries": 4}
    assert sql.transaction(lambda: idx.dead_letter([letter], now))["crashed"] == []
    assert _row(sql)[:4] == before[:4]
    # a live lease: the run is busy, not restarted, and not crashed by a dead letter
    sql.exec("UPDATE runs SET lease_until = ? WHERE id = ?", now + 10, RUN)
    (decision,) = sql.transaction(lambda: idx.start_many([[RUN, 1]], "other", now, 30.0))
    assert decision["decision"] == "busy"
    assert 9.9 < decision["delay"] < 10.2
    letter["dispatch"] = 1
    held = sql.transaction(lambda: idx.dead_letter([letter], now))
    assert held["crashed"] == [] and 9.9 < held["held"][RUN] < 10.2
    # a message of an older dispatch is skipped
    (decision,) = sql.transaction(lambda: idx.start_many([[RUN, 0]], "other", now, 30.0))
    assert decision["decision"] == "skip"
    assert RunState(_row(sql)[2]) == S.RUNNING
    # the holder's own outcome applies once, then never again
    applied = sql.transaction(lambda: idx.finish_many([done], TOKEN, now))
    assert list(applied["applied"]) == [RUN]
    assert sql.transaction(lambda: idx.finish_many([done], TOKEN, now)) == {"applied": {}}
    assert idx.cancel(RUN, now) == {"found": True, "canceled": False, "state": "completed"}


def test_finish_many_on_a_canceled_run_changes_nothing(
    index: tuple[LocalSql, RunIndexObject],
) -> None:
    sql, idx = index
    now = 1_900_000_000.0
    _put(sql, idx, S.RUNNING, S.COMPLETED, now)
    assert sql.transaction(lambda: idx.cancel(RUN, now))["canceled"]
    before = _row(sql)
    for state in ("completed", "failed", "waiting_for_retry", "queued", "timed_out"):
        outcome = {"id": RUN, "attempt": 1, "state": state, "output": "1", "due_at": now}
        assert sql.transaction(lambda o=outcome: idx.finish_many([o], TOKEN, now)) == {  # type: ignore[misc]
            "applied": {}
        }
    assert _row(sql) == before


def test_the_local_sql_refuses_an_int_a_durable_object_would_round(
    index: tuple[LocalSql, RunIndexObject],
) -> None:
    from trigger_do.errors import SqlRuleError

    sql, _ = index
    assert sql.exec("SELECT ?", 2**53 - 1) == [(2**53 - 1,)]
    with pytest.raises(SqlRuleError, match="past 2"):
        sql.exec("SELECT ?", 2**53 + 1)
