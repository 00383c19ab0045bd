"""trigger.do against its peers, side by side: `python -m load.compare --runs 5000 --workers 2`.

Runs the same noop workload (enqueue N in one batch call, process N with W workers, wait
for every result) on trigger.do's embedded runtime and on each peer, round-robin for
`--repeat` rounds, and prints one table of medians with each peer's ratio to trigger.do.

Figures, for every system alike: enqueue/s = N / time of the batch enqueue call;
end-to-end/s = N / (last task finished - start of the enqueue call); latency = from the
start of the enqueue call to when each task finished (trigger.do: the run row's
finished_at, written after the body; peers: the task body's own clock, before the result
is stored, which slightly favours the peers).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PEERS = {
    "huey": ("Huey + SQLite", "load.peers.huey_peer"),
    "celery": ("Celery + Redis", "load.peers.celery_peer"),
    "dramatiq": ("Dramatiq + Redis", "load.peers.dramatiq_peer"),
    "rq": ("RQ + Redis", "load.peers.rq_peer"),
}
METRICS = ("e2e_per_s", "enqueue_per_s", "p50_ms", "p99_ms")


def trigger_do(runs: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run(
            [sys.executable, "-m", "load", "fanout", "--runs", str(runs), "--workers",
             str(workers), "--json", str(out), "--quiet"],
            cwd=ROOT, check=False, stdout=subprocess.DEVNULL,
        )
        r = json.loads(out.read_text())
    if r["lost"] or r["duplicates"]["runs"]:
        raise RuntimeError(f"trigger.do lost {r['lost']} / duplicated {r['duplicates']['runs']}")
    lat = r["latency_ms"]["trigger_to_complete"]
    return {"e2e_per_s": r["completed_per_s"], "enqueue_per_s": r["accepted_per_s"],
            "p50_ms": lat["p50"], "p99_ms": lat["p99"], "completed": r["completed"]}


PEER_TRIES = 3  # a peer's round that crashes (Huey's "database is locked", say) is run again


def peer(module: str, runs: int, workers: int) -> dict[str, Any]:
    """One round of a peer. A crashed round is run again, up to `PEER_TRIES` in all: a
    peer with its default settings fails now and then under this load, and one failure
    must not end a comparison that takes minutes. How many were run again is reported
    (`retried`) with the round."""
    cmd = [sys.executable, "-m", module, "--runs", str(runs), "--workers", str(workers)]
    for tried in range(1, PEER_TRIES + 1):
        out = subprocess.run(cmd, cwd=ROOT, check=False, stdout=subprocess.PIPE, text=True)
        if out.returncode == 0:
            break
        print(f"[compare]   {module} failed (exit {out.returncode}), try {tried} of "
              f"{PEER_TRIES}", file=sys.stderr, flush=True)  # fmt: skip
    else:
        raise RuntimeError(f"{module} failed {PEER_TRIES} times in a row")
    r = json.loads([ln for ln in out.stdout.splitlines() if ln.strip()][-1])
    if r["completed"] != runs:
        raise RuntimeError(f"{module} completed {r['completed']} of {runs}")
    return {"e2e_per_s": r["e2e_per_s"], "enqueue_per_s": r["enqueue_per_s"],
            "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"],
            "completed": r["completed"], "retried": tried - 1}


def compare(runs: int, workers: int, repeat: int, peers: list[str]) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {"trigger.do": []}
    samples.update({p: [] for p in peers})
    for rnd in range(repeat):
        for name in samples:
            print(f"[compare] round {rnd + 1}/{repeat}: {name}", file=sys.stderr, flush=True)
            got = (trigger_do(runs, workers) if name == "trigger.do"
                   else peer(PEERS[name][1], runs, workers))
            print(f"[compare]   {json.dumps(got)}", file=sys.stderr, flush=True)
            samples[name].append(got)
    medians = {
        name: {m: statistics.median(s[m] for s in rows) for m in METRICS}
        for name, rows in samples.items()
    }
    return {"runs": runs, "workers": workers, "repeat": repeat, "samples": samples,
            "medians": medians, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def rows(result: dict[str, Any]) -> list[list[str]]:
    base = result["medians"]["trigger.do"]
    out = []
    for name, m in result["medians"].items():
        label = "trigger.do (embedded)" if name == "trigger.do" else PEERS[name][0]
        ratio = "1.0x" if name == "trigger.do" else f"{base['e2e_per_s'] / m['e2e_per_s']:.1f}x"
        enq = "1.0x" if name == "trigger.do" else (
            f"{base['enqueue_per_s'] / m['enqueue_per_s']:.1f}x")
        out.append([label, f"{m['e2e_per_s']:,.0f}", f"{m['enqueue_per_s']:,.0f}",
                    f"{m['p50_ms']:,.0f}", f"{m['p99_ms']:,.0f}", ratio, enq])
    return out


HEADERS = ["system", "end-to-end runs/s", "enqueue runs/s", "p50 ms", "p99 ms",
           "trigger.do e2e speed-up", "trigger.do enqueue speed-up"]


def markdown(result: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(result)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m load.compare")
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--peers", default="huey,celery,dramatiq",
                   help=f"comma-separated, of {', '.join(PEERS)} (default huey,celery,dramatiq)")
    p.add_argument("--json", dest="json_path")
    p.add_argument("--markdown", dest="md_path", help="also write the table as Markdown")
    args = p.parse_args(argv)
    peers = [x for x in args.peers.split(",") if x]
    unknown = [x for x in peers if x not in PEERS]
    if unknown:
        p.error(f"unknown peers {unknown}")
    result = compare(args.runs, args.workers, args.repeat, peers)
    table = Table(title=f"noop x {args.runs:,}, {args.workers} workers, median of {args.repeat}")
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "system" else "right")
    for r in rows(result):
        table.add_row(*r)
    Console(width=160).print(table)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    if args.md_path:
        Path(args.md_path).write_text(markdown(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
