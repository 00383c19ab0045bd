"""`start_many` starts nearly every claimed run in one statement (`_START`) and decides only
the others row by row (`_decide`): the two must be the same rule. For every combination of
a run's state, attempt, continuation mark, dispatch, delay, ttl and lease, both are applied
to the same rows of two real SQLite files; their decisions and the rows they leave must be
identical. The clock is frozen, as it is inside a Durable Object between two I/O calls: a
run that started before did so at this very instant, and must still be told it resumes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from trigger_do.platform.local.database import LocalSql
from trigger_do.platform.local.platform import open_local
from trigger_do.runs.index import RunIndexObject
from trigger_do.shared.states import RunState

NOW = 1_900_000_000.0
TOKEN = "the_new_holder"


def _grid() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    combos = itertools.product(
        RunState,
        (0, 1, 2),  # attempt
        (0, 1),  # continued
        (1, 2),  # the row's dispatch (every claim names dispatch 1)
        (None, NOW - 1, NOW + 5),  # delay_until
        (None, NOW - 1, NOW + 5),  # expires_at
        (None, NOW - 1, NOW + 5),  # lease_until
    )
    for i, (state, attempt, continued, dispatch, delay, expires, lease) in enumerate(combos):
        if state == RunState.RUNNING and attempt == 0:
            continue  # a running run has started an attempt
        started = attempt > 0 or continued
        rows.append(
            {
                "id": f"run_{i:05d}",
                "state": str(state),
                "attempt": attempt,
                "continued": continued,
                "dispatch": dispatch,
                "delay_until": delay,
                "expires_at": expires,
                "lease_until": lease,
                "lease_token": "the_old_holder" if lease is not None else None,
                "started_at": NOW if started else None,  # (the frozen clock's instant)
                "options": '{"max_attempts": 3}' if i % 2 else "{}",
                "tags": '["a"]' if i % 3 else "[]",
            }
        )
    return rows


def _index(path: Path, rows: list[dict[str, Any]]) -> tuple[LocalSql, RunIndexObject]:
    _, sql = open_local(path)
    idx = RunIndexObject(sql, "shard-0")
    sql.transaction(
        lambda: idx.insert_runs(
            [{"id": r["id"], "task": "t", "state": "queued", "payload": '{"n": 1}'} for r in rows],
            NOW - 10,
        )
    )
    for r in rows:
        sets = ", ".join(f"{k} = ?" for k in r if k != "id")
        values = [v for k, v in r.items() if k != "id"]
        sql.exec(f"UPDATE runs SET {sets} WHERE id = ?", *values, r["id"])
    return sql, idx


def test_the_one_statement_start_and_the_row_by_row_rule_agree(tmp_path: Path) -> None:
    rows = _grid()
    claims = [[r["id"], 1] for r in rows] + [["run_missing", 1]]
    fast_sql, fast = _index(tmp_path / "fast.db", rows)
    slow_sql, slow = _index(tmp_path / "slow.db", rows)

    left: list[dict[str, Any]] = []  # what the one statement left to the rule
    rule = fast._decide

    def spy(*args: Any) -> dict[str, dict[str, Any]]:
        out = rule(*args)
        left.extend(out.values())
        return out

    fast._decide = spy  # type: ignore[method-assign]
    decided = fast_sql.transaction(lambda: fast.start_many(claims, TOKEN, NOW, 30.0))
    by_rule = slow_sql.transaction(lambda: slow._decide(claims, TOKEN, NOW, 30.0))

    assert decided == [by_rule[c[0]] for c in claims]
    kinds = {d["decision"] for d in decided}
    assert kinds == {"start", "skip", "early", "busy", "expired", "missing"}  # every branch
    assert left and all(d["decision"] != "start" for d in left)  # it started all it may
    starts = [d for d in decided if d["decision"] == "start"]
    assert {d["resumed"] for d in starts} == {True, False}
    assert fast_sql.exec("SELECT * FROM runs ORDER BY id") == slow_sql.exec(
        "SELECT * FROM runs ORDER BY id"
    )


def test_a_continued_run_resumes_the_same_attempt_under_a_frozen_clock(tmp_path: Path) -> None:
    row = {
        "id": "run_c", "state": "queued", "attempt": 1, "continued": 1, "dispatch": 1,
        "delay_until": None, "expires_at": None, "lease_until": None, "lease_token": None,
        "started_at": NOW, "options": "{}", "tags": "[]",
    }  # fmt: skip
    sql, idx = _index(tmp_path / "c.db", [row])
    (d,) = sql.transaction(lambda: idx.start_many([["run_c", 1]], TOKEN, NOW, 30.0))
    assert (d["decision"], d["attempt"], d["resumed"]) == ("start", 1, True)
    fresh = {**row, "id": "run_f", "attempt": 0, "continued": 0, "started_at": None}
    sql, idx = _index(tmp_path / "f.db", [fresh])
    (d,) = sql.transaction(lambda: idx.start_many([["run_f", 1]], TOKEN, NOW, 30.0))
    assert (d["decision"], d["attempt"], d["resumed"]) == ("start", 1, False)
