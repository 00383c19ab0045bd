"""`trigger-do load SCENARIO ...` / `python -m load SCENARIO ...`: run a scenario, watch it,
report. Exit status: 0 when every check held (0 lost, 0 duplicates, limits held), 1 when
one broke, 2 on a usage error."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import report as rep
from .drivers import Driver, EmbeddedDriver, HttpDriver
from .measure import analyze, trace_counts
from .scenarios import NEVER_FAIL, SCENARIOS, Plan, build, declared_limits


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trigger-do load",
        description="Load-test trigger.do: embedded (default) or a server (--target URL).",
    )
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="what to offer (see load/README.md)")
    p.add_argument("--runs", type=int, help="how many runs (default: the scenario's)")
    p.add_argument(
        "--rate", type=float, help="offered runs/s (default: one batch, or the scenario's rate)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="steady: seconds (default 10)")
    p.add_argument("--workers", type=int, default=2, help="embedded worker processes (2)")
    p.add_argument(
        "--work-ms",
        type=float,
        default=10.0,
        help="per-org, hot-key: ms each run holds its slot (10)",
    )
    p.add_argument("--target", help="a running server's URL (else the embedded runtime)")
    p.add_argument("--key", help="the server's secret key (default: $TRIGGER_SECRET_KEY)")
    p.add_argument("--db", help="embedded: keep the database here (default: a temp folder)")
    p.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="give up waiting for completions after this many seconds (900)",
    )
    p.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="give up when nothing finished for this many seconds (60)",
    )
    p.add_argument(
        "--unlimited",
        action="store_true",
        help="the identical work with every concurrency and rate limit removed",
    )
    p.add_argument(
        "--vs-unlimited",
        action="store_true",
        help="run the scenario as declared, then --unlimited; report both and their ratio",
    )
    p.add_argument(
        "--vs-without-hot",
        action="store_true",
        help="run the scenario as declared, then without its hot key's runs; report how "
        "the other keys fared in both (does the hot key slow them?)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency over time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:])[:1] == ["realtime"]:
        from .realtime import main as realtime_main  # its own options (load/realtime.py)

        return realtime_main((argv if argv is not None else sys.argv[1:])[1:])
    if (argv if argv is not None else sys.argv[1:])[:1] == ["schedules"]:
        from .schedules import main as schedules_main  # its own options (load/schedules.py)

        return schedules_main((argv if argv is not None else sys.argv[1:])[1:])
    if (argv if argv is not None else sys.argv[1:])[:1] == ["tokens"]:
        from .tokens import main as tokens_main  # its own options (load/tokens.py)

        return tokens_main((argv if argv is not None else sys.argv[1:])[1:])
    if (argv if argv is not None else sys.argv[1:])[:1] == ["events"]:
        from .events import main as events_main  # its own options (load/events.py)

        return events_main((argv if argv is not None else sys.argv[1:])[1:])
    if (argv if argv is not None else sys.argv[1:])[:1] == ["waits"]:
        from .waits import main as waits_main  # its own options (load/waits.py)

        return waits_main((argv if argv is not None else sys.argv[1:])[1:])
    args = parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        print("trigger-do load: --runs must be at least 1", file=sys.stderr)
        return 2
    if args.target:
        key = args.key or os.environ.get("TRIGGER_SECRET_KEY")
        if not key:
            print("trigger-do load: --target needs --key or TRIGGER_SECRET_KEY", file=sys.stderr)
            return 2
    if args.unlimited and args.vs_unlimited:
        print("trigger-do load: --unlimited and --vs-unlimited exclude each other", file=sys.stderr)
        return 2
    if args.vs_without_hot:
        if args.unlimited or args.vs_unlimited:
            print(
                "trigger-do load: --vs-without-hot goes with neither --unlimited nor "
                "--vs-unlimited",
                file=sys.stderr,
            )
            return 2
        try:
            build(args.scenario, runs=args.runs, seed=args.seed, without_hot=True)
        except ValueError as exc:
            print(f"trigger-do load: --vs-without-hot: {exc}", file=sys.stderr)
            return 2
    console = Console(stderr=False)
    if args.vs_without_hot:
        pair = asyncio.run(run_vs_without_hot(args))
        names = ("with_hot", "without_hot")
        return _report_pair(pair, names, rep.render_vs_without_hot, console, args)
    if args.vs_unlimited:
        both = asyncio.run(run_vs_unlimited(args))
        return _report_pair(both, ("limited", "unlimited"), rep.render_vs, console, args)
    report = asyncio.run(run(args))
    rep.render(report, console)
    if args.json_path:
        rep.write_json(report, args.json_path)
    if args.plot:
        rep.plot(report, args.plot)
    return 1 if rep.verdicts(report) else 0


def _report_pair(
    pair: dict[str, Any],
    names: tuple[str, str],
    render: Callable[[dict[str, Any], Console], None],
    console: Console,
    args: argparse.Namespace,
) -> int:
    """Print (and write, and plot the first of) the two runs of a `--vs-...` pair; the
    exit status of the pair's checks."""
    render(pair, console)
    if args.json_path:
        rep.write_json(pair, args.json_path)
    if args.plot:
        rep.plot(pair[names[0]], args.plot)
    return 1 if rep.verdicts_pair(pair, names) else 0


