"""The load tool end to end on a tiny fanout (real worker processes, real SQLite), and the
figures it derives from run rows (lost, duplicates, concurrency, rate windows)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from load.cli import main  # noqa: E402
from load.measure import (  # noqa: E402
    Limit,
    RunRecord,
    analyze,
    key_figures,
    max_concurrency,
    percentile,
    trace_counts,
    window_violations,
)
from load.scenarios import build  # noqa: E402


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


def test_waits_scenario_runs(tmp_path: Path) -> None:
    """`python -m load waits` end to end, small: every run waits, none is held, all finish."""
    out = tmp_path / "waits.json"
    assert main(["waits", "--count", "40", "--wait", "6", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["waits"]["completed"] == 40
    assert report["waits"]["while_all_waiting"]["running_max"] == 0
    assert report["children"]["outputs_right"] == 40


def _per_org_pair(tmp_path: Path, flag: str) -> dict[str, Any]:
    """`per-org` with 300 runs of 5 ms and a `--vs-...` flag: the pair's JSON report."""
    out = tmp_path / "pair.json"
    argv = ["per-org", "--runs", "300", "--work-ms", "5", flag, "--quiet"]
    code = main([*argv, "--json", str(out), "--timeout", "120", "--stall", "60"])
    pair: dict[str, Any] = json.loads(out.read_text())
    assert code == 0, pair
    return pair


def test_per_org_vs_unlimited_runs_the_same_work_both_ways(tmp_path: Path) -> None:
    both = _per_org_pair(tmp_path, "--vs-unlimited")
    limited, unlimited = both["limited"], both["unlimited"]
    assert (limited["unlimited"], unlimited["unlimited"]) == (False, True)
    for report in (limited, unlimited):
        assert report["accepted"] == report["completed"] == 300
        assert report["lost"] == 0
        assert report["duplicates"] == {
            "runs": 0,
            "extra_completions": 0,
            "completed_without_execution": 0,
            "source": "trace",
        }
    # the limit held as declared; unlimited, nothing is checked and org-0 ran wider than it
    assert limited["concurrency"]["load-org"]["ok"]
    assert limited["concurrency"]["load-org"]["max_observed"] <= 10
    assert unlimited["concurrency"] == {}
    assert unlimited["max_concurrency_all"] > 10
    lk, uk = limited["keys"], unlimited["keys"]
    assert lk["hot"]["key"] == uk["hot"]["key"] == "org-0"
    assert lk["hot"]["runs"] == uk["hot"]["runs"]  # the same plan both ways
    assert lk["ceiling_per_s"] == 2000.0  # limit 10 / 5 ms
    assert 0 < lk["hot"]["pct_of_ceiling"] <= 100
    assert uk["ceiling_per_s"] is None and uk["hot"]["pct_of_ceiling"] is None
    assert lk["others"]["completed"] == lk["others"]["runs"] == 300 - lk["hot"]["runs"]
    assert both["throughput_ratio"] == round(
        limited["completed_per_s"] / unlimited["completed_per_s"], 3
    )


def test_per_org_vs_without_hot_times_the_others_beside_the_hot_key_and_without(
    tmp_path: Path,
) -> None:
    pair = _per_org_pair(tmp_path, "--vs-without-hot")
    beside, alone = pair["with_hot"], pair["without_hot"]
    assert (beside["without"], alone["without"]) == (None, "org-0")
    hot_runs = beside["keys"]["hot"]["runs"]
    assert beside["keys"]["hot"]["key"] == alone["keys"]["hot"]["key"] == "org-0"
    assert 0 < hot_runs < 300 and alone["keys"]["hot"]["runs"] == 0
    assert alone["accepted"] == alone["completed"] == 300 - hot_runs  # the others, all
    assert beside["keys"]["others"]["runs"] == alone["keys"]["others"]["runs"] == 300 - hot_runs
    assert beside["keys"]["others"]["keys"] == alone["keys"]["others"]["keys"]
    for report in (beside, alone):
        assert report["lost"] == 0 and report["concurrency"]["load-org"]["ok"]
    a = beside["keys"]["others"]["done_after_first_start_s"]
    b = alone["keys"]["others"]["done_after_first_start_s"]
    assert pair["others_done_ratio"] == round(a / b, 3)


