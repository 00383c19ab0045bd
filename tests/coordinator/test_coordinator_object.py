"""The coordinator object alone, on a real SQLite file, time passed explicitly: every
decision is deterministic (no processes, no sleeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trigger_do.coordinator.coordinator import CoordinatorObject
from trigger_do.platform.local.database import LocalSql, init_schema
from trigger_do.platform.local.platform import schema_statements

T0 = 1_000_000.0


class Coord:
    """Calls one coordinator object as the platform would: each call one transaction."""

    def __init__(self, path: Path, name: str = "task/t") -> None:
        self.sql = LocalSql(path)
        init_schema(self.sql, schema_statements())
        self.name = name

    def __call__(self, method: str, *args: Any) -> Any:
        obj = CoordinatorObject(self.sql, self.name)
        return self.sql.transaction(lambda: getattr(obj, method)(*args))

    def acquire(
        self,
        ids: list[str],
        now: float,
        key: str = "",
        spec: dict[str, Any] | None = None,
        queue_limit: int | None = None,
        rate_key: str | None = None,
    ) -> dict[str, Any]:
        requests = [
            {"id": i, "task": "t", "key": key, "rate_key": rate_key, "body": {"run_id": i}}
            for i in ids
        ]
        specs = {"queue_limit": queue_limit, "tasks": {"t": spec or {"key_limit": 2}}}
        return self("acquire", requests, specs, now, 10.0)  # type: ignore[no-any-return]

    def count(self, table: str) -> int:
        return int(self.sql.exec(f"SELECT count(*) FROM {table}")[0][0])


@pytest.fixture
def coord(tmp_path: Path) -> Coord:
    return Coord(tmp_path / "c.db")


def handed(res: dict[str, Any]) -> list[str]:
    return [b["run_id"] for b in res["handback"]]


def test_grants_up_to_the_limit_and_parks_the_rest_in_order(coord: Coord) -> None:
    res = coord.acquire(["a", "b", "c", "d"], T0)
    assert res["granted"] == ["a", "b"] and res["parked"] == ["c", "d"]
    assert res["at"] == T0
    # a duplicate delivery of a granted run is granted again without a second slot
    assert coord.acquire(["a"], T0 + 1)["granted"] == ["a"]
    # a parked run delivered again keeps its place
    assert coord.acquire(["d"], T0 + 1)["parked"] == ["d"]
    assert coord.count("coord_slots") == 2
    res = coord("release", ["a"], T0 + 2)
    assert handed(res) == ["c"] and res["handback"][0]["h"] == 1
    # the handed-back run's next delivery is granted at once: two deliveries in all
    assert coord.acquire(["c"], T0 + 3)["granted"] == ["c"]
    # a fresh run does not jump the line while another waits for its key
    assert coord.acquire(["e"], T0 + 3)["parked"] == ["e"]
    assert handed(coord("release", ["b", "c"], T0 + 4)) == ["d", "e"]


def test_runs_lined_up_at_intake_are_handed_back_as_slots_allow(coord: Coord) -> None:
    def enqueue(ids: list[str], now: float, key: str = "") -> dict[str, Any]:
        requests = [{"id": i, "task": "t", "key": key, "body": {"run_id": i}} for i in ids]
        specs = {"queue_limit": None, "tasks": {"t": {"key_limit": 2}}}
        return coord("enqueue", requests, specs, now, 10.0)  # type: ignore[no-any-return]

    res = enqueue(["a", "b", "c", "d"], T0)
    # the heads of the line, on reserved slots, handed back to be sent; the rest wait
    assert handed(res) == ["a", "b"] and all(b["h"] == 1 for b in res["handback"])
    assert coord.count("coord_slots") == 2 and coord.count("coord_parked") == 4
    assert res["alarm"] == pytest.approx(T0 + 10, abs=0.01)  # should the reservations lapse
    # runs it owns already keep their places (a trigger's intake tried again)
    assert handed(enqueue(["b", "c", "e"], T0 + 1)) == []
    assert coord.count("coord_parked") == 5
    # a handed-back run's delivery starts on its reservation; its release hands on
    assert coord.acquire(["a"], T0 + 2)["granted"] == ["a"]
    assert handed(coord("release", ["a"], T0 + 3)) == ["c"]
    # a run of another key is not held up by this key's line
    assert handed(enqueue(["x"], T0 + 4, key="other")) == ["x"]
    # a reservation whose message never came lapses: its run goes back to the head
    assert handed(coord("wake", T0 + 13)) == ["b"]


def test_clock_is_monotonic_so_a_start_never_precedes_the_release(coord: Coord) -> None:
    coord.acquire(["a", "b"], T0)
    coord("release", ["a"], T0 + 5)
    res = coord.acquire(["x"], T0 + 1)  # a caller whose clock read was older
    assert res["granted"] == ["x"] and res["at"] == T0 + 5


def test_a_lapsed_lease_is_reclaimed(coord: Coord) -> None:
    coord.acquire(["a", "b", "c"], T0)
    res = coord("extend", ["a"], T0 + 5, 10.0)
    assert res == []
    # b's consumer died: its lease (10 s) lapses; a's was renewed until T0 + 15
    woke = coord("wake", T0 + 12)
    assert handed(woke) == ["c"]
    assert coord("extend", ["b"], T0 + 12, 10.0) == ["b"]
    # the dead consumer's run comes back through its redelivery, as a new claim
    assert coord.acquire(["b"], T0 + 13)["parked"] == ["b"]


def test_an_alarm_is_asked_for_while_runs_wait(coord: Coord) -> None:
    res = coord.acquire(["a", "b", "c"], T0)
    assert res["alarm"] == pytest.approx(T0 + 10, abs=0.01)  # when the leases could lapse
    # already armed: not asked again
    assert coord.acquire(["d"], T0 + 1)["alarm"] is None


def test_round_robin_across_keys_under_a_queue_limit(coord: Coord) -> None:
    spec = {"key_limit": None}
    coord.acquire(["big0", "big1"], T0, key="big", spec=spec, queue_limit=2)
    coord.acquire([f"big{i}" for i in range(2, 8)], T0, key="big", spec=spec, queue_limit=2)
    for k in ("s1", "s2", "s3"):
        assert coord.acquire([f"{k}a", f"{k}b"], T0, key=k, spec=spec, queue_limit=2)["parked"]
    served: list[str] = []
    running = ["big0", "big1"]
    now = T0
    while len(served) < 12:
        now += 1
        res = coord("release", [running.pop(0)], now)
        for rid in handed(res):
            served.append(rid)
            coord.acquire([rid], now, key="?", spec=spec, queue_limit=2)
            running.append(rid)
    # every key gets a turn before any key gets a second one
    firsts = [s[:-1] if s.startswith("s") else "big" for s in served[:4]]
    assert sorted(firsts) == ["big", "s1", "s2", "s3"]
    assert sorted(s for s in served if s.startswith("s")) == sorted(
        f"{k}{x}" for k in ("s1", "s2", "s3") for x in "ab"
    )


def test_per_key_limits_are_independent(coord: Coord) -> None:
    assert coord.acquire(["a1", "a2", "a3"], T0, key="a")["granted"] == ["a1", "a2"]
    assert coord.acquire(["b1", "b2"], T0, key="b")["granted"] == ["b1", "b2"]


@pytest.mark.parametrize("strategy", ["moving-window", "fixed-window", "sliding-window-counter"])
def test_rate_windows_on_sql(coord: Coord, strategy: str) -> None:
    spec = {"key_limit": None, "rate": {"limit": 3, "period": 1.0, "strategy": strategy}}
    res = coord.acquire([f"r{i}" for i in range(5)], T0, spec=spec, rate_key="acct")
    assert res["granted"] == ["r0", "r1", "r2"]
    assert res["alarm"] is not None and T0 < res["alarm"] <= T0 + 2.0
    coord("release", ["r0", "r1", "r2"], T0 + 0.1)  # finishing frees no rate
    assert coord("wake", T0 + 0.5)["handback"] == []
    later = coord("wake", T0 + 2.01)
    assert handed(later) == ["r3", "r4"]
    assert coord.acquire(["r3", "r4"], T0 + 2.02, spec=spec, rate_key="acct")["granted"] == [
        "r3",
        "r4",
    ]


def test_rate_window_counts_starts_in_any_period(coord: Coord) -> None:
    spec = {"key_limit": None, "rate": {"limit": 2, "period": 1.0}}
    starts: list[float] = []
    pending = [f"r{i}" for i in range(10)]
    now = T0
    while pending and now < T0 + 20:
        res = coord.acquire(pending[:1], now, spec=spec)
        if res["granted"]:
            starts.append(res["at"])
            coord("release", res["granted"], now)
        for b in res["handback"]:
            got = coord.acquire([b["run_id"]], now, spec=spec)["granted"]
            starts += [now] * len(got)
        pending = [p for p in pending if p not in res["granted"] and p not in handed(res)]
        now += 0.1
    for s in starts:
        assert sum(1 for x in starts if s <= x < s + 1.0) <= 2


def test_pause_resume_and_limit_override(coord: Coord) -> None:
    coord("pause", T0)
    assert coord("controls") == {"paused": True, "limit_override": None}
    assert coord.acquire(["a", "b"], T0)["parked"] == ["a", "b"]
    res = coord("resume", T0 + 1)
    assert handed(res) == ["a", "b"]
    coord.acquire(["a", "b"], T0 + 1)
    coord("set_limit", 1, T0 + 2)
    coord("release", ["a"], T0 + 3)
    assert coord.acquire(["c"], T0 + 3)["parked"] == ["c"]  # b still runs: limit 1
    assert handed(coord("set_limit", None, T0 + 4)) == ["c"]
    stats = coord("stats", T0 + 4)
    assert stats["running"] == 1 and stats["reserved"] == 1 and stats["parked"] == 1
