"""The report: a rich table for people, JSON for machines, a PNG for a glance."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _ms(d: dict[str, Any]) -> str:
    return " / ".join("-" if d.get(k) is None else f"{d[k]:,.1f}" for k in ("p50", "p95", "p99"))


def verdicts(report: dict[str, Any]) -> list[str]:
    """What broke a guarantee (empty when every check passed)."""
    bad: list[str] = []
    if report["lost"]:
        bad.append(f"{report['lost']} lost runs")
    if report["duplicates"]["runs"]:
        bad.append(f"{report['duplicates']['runs']} runs completed more than once")
    for task, c in report["concurrency"].items():
        if not c["ok"]:
            bad.append(
                f"{task}: concurrency limit not enforced yet (observed {c['max_observed']} "
                f"> limit {c['limit']} on {c['worst_key']})"
            )
    for task, r in report["rate_limits"].items():
        if not r["ok"]:
            bad.append(
                f"{task}: rate limit not enforced yet ({r['violations']} starts over "
                f"{r['limit']} per {r['period_s']:g}s; up to {r['max_in_window']} in one window)"
            )
    return bad


def render(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    variant = " (unlimited)" if report.get("unlimited") else ""
    t = Table(title=f"trigger.do load: {report['scenario']}{variant} on {report['target']}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("runs offered / accepted", f"{report['offered']:,} / {report['accepted']:,}", "")
    t.add_row(
        "accepted/s",
        f"{report['accepted_per_s']:,.0f}",
        f"in {report['accept_seconds']:.3f} s; {report.get('intake', '')}",
    )
    t.add_row(
        "completed/s (end to end)",
        f"{report['completed_per_s']:,.0f}",
        f"{report['completed']:,} in {report['wall_seconds']:.3f} s",
    )
    lat = report["latency_ms"]
    t.add_row("trigger->start p50/p95/p99 ms", _ms(lat["trigger_to_start"]), "")
    t.add_row("trigger->complete p50/p95/p99 ms", _ms(lat["trigger_to_complete"]), "")
    for task, c in report["concurrency"].items():
        note = "ok" if c["ok"] else "LIMIT NOT ENFORCED YET"
        t.add_row(
            f"max concurrency per key ({task})",
            f"{c['max_observed']} / limit {c['limit']}",
            f"{c['keys']} keys; {note}",
        )
    for task, r in report["rate_limits"].items():
        note = "ok" if r["ok"] else "LIMIT NOT ENFORCED YET"
        t.add_row(
            f"rate-window violations ({task})",
            f"{r['violations']:,}",
            f"limit {r['limit']}/{r['period_s']:g}s, max {r['max_in_window']} in a window; {note}",
        )
    keys = report.get("keys")
    if keys:
        hot, others = keys["hot"], keys["others"]
        ceiling = (
            f"{hot['pct_of_ceiling']:g}% of its ceiling {keys['ceiling_per_s']:,.0f}/s "
            f"(limit {keys['limit']} / {keys['work_ms']:g} ms)"
            if hot["pct_of_ceiling"] is not None
            else "no limit: no ceiling"
        )
        phases = [
            f"{label} {hot[name]:g}%"
            for label, name in (
                ("while the other keys ran", "pct_while_others_ran"),
                ("after", "pct_after_they_finished"),
            )
            if hot.get(name) is not None
        ]
        if phases:
            ceiling += f" ({'; '.join(phases)})"
        t.add_row(
            f"hot key {hot['key']}: runs/s over its span",
            "-" if hot["runs_per_s"] is None else f"{hot['runs_per_s']:,.0f}",
            f"{hot['completed']:,} runs in {hot['span_s'] or 0:.3f} s; {ceiling}",
        )
        b = others["busiest"]
        ideal = (
            f"; the busiest, {b['key']} ({b['runs']:,} runs): {b['runs_per_s']:,.0f}/s"
            + (f" = {b['pct_of_ceiling']:g}% of its ceiling" if b["pct_of_ceiling"] else "")
            if b is not None and b["runs_per_s"] is not None
            else ""
        )
        t.add_row(
            f"other {others['keys']} keys: runs/s over their span",
            "-" if others["runs_per_s"] is None else f"{others['runs_per_s']:,.0f}",
            f"{others['completed']:,} of {others['runs']:,} runs, the last done at "
            f"{others['last_finish_s'] or 0:.3f} s (hot key: {hot['last_finish_s'] or 0:.3f} s)"
            f"{ideal}",
        )
    t.add_row(
        "lost runs",
        f"{report['lost']:,}",
        ", ".join(f"{k}: {v}" for k, v in report["states"].items() if k != "completed"),
    )
    d = report["duplicates"]
    t.add_row("duplicate completions", f"{d['runs']:,}", f"from {d['source']}")
    t.add_row("runs with >1 attempt (never-failing tasks)", f"{report['reexecuted']:,}", "")
    rss = report.get("rss")
    if rss:
        t.add_row(
            "peak RSS per worker (MiB)",
            ", ".join(f"{v:g}" for v in rss["worker_peak_mib"]) or "-",
            f"driver {rss['driver_peak_mib']} MiB",
        )
    else:
        t.add_row("peak RSS", "n/a", "not measurable on a remote target")
    console.print(t)
    bad = verdicts(report)
    if bad:
        console.print("[bold red]checks failed:[/] " + "; ".join(bad))
    elif report.get("unlimited"):
        console.print("[bold green]checks passed:[/] 0 lost, 0 duplicates (no limits to hold)")
    else:
        console.print("[bold green]checks passed:[/] 0 lost, 0 duplicates, limits held")


def verdicts_pair(pair: dict[str, Any], names: tuple[str, str]) -> list[str]:
    """What broke a guarantee in either report of a pair."""
    return [f"{name}: {v}" for name in names for v in verdicts(pair[name])]


def _pair_table(title: str, first: str, second: str) -> Table:
    t = Table(title=title)
    t.add_column("figure")
    t.add_column(first, justify="right")
    t.add_column(second, justify="right")
    t.add_column(f"{first} / {second}", justify="right")
    return t


def _pair_row(
    t: Table, name: str, a: float | None, b: float | None, fmt: str = "{:,.0f}", ratio: int = 2
) -> None:
    """A figure of both runs of a pair, and their ratio (`ratio` decimals)."""
    t.add_row(
        name,
        "-" if a is None else fmt.format(a),
        "-" if b is None else fmt.format(b),
        f"{a / b:.{ratio}f}" if a is not None and b else "-",
    )


def _pair_verdicts(console: Console, bad: list[str], passed: str) -> None:
    if bad:
        console.print("[bold red]checks failed:[/] " + "; ".join(bad))
    else:
        console.print(f"[bold green]checks passed in both:[/] {passed}")


def render_vs_without_hot(pair: dict[str, Any], console: Console | None = None) -> None:
    """Both runs' tables, then the other keys side by side: beside the hot key, and
    without it."""
    console = console or Console()
    render(pair["with_hot"], console)
    render(pair["without_hot"], console)
    a, b = pair["with_hot"].get("keys"), pair["without_hot"].get("keys")
    hot = pair["without_hot"].get("without") or "the hot key"
    t = _pair_table(
        f"{pair['scenario']}: the other keys beside {hot}, and without it",
        f"beside {hot}",
        f"without {hot}",
    )
    if a and b:
        ao, bo = a["others"], b["others"]
        _pair_row(t, "the last done, after the first start (s)", ao["done_after_first_start_s"],
                  bo["done_after_first_start_s"], "{:.3f}", 3)  # fmt: skip
        _pair_row(t, "runs/s over their span", ao["runs_per_s"], bo["runs_per_s"], ratio=3)
        ab, bb = ao["busiest"] or {}, bo["busiest"] or {}
        _pair_row(t, f"the busiest, {ab.get('key')}: % of its ceiling",
                  ab.get("pct_of_ceiling"), bb.get("pct_of_ceiling"), "{:.1f}", 3)  # fmt: skip
        _pair_row(t, f"{hot}: % of its ceiling", a["hot"]["pct_of_ceiling"], None, "{:.1f}")
    console.print(t)
    ratio = pair.get("others_done_ratio")
    _pair_verdicts(
        console,
        verdicts_pair(pair, ("with_hot", "without_hot")),
        "0 lost, 0 duplicates, limits held"
        + (f"; the others were done {ratio:.3f}x as late beside {hot}" if ratio else ""),
    )


def render_vs(both: dict[str, Any], console: Console | None = None) -> None:
    """Both variants' tables, then the two side by side with their ratio."""
    console = console or Console()
    render(both["limited"], console)
    render(both["unlimited"], console)
    lim, unl = both["limited"], both["unlimited"]
    t = _pair_table(f"{both['scenario']}: as declared vs unlimited", "limited", "unlimited")
    _pair_row(t, "completed/s (end to end)", lim["completed_per_s"], unl["completed_per_s"])
    _pair_row(t, "wall seconds", lim["wall_seconds"], unl["wall_seconds"], "{:.3f}")
    if lim.get("keys") and unl.get("keys"):
        lh, uh = lim["keys"]["hot"], unl["keys"]["hot"]
        _pair_row(t, f"hot key {lh['key']} runs/s over its span", lh["runs_per_s"],
                  uh["runs_per_s"])  # fmt: skip
        lo, uo = lim["keys"]["others"], unl["keys"]["others"]
        _pair_row(t, "other keys runs/s over their span", lo["runs_per_s"], uo["runs_per_s"])
        _pair_row(t, "other keys: last finish (s)", lo["last_finish_s"], uo["last_finish_s"],
                  "{:.3f}")  # fmt: skip
    console.print(t)
    _pair_verdicts(
        console,
        verdicts_pair(both, ("limited", "unlimited")),
        "0 lost, 0 duplicates, limits held; "
        f"limited / unlimited throughput = {both['throughput_ratio']:.2f}",
    )


def write_json(report: dict[str, Any], path: str) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def plot(report: dict[str, Any], path: str) -> None:
    """Throughput and latency over time (needs matplotlib: pip install 'trigger-do[load]')."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'trigger-do[load]'") from None
    series = report["timeseries"]
    ts = [p["t"] for p in series]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    top.plot(ts, [p["completed_per_s"] for p in series], label="completed/s")
    top.set_ylabel("runs/s")
    top.legend(loc="upper right")
    top.set_title(f"{report['scenario']} on {report['target']}")
    for name, label in (
        ("start_p50_ms", "trigger->start p50"),
        ("complete_p50_ms", "trigger->complete p50"),
    ):
        pts = [(p["t"], p[name]) for p in series if p[name] is not None]
        if pts:
            bottom.plot([a for a, _ in pts], [b for _, b in pts], label=label)
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds since the first trigger")
    bottom.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
