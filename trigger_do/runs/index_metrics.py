"""Metric counts kept in a run-index shard's own SQLite (Cloudflare's `/metrics`): SQLite
triggers on the `runs` and `dead_letters` tables count each change in the transaction that
makes it, so a count is exact, lost with nothing and never recomputed from rows (a retention
purge deletes runs, and no trigger counts deletions).

The table is in every shard's schema; the triggers only where a shard is a Durable Object
(`platform/cloudflare/entry.py` adds `COUNT_TRIGGERS`): locally each process counts what it
causes in prometheus-client's multiprocess files instead (`platform/local/meter.py`), and the
shards' inserts and updates stay as cheap as before.

The names are shared by both: `COUNTERS` and `HISTOGRAMS` (event -> metric name, help) and
`BUCKETS` (seconds)."""

from __future__ import annotations

import math
from typing import Any

COUNTERS = {
    "triggered": ("trigger_do_runs_triggered", "Runs triggered (new runs written), by task."),
    "started": ("trigger_do_runs_started", "Runs whose first attempt started, by task."),
    "completed": ("trigger_do_runs_completed", "Runs that completed, by task."),
    "failed": ("trigger_do_runs_failed", "Runs that ended FAILED or TIMED_OUT, by task."),
    "retried": ("trigger_do_runs_retried", "Failed attempts with a retry scheduled, by task."),
    "crashed": ("trigger_do_runs_crashed", "Runs ended CRASHED (their worker died), by task."),
    "dead_lettered": (
        "trigger_do_runs_dead_lettered",
        "Run messages moved to the dead-letter queue (delivered too often), by task.",
    ),
}
HISTOGRAMS = {
    "trigger_to_start": (
        "trigger_do_run_trigger_to_start_seconds",
        "From a run's trigger to its first attempt's start (a delay included), by task.",
    ),
    "duration": (
        "trigger_do_run_duration_seconds",
        "From a run's first start to its final outcome, by task.",
    ),
}
BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    math.inf,
)


def le_text(bound: float) -> str:
    """A bucket bound as Prometheus writes it (prometheus-client's floatToGoString)."""
    if bound == math.inf:
        return "+Inf"
    return repr(float(bound))


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS metric_counts (
        name TEXT NOT NULL, task TEXT NOT NULL, le TEXT NOT NULL DEFAULT '',
        value REAL NOT NULL DEFAULT 0, PRIMARY KEY (name, task, le)
    ) WITHOUT ROWID"""
]


def _add(name: str, task: str, value: str = "1", le: str = "''") -> str:
    return (
        f"INSERT INTO metric_counts (name, task, le, value) VALUES ('{name}', {task}, {le}, "
        f"{value}) ON CONFLICT (name, task, le) DO UPDATE SET value = value + excluded.value;"
    )


def _observe(what: str, seconds: str) -> str:
    cases = " ".join(
        f"WHEN {seconds} <= {b!r} THEN '{le_text(b)}'" for b in BUCKETS if b != math.inf
    )
    le = f"(CASE {cases} ELSE '+Inf' END)"
    return _add(f"{what}_bucket", "NEW.task", le=le) + _add(
        f"{what}_sum", "NEW.task", f"max(0, {seconds})"
    )


COUNT_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS metric_triggered AFTER INSERT ON runs
    BEGIN {_add("triggered", "NEW.task")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_started AFTER UPDATE OF started_at ON runs
    WHEN OLD.started_at IS NULL AND NEW.started_at IS NOT NULL
    BEGIN {_add("started", "NEW.task")}
      {_observe("trigger_to_start", "NEW.started_at - NEW.created_at")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_completed AFTER UPDATE OF state ON runs
    WHEN NEW.state = 'completed' AND OLD.state != NEW.state
    BEGIN {_add("completed", "NEW.task")}
      {_observe("duration", "NEW.finished_at - coalesce(NEW.started_at, NEW.finished_at)")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_failed AFTER UPDATE OF state ON runs
    WHEN NEW.state IN ('failed', 'timed_out') AND OLD.state != NEW.state
    BEGIN {_add("failed", "NEW.task")}
      {_observe("duration", "NEW.finished_at - coalesce(NEW.started_at, NEW.finished_at)")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_retried AFTER UPDATE OF state ON runs
    WHEN NEW.state = 'waiting_for_retry'
    BEGIN {_add("retried", "NEW.task")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_crashed AFTER UPDATE OF state ON runs
    WHEN NEW.state = 'crashed' AND OLD.state != NEW.state
    BEGIN {_add("crashed", "NEW.task")} END""",
    f"""CREATE TRIGGER IF NOT EXISTS metric_dead_lettered AFTER INSERT ON dead_letters
    BEGIN {_add("dead_lettered", "NEW.task")} END""",
]


def read_counts(sql: Any) -> list[list[Any]]:
    """Every count of this shard: `[name, task, le, value]`."""
    return [list(r) for r in sql.exec("SELECT name, task, le, value FROM metric_counts")]


def families(counts: list[list[Any]]) -> list[Any]:
    """Summed counts (of every shard) as prometheus-client metric families."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    total: dict[tuple[str, str, str], float] = {}
    for name, task, le, value in counts:
        total[(name, task, le)] = total.get((name, task, le), 0.0) + float(value)
    out: list[Any] = []
    for event, (metric, help_text) in COUNTERS.items():
        fam = CounterMetricFamily(metric, help_text, labels=["task"])
        for (name, task, _), value in sorted(total.items()):
            if name == event:
                fam.add_metric([task], value)
        out.append(fam)
    for what, (metric, help_text) in HISTOGRAMS.items():
        hist = HistogramMetricFamily(metric, help_text, labels=["task"])
        tasks = sorted({t for (n, t, _) in total if n == f"{what}_bucket"})
        for task in tasks:
            acc, buckets = 0.0, []
            for b in BUCKETS:
                acc += total.get((f"{what}_bucket", task, le_text(b)), 0.0)
                buckets.append((le_text(b), acc))
            hist.add_metric([task], buckets, total.get((f"{what}_sum", task, ""), 0.0))
        out.append(hist)
    return out
