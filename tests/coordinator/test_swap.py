"""A release's fast path (`CoordinatorObject._swap`, a hot key's slot turning over) decides
exactly what the pump does: the same calls on two databases, one coordinator with the fast
path and one without it, give the same answers and leave the same rows, call after call,
through random loads with lapsed leases, wakes, limits that change and consumers that stop
taking work."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from trigger_do.coordinator.coordinator import CoordinatorObject
from trigger_do.platform.local.database import LocalSql, init_schema
from trigger_do.platform.local.platform import schema_statements
from trigger_do.shared.messages import RunMessage

T0 = 1_000_000.0
TABLES = {
    "coord_slots": "queue, run_id, key, task, rate_id, state, lease_until, granted_at",
    "coord_parked": "queue, run_id, key, task, rate_id, seq, body, parked_at, handed",
    "coord_keys": "queue, key, waiting",
    "coord_queues": "queue, clock, paused, limit_override, spec, alarm_at, rr_key, seq, lease",
}


class Counted(CoordinatorObject):
    swaps = 0

    def _swap(self, *args: Any) -> dict[str, Any] | None:
        res = super()._swap(*args)
        if res is not None:
            Counted.swaps += 1
        return res


class Pumped(CoordinatorObject):
    """The same coordinator with the general path only."""

    def _swap(self, *args: Any) -> dict[str, Any] | None:
        return None


class Queue:
    def __init__(self, path: Path, cls: type[CoordinatorObject]) -> None:
        self.sql = LocalSql(path)
        init_schema(self.sql, schema_statements())
        self.cls = cls

    def __call__(self, method: str, *args: Any) -> Any:
        obj = self.cls(self.sql, "task/t")
        return self.sql.transaction(lambda: getattr(obj, method)(*args))

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: self.sql.exec(f"SELECT {cols} FROM {t} ORDER BY 1, 2") for t, cols in TABLES.items()
        }


def specs(limit: int, **more: Any) -> dict[str, Any]:
    return {"queue_limit": None, "tasks": {"t": {"key_limit": limit, "rate": None, **more}}}


@pytest.mark.parametrize("seed", range(6))
def test_the_fast_path_decides_what_the_pump_does(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    fast, slow = Queue(tmp_path / "fast.db", Counted), Queue(tmp_path / "slow.db", Pumped)

    def both(method: str, *args: Any) -> dict[str, Any]:
        a, b = fast(method, *args), slow(method, *args)
        assert a == b, (method, args)
        assert fast.rows() == slow.rows(), (method, args)
        return a  # type: ignore[no-any-return]

    keys = ["hot", "hot", "hot", "hot", "k1", "k1", "k2", "k3"]  # one key takes half
    limit, now, n = 3, T0, 0
    held: list[str] = []  # runs holding slots (as their consumers see it)
    handed: list[dict[str, Any]] = []  # handed-back messages, delivered again next
    Counted.swaps = 0
    for _ in range(400):
        now += rng.choice([0.001, 0.01, 0.5])
        op = rng.random()
        if op < 0.3 or not held:
            if rng.random() < 0.05:  # a deploy changes the limit per key
                limit = rng.choice([1, 2, 3, 5])
            fresh = [
                RunMessage(f"r{n + i}", "t", 1, queue="task/t", key=rng.choice(keys))
                for i in range(rng.randint(1, 6))
            ]
            n += len(fresh)
            requests = [
                {"id": m.run_id, "task": "t", "key": m.key, "rate_key": None, "body": body}
                for m, body in [(RunMessage.from_body(b), b) for b in handed]
                + [(m, m.to_body()) for m in fresh]
            ]
            handed = []
            take = rng.choice([0, len(requests)])
            res = both("acquire", requests, specs(limit), now, 10.0, take)
        elif op < 0.9:
            done = rng.sample(held, rng.randint(1, min(3, len(held))))
            take = rng.choice([len(done)] * 8 + [0, 1])
            lease = 10.0 if rng.random() < 0.95 else 20.0
            res = both("release", done, now, take, lease)
            held = [r for r in held if r not in done]
        elif op < 0.95:
            now += 11.0  # every lease lapses: the runs' consumers died
            held = []
            res = both("wake", now, rng.choice([0, 4]))
        else:
            res = both("wake", now, 4)
        held += res.get("granted", []) + [b["run_id"] for b in res["direct"]]
        handed += res["handback"]
    assert Counted.swaps > 50  # (the fast path was taken, not only declined)


def test_a_queue_with_a_rate_or_a_queue_limit_takes_the_pump(tmp_path: Path) -> None:
    Counted.swaps = 0
    for i, spec in enumerate(
        [
            specs(1, rate={"limit": 100, "period": 1.0, "strategy": "moving-window"}),
            {"queue_limit": 5, "tasks": {"t": {"key_limit": 1, "rate": None}}},
        ]
    ):
        q = Queue(tmp_path / f"c{i}.db", Counted)
        reqs = [
            {"id": f"q{i}-{j}", "task": "t", "key": "k", "rate_key": None, "body": {"run_id": j}}
            for j in range(3)
        ]
        res = q("acquire", reqs, spec, T0 + i, 10.0, 0)
        (first,) = res["granted"]
        res = q("release", [first], T0 + i + 0.1, 1, 10.0)
        assert len(res["direct"]) == 1  # the next run of the line, by the pump
    assert Counted.swaps == 0