def test_vs_without_hot_needs_a_plan_with_other_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fanout", "--runs", "10", "--vs-without-hot"]) == 2
    assert "no keyed runs" in capsys.readouterr().err
    assert main(["hot-key", "--runs", "10", "--vs-without-hot"]) == 2
    assert "none is left without it" in capsys.readouterr().err
    assert main(["per-org", "--runs", "10", "--vs-without-hot", "--unlimited"]) == 2


def test_a_plan_without_its_hot_key_is_the_same_plan_less_its_runs() -> None:
    plan = build("mixed", runs=2000, seed=5)
    assert plan.hot == "org-0"
    alone = plan.without_hot()
    assert alone.hot == alone.without == "org-0"
    assert alone.items == [i for i in plan.items if i.key != "org-0"]
    assert len(alone.items) < len(plan.items) and alone.work_ms == plan.work_ms
    assert build("mixed", runs=2000, seed=5, without_hot=True).items == alone.items


def test_unlimited_plan_keeps_payloads_keys_and_bodies() -> None:
    from load.tasks import TASKS

    limited = build("mixed", runs=500, seed=3)
    unlimited = build("mixed", runs=500, seed=3, unlimited=True)
    assert [(i.payload, i.key) for i in limited.items] == [
        (i.payload, i.key) for i in unlimited.items
    ]
    for a, b in zip(limited.items, unlimited.items, strict=True):
        ta, tb = TASKS[a.task], TASKS[b.task]
        assert ta.fn is tb.fn and tb.concurrency is None and tb.rate_limit is None
    assert {i.task for i in limited.items} & {"load-org", "load-rate"}
    assert not {i.task for i in unlimited.items} & {"load-org", "load-rate"}


