"""`load.compare` runs a crashed peer round again instead of ending the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from load import compare


def test_a_peer_round_that_crashes_is_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAKY_PEER_MARK", str(tmp_path / "mark"))
    got = compare.peer("tests.flaky_peer", 7, 2)
    assert got == {"e2e_per_s": 10.0, "enqueue_per_s": 20.0, "p50_ms": 1.0, "p99_ms": 2.0,
                   "completed": 7, "retried": 1}  # fmt: skip


def test_a_peer_that_always_crashes_ends_the_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compare, "PEER_TRIES", 2)
    with pytest.raises(RuntimeError, match="failed 2 times in a row"):
        compare.peer("tests.no_such_peer_module", 7, 2)
