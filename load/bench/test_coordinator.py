"""pytest-benchmark of the coordinator's acquire/release path (not collected by default:
run with the other hot paths: `python -m pytest load/bench --benchmark-only`).

One round = one consumer batch of 100 runs over 10 keys of limit 10 (acquire, all granted)
and their release, each one object call (one transaction) as on the platform; and the
saturated case: 100 runs of one key of limit 10 (10 granted, 90 parked), released and
handed back."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from trigger_do.coordinator.coordinator import CoordinatorObject
from trigger_do.platform.local.database import LocalSql, init_schema
from trigger_do.platform.local.platform import schema_statements

SPECS = {"queue_limit": None, "tasks": {"t": {"key_limit": 10, "rate": None}}}
RATE = {
    "queue_limit": None,
    "tasks": {"t": {"key_limit": 10, "rate": {"limit": 10**9, "period": 1.0}}},
}


def _call(sql: LocalSql, method: str, *args: Any) -> Any:
    obj = CoordinatorObject(sql, "task/t")
    return sql.transaction(lambda: getattr(obj, method)(*args))


@pytest.fixture
def sql(tmp_path: Path) -> LocalSql:
    s = LocalSql(tmp_path / "b.db")
    init_schema(s, schema_statements())
    return s


def _requests(n: int, keys: int, seq: Any) -> list[dict[str, Any]]:
    base = next(seq)
    return [
        {
            "id": f"r{base}-{i}",
            "task": "t",
            "key": f"k{i % keys}",
            "body": {"run_id": f"r{base}-{i}"},
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("specs", [SPECS, RATE], ids=["concurrency", "concurrency+rate"])
def test_acquire_release_100_runs_10_keys(benchmark: Any, sql: LocalSql, specs: Any) -> None:
    seq = itertools.count()
    clock = itertools.count(1_000_000)

    def batch() -> None:
        reqs = _requests(100, 10, seq)
        res = _call(sql, "acquire", reqs, specs, float(next(clock)), 30.0)
        assert len(res["granted"]) == 100
        _call(sql, "release", res["granted"], float(next(clock)))

    benchmark(batch)


def test_saturated_key_park_and_hand_back(benchmark: Any, sql: LocalSql) -> None:
    seq = itertools.count()
    clock = itertools.count(1_000_000)

    def batch() -> None:
        reqs = _requests(100, 1, seq)
        res = _call(sql, "acquire", reqs, SPECS, float(next(clock)), 30.0)
        running = res["granted"]
        while running:  # release what runs; take the handed-back runs' second delivery
            out = _call(sql, "release", running, float(next(clock)))
            back = [
                {"id": b["run_id"], "task": "t", "key": "k0", "body": b} for b in out["handback"]
            ]
            running = (
                _call(sql, "acquire", back, SPECS, float(next(clock)), 30.0)["granted"]
                if back
                else []
            )

    benchmark.pedantic(batch, rounds=5, iterations=1)
