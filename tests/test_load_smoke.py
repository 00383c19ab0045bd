"""The load tool end to end on a tiny fanout (real worker processes, real SQLite), and the
figures it derives from run rows (lost, duplicates, concurrency, rate windows)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.cli import main  # noqa: E402
from load.measure import (  # noqa: E402
    Limit,
    RunRecord,
    analyze,
    max_concurrency,
    percentile,
    trace_counts,
    window_violations,
)


def test_fanout_200_completes_once_each(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code = main(
        [
            "fanout",
            "--runs",
            "200",
            "--workers",
            "2",
            "--json",
            str(out),
            "--quiet",
            "--timeout",
            "120",
            "--stall",
            "60",
        ]
    )
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["accepted"] == 200
    assert report["completed"] == 200
    assert report["lost"] == 0
    assert report["states"] == {"completed": 200}
    assert report["duplicates"]["source"] == "trace"
    assert report["duplicates"]["runs"] == 0
    assert report["duplicates"]["completed_without_execution"] == 0
    lat = report["latency_ms"]["trigger_to_complete"]
    assert lat["p50"] is not None and 0 <= lat["p50"] <= lat["p99"]
    assert report["completed_per_s"] > 0
    assert report["rss"]["worker_peak_max_mib"] > 0


def _rec(
    i: int,
    state: str = "completed",
    started: float = 1.0,
    finished: float = 2.0,
    task: str = "t",
    key: str | None = None,
    attempt: int = 1,
) -> RunRecord:
    return RunRecord(f"r{i}", task, state, attempt, 0.0, started, finished, key)


def test_analyze_counts_lost_and_duplicate_runs() -> None:
    records = [_rec(0), _rec(1, state="queued", started=None, finished=None)]  # type: ignore[arg-type]
    executions = trace_counts(["r0\t1\tok\n", "r0\t1\tok\n", "r1\t1\terror\n"])
    out = analyze(
        records,
        offered=3,
        accepted_ids=["r0", "r1", "r2"],
        t0=0.0,
        accept_seconds=0.5,
        limits={},
        executions=executions,
    )
    assert out["lost"] == 2  # r1 never finished, r2 has no row at all
    assert out["states"] == {"completed": 1, "queued": 1, "missing": 1}
    assert out["duplicates"]["runs"] == 1
    assert out["duplicates"]["extra_completions"] == 1


def test_analyze_flags_concurrency_and_rate_violations() -> None:
    # org-a: 3 overlapping runs (limit 2); org-b: 2 back to back (never overlapping)
    records = [_rec(i, started=1.0 + i * 0.1, finished=2.0, task="org", key="a") for i in range(3)]
    records += [
        _rec(10, started=1.0, finished=1.5, task="org", key="b"),
        _rec(11, started=1.5, finished=1.9, task="org", key="b"),
    ]
    # 5 starts within one second against a limit of 4 per second, then one later
    records += [_rec(20 + i, started=5.0 + i * 0.1, task="rate") for i in range(5)]
    records.append(_rec(30, started=7.0, task="rate"))
    limits = {"org": Limit(concurrency=2), "rate": Limit(rate=4, period=1.0)}
    out = analyze(
        records,
        offered=len(records),
        accepted_ids=[r.id for r in records],
        t0=0.0,
        accept_seconds=1.0,
        limits=limits,
        executions=Counter(r.id for r in records),
    )
    assert out["concurrency"]["org"] == {
        "limit": 2,
        "keys": 2,
        "max_observed": 3,
        "worst_key": "a",
        "ok": False,
    }
    assert out["rate_limits"]["rate"]["max_in_window"] == 5
    assert out["rate_limits"]["rate"]["violations"] == 1
    assert not out["rate_limits"]["rate"]["ok"]


def test_interval_and_window_edges() -> None:
    assert max_concurrency([(0, 1), (1, 2)]) == 1  # one ends as the next starts
    assert max_concurrency([(0, None), (5, 6)]) == 2  # an unfinished run stays open
    assert window_violations([0.0, 0.5, 1.0], 2, 1.0) == (2, 0)  # window (t-1, t]
    assert window_violations([0.0, 0.5, 0.99], 2, 1.0) == (3, 1)
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile([], 50) is None


def test_realtime_load_on_a_few_subscribers(tmp_path: Path) -> None:
    """`python -m load realtime` end to end, tiny: a dev server, 5 held subscribers, 2
    changes that reach theirs."""
    out = tmp_path / "rt.json"
    args = ["realtime", "--subscribers", "5", "--idle", "1", "--changes", "2"]
    assert main([*args, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["subscribers"] == 5 and report["change_to_subscriber_ms"]["n"] == 2
    assert report["held"]["rss_mb"] > 0 and report["held"]["cpu_s"] >= 0
