"""From the runs' own rows to the report's figures: pure functions, no IO.

Every figure comes from what the engine recorded per run (created_at, started_at,
finished_at, state, attempt) plus, where the target allows it, the tasks' execution trace:
latency percentiles, throughput, max concurrency per key over the [started_at,
finished_at) intervals, rate-window violations over started_at, lost runs and duplicate
completions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

FINAL = {
    "completed",
    "failed",
    "canceled",
    "timed_out",
    "crashed",
    "expired",
    "system_failure",
}


@dataclass(frozen=True)
class RunRecord:
    id: str
    task: str
    state: str
    attempt: int
    created: float
    started: float | None
    finished: float | None
    key: str | None = None  # the concurrency / rate key the run counts against


@dataclass(frozen=True)
class Limit:
    """A task's declared limits (`concurrency={...}`, `rate_limit={...}`)."""

    concurrency: int | None = None
    rate: int | None = None
    period: float | None = None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values: Iterable[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of durations in seconds, as milliseconds."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for name, q in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        v = percentile(ordered, q)
        out[name] = None if v is None else round(v * 1000, 2)
    return out


def max_concurrency(intervals: Iterable[tuple[float, float | None]]) -> int:
    """The most intervals open at one instant. An interval ending exactly when another
    starts does not overlap it; an interval that never ended stays open."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end if end is not None else math.inf, -1))
    events.sort()  # at equal times -1 sorts before +1: ends free their slot first
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def window_violations(starts: Sequence[float], limit: int, period: float) -> tuple[int, int]:
    """Starts that exceed `limit` per moving window of `period` seconds. Returns (the most
    starts seen in one window, how many starts were over the limit in their window)."""
    ordered = sorted(starts)
    most = over = 0
    lo = 0
    eps = 1e-9
    for i, t in enumerate(ordered):
        while ordered[lo] <= t - period + eps:
            lo += 1
        in_window = i - lo + 1
        most = max(most, in_window)
        if in_window > limit:
            over += 1
    return most, over


def timeseries(records: Sequence[RunRecord], t0: float, buckets: int = 100) -> list[dict[str, Any]]:
    """Completions per second and latency medians over time, for `--plot` and `--json`."""
    done = [r for r in records if r.finished is not None]
    if not done:
        return []
    end = max(r.finished for r in done if r.finished is not None)
    width = max(0.05, (end - t0) / buckets)
    by_finish: dict[int, list[RunRecord]] = defaultdict(list)
    by_start: dict[int, list[float]] = defaultdict(list)
    for r in done:
        assert r.finished is not None
        by_finish[int((r.finished - t0) / width)].append(r)
    for r in records:
        if r.started is not None:
            by_start[int((r.started - t0) / width)].append(r.started - r.created)
    out = []
    for b in range(int((end - t0) / width) + 1):
        fin = by_finish.get(b, [])
        complete = sorted(r.finished - r.created for r in fin if r.finished is not None)
        start = sorted(by_start.get(b, []))
        p_complete, p_start = percentile(complete, 50), percentile(start, 50)
        out.append(
            {
                "t": round(b * width, 3),
                "completed_per_s": round(len(fin) / width, 1),
                "complete_p50_ms": None if p_complete is None else round(p_complete * 1000, 2),
                "start_p50_ms": None if p_start is None else round(p_start * 1000, 2),
            }
        )
    return out


def trace_counts(lines: Iterable[str]) -> Counter[str]:
    """Successful executions per run id, from the tasks' trace lines (`id\\tattempt\\tok`)."""
    counts: Counter[str] = Counter()
    for line in lines:
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 3 and parts[2] == "ok":
            counts[parts[0]] += 1
    return counts


def analyze(
    records: Sequence[RunRecord],
    *,
    offered: int,
    accepted_ids: Sequence[str],
    t0: float,
    accept_seconds: float,
    limits: dict[str, Limit],
    executions: Counter[str] | None = None,
    never_fail: Iterable[str] = (),
) -> dict[str, Any]:
    """The report's figures (JSON-native). `executions` are successful task-body executions
    per run id (from the trace) when the target allows tracing; without them, duplicates
    are estimated from runs of tasks that never fail showing more than one attempt."""
    by_id = {r.id: r for r in records}
    states = Counter(by_id[i].state if i in by_id else "missing" for i in accepted_ids)
    completed = [by_id[i] for i in accepted_ids if i in by_id and by_id[i].state == "completed"]
    lost = len(accepted_ids) - len(completed)
    finished = [r.finished for r in completed if r.finished is not None]
    end = max(finished) if finished else t0
    wall = max(end - t0, 1e-9)
    starts = [r.started - r.created for r in records if r.started is not None]
    completes = [r.finished - r.created for r in completed if r.finished is not None]

    never = set(never_fail)
    reexecuted = sum(1 for r in records if r.task in never and r.attempt > 1)
    if executions is not None:
        dup_runs = sum(1 for n in executions.values() if n > 1)
        extra = sum(n - 1 for n in executions.values() if n > 1)
        unseen = sum(1 for r in completed if executions.get(r.id, 0) == 0)
        duplicates: dict[str, Any] = {
            "runs": dup_runs,
            "extra_completions": extra,
            "completed_without_execution": unseen,
            "source": "trace",
        }
    else:
        duplicates = {"runs": reexecuted, "source": "attempts (no trace on this target)"}

    concurrency: dict[str, Any] = {}
    rate: dict[str, Any] = {}
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    for task_id, runs in sorted(by_task.items()):
        limit = limits.get(task_id)
        if limit is None:
            continue
        if limit.concurrency is not None:
            per_key: dict[str | None, list[tuple[float, float | None]]] = defaultdict(list)
            for r in runs:
                if r.started is not None:
                    per_key[r.key].append((r.started, r.finished))
            peaks = {k: max_concurrency(v) for k, v in per_key.items()}
            worst = max(peaks, key=lambda k: peaks[k]) if peaks else None
            observed = peaks.get(worst, 0) if peaks else 0
            concurrency[task_id] = {
                "limit": limit.concurrency,
                "keys": len(peaks),
                "max_observed": observed,
                "worst_key": worst,
                "ok": observed <= limit.concurrency,
            }
        if limit.rate is not None and limit.period is not None:
            per_key_starts: dict[str | None, list[float]] = defaultdict(list)
            for r in runs:
                if r.started is not None:
                    per_key_starts[r.key].append(r.started)
            most = over = 0
            for values in per_key_starts.values():
                m, o = window_violations(values, limit.rate, limit.period)
                most, over = max(most, m), over + o
            rate[task_id] = {
                "limit": limit.rate,
                "period_s": limit.period,
                "max_in_window": most,
                "violations": over,
                "ok": over == 0,
            }
    return {
        "offered": offered,
        "accepted": len(accepted_ids),
        "accept_seconds": round(accept_seconds, 4),
        "accepted_per_s": round(len(accepted_ids) / max(accept_seconds, 1e-9), 1),
        "completed": len(completed),
        "wall_seconds": round(wall, 4),
        "completed_per_s": round(len(completed) / wall, 1),
        "latency_ms": {
            "trigger_to_start": summary_ms(starts),
            "trigger_to_complete": summary_ms(completes),
        },
        "concurrency": concurrency,
        "rate_limits": rate,
        "lost": lost,
        "states": dict(states),
        "duplicates": duplicates,
        "reexecuted": reexecuted,
        "max_concurrency_all": max_concurrency(
            (r.started, r.finished) for r in records if r.started is not None
        ),
    }


def _span(runs: Sequence[RunRecord]) -> float | None:
    """First start to last finish of `runs` (None when none both started and finished)."""
    starts = [r.started for r in runs if r.started is not None]
    ends = [r.finished for r in runs if r.finished is not None]
    if not starts or not ends:
        return None
    return max(max(ends) - min(starts), 1e-9)


def _phases(
    hot: Sequence[RunRecord], others: Sequence[RunRecord], ceiling: float | None
) -> tuple[float | None, float | None]:
    """The hot key's runs/s against its ceiling (%) while the other keys still ran (its
    first start to their last finish), then alone (their last finish to its own): what
    slows it, its own slot turns or the load beside it. None where a phase is missing."""
    ends = [r.finished for r in others if r.finished is not None]
    done = sorted(r.finished for r in hot if r.state == "completed" and r.finished is not None)
    starts = [r.started for r in hot if r.started is not None]
    if not ceiling or not ends or not done or not starts:
        return None, None
    cut, first, last = max(ends), min(starts), done[-1]

    def pct(n: int, seconds: float) -> float | None:
        return round(100 * n / seconds / ceiling, 1) if seconds > 0 and n else None

    n_during = sum(1 for f in done if f <= cut)
    return pct(n_during, min(cut, last) - first), pct(len(done) - n_during, last - cut)


def key_figures(
    records: Sequence[RunRecord],
    t0: float,
    *,
    limit: int | None,
    work_s: float | None,
    hot: str | None = None,
) -> dict[str, Any] | None:
    """How the keys of a keyed scenario fared. The hot key (the one with the most runs):
    its runs/s over its own active span (its first start to its last finish) against its
    ceiling, `limit / work_s` (its slots turning over with no gap), as a percentage. The
    other keys: how far they got, their runs/s over their span and when the last of them
    finished (compare it with the same work unlimited: `--vs-unlimited`), and the busiest
    of them against the same ceiling (the small keys' runs arrive spread over the whole
    batch, so their own spans say more about delivery order than speed). Ceilings are
    None without a limit. `hot`: which key is the hot one (by default the one with the
    most runs; named, it may have none: the same plan without it, `--vs-without-hot`).
    `others.done_after_first_start_s` times the others from the first start of any run,
    so that it does not count how long the batch took to be written."""
    by_key: dict[str, list[RunRecord]] = defaultdict(list)
    for r in records:
        if r.key is not None:
            by_key[r.key].append(r)
    if not by_key:
        return None
    ceiling = limit / work_s if limit and work_s else None
    if hot is None:
        hot = max(by_key, key=lambda k: (len(by_key[k]), k))

    def done(runs: Sequence[RunRecord]) -> int:
        return sum(1 for r in runs if r.state == "completed")

    def last_finish(runs: Sequence[RunRecord], since: float | None = t0) -> float | None:
        ends = [r.finished for r in runs if r.finished is not None]
        return round(max(ends) - since, 4) if ends and since is not None else None

    runs = by_key.get(hot, [])
    span = _span(runs)
    rate = done(runs) / span if span else None
    others = [r for k, v in by_key.items() if k != hot for r in v]
    during, after = _phases(runs, others, ceiling)
    o_span = _span(others)
    rest = [k for k in by_key if k != hot]
    busiest = max(rest, key=lambda k: (len(by_key[k]), k)) if rest else None
    b_span = _span(by_key[busiest]) if busiest is not None else None
    b_rate = done(by_key[busiest]) / b_span if busiest is not None and b_span else None
    complete = sorted(r.finished - r.created for r in others if r.finished is not None)
    first = min((r.started for r in records if r.started is not None), default=None)
    return {
        "limit": limit,
        "work_ms": None if work_s is None else round(work_s * 1000, 3),
        "ceiling_per_s": None if ceiling is None else round(ceiling, 1),
        "hot": {
            "key": hot,
            "runs": len(runs),
            "completed": done(runs),
            "span_s": None if span is None else round(span, 4),
            "runs_per_s": None if rate is None else round(rate, 1),
            "pct_of_ceiling": round(100 * rate / ceiling, 1) if rate and ceiling else None,
            "pct_while_others_ran": during,
            "pct_after_they_finished": after,
            "last_finish_s": last_finish(runs),
        },
        "others": {
            "keys": len(rest),
            "runs": len(others),
            "completed": done(others),
            "span_s": None if o_span is None else round(o_span, 4),
            "runs_per_s": round(done(others) / o_span, 1) if o_span else None,
            "last_finish_s": last_finish(others),
            "done_after_first_start_s": last_finish(others, since=first),
            "trigger_to_complete_p50_ms": None
            if not complete
            else round((percentile(complete, 50) or 0.0) * 1000, 2),
            "busiest": None
            if busiest is None
            else {
                "key": busiest,
                "runs": len(by_key[busiest]),
                "runs_per_s": None if b_rate is None else round(b_rate, 1),
                "pct_of_ceiling": round(100 * b_rate / ceiling, 1) if b_rate and ceiling else None,
            },
        },
    }
