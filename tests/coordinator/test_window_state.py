"""The window states the coordinator's decisions read predict what each `limits` strategy
does: after k more starts at the same instant, `state.room(k)` is the room the window
reports, and a hit succeeds exactly when it is at least 1. (On SQLite: the strategies'
storage is the coordinator's own tables.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from trigger_do.coordinator.windows import SqlStorage, Window
from trigger_do.platform.local.database import LocalSql, init_schema
from trigger_do.platform.local.platform import schema_statements

STRATEGIES = ["moving-window", "fixed-window", "sliding-window-counter"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_state_read_predicts_every_hit_at_that_instant(tmp_path: Path, strategy: str) -> None:
    sql = LocalSql(tmp_path / "w.db")
    init_schema(sql, schema_statements())
    storage = SqlStorage(sql, "q")
    window = Window(storage, {"limit": 5, "period": 1.0, "strategy": strategy})
    rng = random.Random(7)
    now = 1_000_000.0
    for _ in range(300):
        now += rng.choice([0.0, 0.05, 0.13, 0.4, 0.77, 1.3])
        storage.now = now
        rate_id = rng.choice(["a", "b"])
        state = window.state(rate_id)
        for k in range(rng.randint(0, 7)):
            assert window.room(rate_id) == state.room(k)
            assert window.hit(rate_id) == (state.room(k) >= 1)
            if state.room(k) < 1:
                break


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_n_starts_at_once_count_as_n_starts(tmp_path: Path, strategy: str) -> None:
    sql = LocalSql(tmp_path / "w.db")
    init_schema(sql, schema_statements())
    storage = SqlStorage(sql, "q", now=1_000_000.0)
    window = Window(storage, {"limit": 5, "period": 1.0, "strategy": strategy})
    assert window.hit("a", 3)
    assert window.state("a").room() == 2 and window.state("b").room() == 5
    assert window.hit("a", 2) and window.state("a").room() == 0
    assert not window.hit("a")