def test_key_figures_hot_key_against_its_ceiling() -> None:
    # org-0: 20 runs of 10 ms under limit 2 (ceiling 200/s), started 0.5 s in, done at 0.7 s:
    # 100/s = 50% of its ceiling. org-1: 4 runs at its ceiling (2 slots, 20 ms in all).
    hot = [
        RunRecord(f"h{i}", "t", "completed", 1, 0.0, 0.5 + i * 0.01, 0.51 + i * 0.01, "org-0")
        for i in range(20)
    ]
    other = [
        RunRecord(f"o{i}", "t", "completed", 1, 0.0, at, at + 0.01, "org-1")
        for i in range(4)
        for at in (0.1 + (i // 2) * 0.01,)
    ]
    got = key_figures(hot + other, 0.0, limit=2, work_s=0.01)
    assert got is not None
    assert got["ceiling_per_s"] == 200.0
    assert got["hot"]["key"] == "org-0" and got["hot"]["span_s"] == 0.2
    assert got["hot"]["runs_per_s"] == 100.0 and got["hot"]["pct_of_ceiling"] == 50.0
    assert got["others"]["busiest"] == {
        "key": "org-1",
        "runs": 4,
        "runs_per_s": 200.0,
        "pct_of_ceiling": 100.0,
    }
    assert got["others"]["last_finish_s"] == 0.12
    assert got["others"]["done_after_first_start_s"] == 0.02  # (org-1 started first, at 0.1)
    # named, the hot key may have no runs at all: every key is one of the others
    alone = key_figures(other, 0.0, limit=2, work_s=0.01, hot="org-0")
    assert alone is not None and alone["hot"]["runs"] == 0 and alone["hot"]["span_s"] is None
    assert alone["others"]["keys"] == 1 and alone["others"]["runs"] == 4
    assert key_figures(hot, 0.0, limit=None, work_s=0.01)["hot"]["pct_of_ceiling"] is None  # type: ignore[index]
    assert key_figures([_rec(0)], 0.0, limit=2, work_s=0.01) is None


def test_key_figures_split_the_hot_key_while_the_others_ran_and_after() -> None:
    # limit 2, 10 ms (ceiling 200/s): 10 runs by 0.10 s while org-1 ran (100/s = 50%),
    # then 20 runs alone by 0.20 s (200/s = 100%)
    ends = [0.01 * (i + 1) for i in range(10)] + [0.10 + 0.005 * (i + 1) for i in range(20)]
    hot = [
        RunRecord(f"h{i}", "t", "completed", 1, 0.0, e - 0.01, e, "org-0")
        for i, e in enumerate(ends)
    ]
    other = [RunRecord("o", "t", "completed", 1, 0.0, 0.09, 0.10, "org-1")]
    got = key_figures(hot + other, 0.0, limit=2, work_s=0.01)
    assert got is not None
    assert got["hot"]["pct_while_others_ran"] == 50.0
    assert got["hot"]["pct_after_they_finished"] == 100.0
    # the other keys done before the hot key began: no "while" phase
    late = [RunRecord(f"h{i}", "t", "completed", 1, 0.0, 1 + i * 0.01, 1.01 + i * 0.01, "org-0")
            for i in range(5)]  # fmt: skip
    got = key_figures(late + other, 0.0, limit=2, work_s=0.01)
    assert got is not None and got["hot"]["pct_while_others_ran"] is None


def test_a_large_batch_over_http_streams_as_one_batch(tmp_path: Path) -> None:
    """`--target`: 1,500 items go as one streamed batch (v3 batches + NDJSON items), not
    two v2 batch requests, and the accept time is that intake's."""
    import asyncio
    import socket
    import threading

    from trigger_do.api.app import create_app
    from trigger_do.api.server import make_server
    from trigger_do.platform.local.runtime import LocalRuntime

    key = "tr_dev_LoadSmokeStreamedBatchKey0001"
    runtime = LocalRuntime("load.tasks", tmp_path / "served.db", workers=2, poll_interval=0.01)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = make_server(create_app(runtime.engine, key), "127.0.0.1", port, handle_signals=False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(120)
    served = asyncio.run_coroutine_threadsafe(server.serve(), loop)
    out = tmp_path / "report.json"
    try:
        while not server.started:
            assert not served.done(), served.result()
            threading.Event().wait(0.01)
        url = f"http://127.0.0.1:{port}"
        argv = ["fanout", "--runs", "1500", "--target", url, "--key", key, "--quiet"]
        code = main([*argv, "--json", str(out)])
        batches = runtime.sql.exec("SELECT count(DISTINCT batch_id), count(*) FROM runs")
    finally:
        server.should_exit = True
        served.result(30)
        asyncio.run_coroutine_threadsafe(runtime.stop(grace=2), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["intake"].startswith("streamed")
    assert report["accepted"] == report["completed"] == 1500 and report["lost"] == 0
    assert report["accept_seconds"] > 0
    assert [tuple(r) for r in batches] == [(1, 1500)]  # one batch, not 1,000 + 500


def test_million_script_queues_then_drains_a_small_n(tmp_path: Path) -> None:
    """`python -m load.million` at N = 300 (the real figure is 1,000,000, out of CI)."""
    from load.million import main as million

    out = tmp_path / "million.json"
    argv = ["--runs", "300", "--chunk", "120", "--sample", "0.2", "--json", str(out)]
    assert million(argv) == 0
    report = json.loads(out.read_text())
    queue, drain = report["queue"], report["drain"]
    assert queue["states"] == {"queued": 300} and queue["queue_messages"] == 300
    assert [n for n, _ in queue["producer_rss_mib"]] == [300]  # chunks of 120: 120, 240, 300
    assert queue["db_mib"] > 0 and queue["producer_peak_mib"] > 0
    assert report["states"] == {"completed": 300}
    assert report["lost"] == report["duplicates"] == report["completed_without_execution"] == 0
    assert drain["samples"][-1]["finished"] == 300
    assert len(drain["worker_peak_mib"]) == 2 and drain["seconds"] > 0


def test_hot_key_is_per_orgs_hot_key_alone() -> None:
    """`hot-key` offers org-0's runs of `per-org` and nothing else, so its report's ceiling
    figure is the hot key's own slot turns with no other key's load beside them."""
    per_org, hot = build("per-org", runs=400, work_ms=7), build("hot-key", runs=300, work_ms=7)
    org_0 = next(i for i in per_org.items if i.key == "org-0")
    assert len(hot.items) == 300 and {(i.task, i.key) for i in hot.items} == {
        (org_0.task, "org-0")
    }
    assert {i.payload["ms"] for i in hot.items} == {7} and hot.work_ms == 7
    assert {i.task for i in build("hot-key", runs=5, unlimited=True).items} == {
        "load-org-unlimited"
    }