def make_driver(args: argparse.Namespace, db_suffix: str = "") -> Driver:
    if args.target:
        return HttpDriver(args.target, args.key or os.environ.get("TRIGGER_SECRET_KEY", ""))
    return EmbeddedDriver(args.workers, args.db + db_suffix if args.db else None)


async def _run_pair(
    args: argparse.Namespace, flag: str, names: tuple[str, str], suffix: str
) -> dict[str, Any]:
    """The scenario as declared, then again with `args.<flag>` set (each on a fresh
    database when embedded: `--db PATH` keeps the second at PATH<suffix>): both reports,
    under `names`."""
    first = await run(argparse.Namespace(**{**vars(args), flag: False}))
    second = await run(argparse.Namespace(**{**vars(args), flag: True}), db_suffix=suffix)
    return {
        "scenario": first["scenario"],
        "command": first["command"],
        "date": first["date"],
        names[0]: first,
        names[1]: second,
    }


async def run_vs_unlimited(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario as declared, then the identical work unlimited, and the ratio of
    their end-to-end throughputs."""
    pair = await _run_pair(args, "unlimited", ("limited", "unlimited"), ".unlimited")
    ratio = pair["limited"]["completed_per_s"] / max(pair["unlimited"]["completed_per_s"], 1e-9)
    return {**pair, "throughput_ratio": round(ratio, 3)}


async def run_vs_without_hot(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario as declared, then the same plan less its hot key's runs, and how much
    later the other keys were done beside the hot key than without it (each timed from
    its first start, so that the smaller batch's faster intake does not count)."""
    pair = await _run_pair(args, "without_hot", ("with_hot", "without_hot"), ".without-hot")
    a, b = (
        (pair[name].get("keys") or {}).get("others", {}).get("done_after_first_start_s")
        for name in ("with_hot", "without_hot")
    )
    return {**pair, "others_done_ratio": round(a / b, 3) if a and b else None}


async def run(
    args: argparse.Namespace, driver: Driver | None = None, db_suffix: str = ""
) -> dict[str, Any]:
    """Run `args.scenario` end to end and return the report (JSON-native)."""
    plan = build(
        args.scenario,
        runs=args.runs,
        rate=args.rate,
        duration=args.duration,
        work_ms=args.work_ms,
        seed=args.seed,
        unlimited=getattr(args, "unlimited", False),
        without_hot=getattr(args, "without_hot", False),
    )
    driver = driver or make_driver(args, db_suffix)
    await driver.start()
    try:
        figures = await _drive(plan, driver, args)
    finally:
        await driver.stop()
    lines = driver.trace_lines()  # after stop: the workers have written their traces out
    cleanup = getattr(driver, "cleanup", None)
    if cleanup is not None:
        cleanup()
    ids, records, t0, accept_seconds, rss = figures
    limits = declared_limits()
    result = analyze(
        records,
        offered=len(plan.items),
        accepted_ids=ids,
        t0=t0,
        accept_seconds=accept_seconds,
        limits=limits,
        executions=trace_counts(lines) if lines is not None else None,
        never_fail=NEVER_FAIL,
    )
    from .measure import key_figures, timeseries

    keyed_task = next((i.task for i in plan.items if i.key is not None), None)
    keyed_limit = limits.get(keyed_task) if keyed_task is not None else None
    keys = key_figures(
        [r for r in records if r.task == keyed_task],
        t0,
        limit=keyed_limit.concurrency if keyed_limit is not None else None,
        work_s=plan.work_ms / 1000 if plan.work_ms else None,
        hot=plan.hot,
    )
    return {
        "scenario": plan.scenario,
        "unlimited": plan.unlimited,
        "without": plan.without,
        "description": plan.description,
        "target": driver.label,
        "intake": getattr(driver, "intake", "engine.batch_trigger (in process)"),
        "offered_rate": plan.rate,
        "command": "trigger-do load " + " ".join(sys.argv[1:]) if sys.argv else "",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": rep.machine(),
        **result,
        "keys": keys,
        "rss": rss,
        "timeseries": timeseries(records, t0),
    }


async def _drive(plan: Plan, driver: Driver, args: argparse.Namespace) -> Any:
    n = len(plan.items)
    ids: list[str] = []
    keys: dict[str, str | None] = {}
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        disable=args.quiet,
        transient=False,
    )
    accepted_bar = progress.add_task("accepted", total=n, rate="")
    done_bar = progress.add_task("completed", total=n, rate="")
    t0 = time.time()
    accept_seconds = 0.0

    async def offer() -> None:
        nonlocal accept_seconds
        if plan.rate is None:
            got = await driver.submit(plan.items, batch=True)
            _remember(got, plan.items[: len(got)])
        else:
            sent = 0
            tick = max(0.005, min(0.05, 1.0 / plan.rate))
            while sent < n:
                due = min(n, int(plan.rate * (time.time() - t0)) + 1)
                if due > sent:
                    chunk = plan.items[sent:due]
                    _remember(await driver.submit(chunk, batch=False), chunk)
                    sent = due
                await asyncio.sleep(tick)
        accept_seconds = time.time() - t0
        progress.update(
            accepted_bar, completed=len(ids), rate=f"{len(ids) / max(accept_seconds, 1e-9):,.0f}/s"
        )

    def _remember(got: list[str], items: Any) -> None:
        ids.extend(got)
        for rid, item in zip(got, items, strict=True):
            if item.key is not None:
                keys[rid] = item.key
        progress.update(accepted_bar, completed=len(ids))

    with progress:
        offering = asyncio.ensure_future(offer())
        last_done, last_change = -1, time.time()
        try:
            while True:
                await asyncio.sleep(0.2)
                done = await driver.finished()
                sample = getattr(driver, "sample_rss", None)
                if sample is not None:
                    sample()
                elapsed = time.time() - t0
                progress.update(done_bar, completed=done, rate=f"{done / elapsed:,.0f}/s")
                if done != last_done:
                    last_done, last_change = done, time.time()
                if offering.done():
                    offering.result()  # raise what the submission raised
                    if done >= len(ids):
                        break
                if elapsed > args.timeout or time.time() - last_change > args.stall:
                    progress.console.print(
                        f"[yellow]gave up waiting: {done:,} of {len(ids):,} finished[/]"
                    )
                    break
        finally:
            if not offering.done():
                offering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await offering
    records = await driver.collect(ids, keys)
    return ids, records, t0, accept_seconds, driver.rss()


if __name__ == "__main__":
    sys.exit(main())
