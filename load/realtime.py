"""`python -m load realtime --subscribers 1000 --idle 30`: N idle Realtime subscribers on one
`trigger-do dev` server. What do held subscriptions cost while nothing changes?

It starts `trigger-do dev --tasks load.tasks` (API and supervisor in one process, plus its
worker processes) on a fresh database, triggers N runs delayed by an hour (they never
change by themselves), then opens one subscriber per run that long-polls
`/realtime/v1/runs/{id}` as the official client does (a snapshot, then `live=true` requests,
each held about 20 s). Measured from /proc: the server process's CPU (user + system) and RSS
over an idle window with no subscriber (the baseline), then over the same window with all N
holding; then how long a change takes to reach its subscriber (some runs canceled, one at a
time, each timed until its subscriber's held request answers)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load realtime",
        description="N idle Realtime subscribers on one dev server: its CPU and memory.",
    )
    p.add_argument("--subscribers", type=int, default=1000, help="subscribers (1,000)")
    p.add_argument("--idle", type=float, default=30.0, help="idle window, seconds (30)")
    p.add_argument("--changes", type=int, default=20, help="runs canceled one by one (20)")
    p.add_argument("--workers", type=int, default=1, help="dev server workers (1)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    return p


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _window(pid: int, seconds: float, db: Path) -> dict[str, float]:
    """The server's CPU and RSS over `seconds`, and how often the database moved meanwhile
    (each move makes the watcher read its feeds once)."""
    from trigger_do.platform.local.changes import DataVersion

    signal_ = DataVersion(db)
    last, moves = signal_.version(), 0
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.05)  # as often as the watcher looks
        now = signal_.version()
        moves += now != last
        last = now
    cpu = _cpu_seconds(pid) - cpu0
    wall = time.monotonic() - t0
    signal_.close()
    return {
        "cpu_s": round(cpu, 3),
        "cpu_pct": round(100 * cpu / wall, 2),
        "rss_mb": round(_rss_mb(pid), 1),
        "db_moves_per_s": round(moves / wall, 2),
    }


class Subscriber:
    """One run's subscription, as the official client polls it."""

    def __init__(self, http: Any, run_id: str) -> None:
        self.http, self.run_id = http, run_id
        self.polls = 0
        self.changed: asyncio.Event = asyncio.Event()
        self.ready: asyncio.Event = asyncio.Event()

    async def run(self) -> None:
        path = f"/realtime/v1/runs/{self.run_id}"
        r = await self.http.get(path, params={"offset": "-1"})
        offset, handle = r.headers["electric-offset"], r.headers["electric-handle"]
        self.ready.set()
        while True:
            params = {"offset": offset, "handle": handle, "live": "true"}
            r = await self.http.get(path, params=params)
            self.polls += 1
            if len(r.json()) > 1:
                self.changed.set()
            offset = r.headers["electric-offset"]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    folder = Path(tempfile.mkdtemp(prefix="load-realtime-"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "trigger_do.cli", "dev", "--tasks", "load.tasks"]
    cmd += ["--port", str(port), "--db", str(folder / "t.db"), "--workers", str(args.workers)]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.subscribers + 50, max_keepalive_connections=None)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        key = (folder / "secret-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, limits=limits
        ) as http:
            items = [
                {"task": "load-noop", "payload": {"i": i}, "options": {"delay": "1h"}}
                for i in range(args.subscribers)
            ]
            made = await http.post("/api/v2/tasks/batch", json={"items": items})
            run_ids = [r["id"] for r in made.json()["runs"]]
            await asyncio.sleep(2)  # settle after the batch
            baseline = await _window(server.pid, args.idle, folder / "t.db")

            subs = [Subscriber(http, rid) for rid in run_ids]
            tasks = [asyncio.ensure_future(s.run()) for s in subs]
            await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subs)), 120)
            await asyncio.sleep(2)  # every subscriber's live request is held
            polls0 = sum(s.polls for s in subs)
            held = await _window(server.pid, args.idle, folder / "t.db")
            repolls = sum(s.polls for s in subs) - polls0

            latencies = []
            for sub in subs[: args.changes]:
                started = time.monotonic()
                await http.post(f"/api/v2/runs/{sub.run_id}/cancel")
                await asyncio.wait_for(sub.changed.wait(), 30)
                latencies.append(time.monotonic() - started)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {
        "subscribers": args.subscribers,
        "idle_seconds": args.idle,
        "baseline": baseline,
        "held": held,
        "repolls_per_s": round(repolls / args.idle, 1),
        "change_to_subscriber_ms": {
            "p50": round(1000 * statistics.median(latencies), 1),
            "max": round(1000 * max(latencies), 1),
            "n": len(latencies),
        },
    }


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    report = asyncio.run(measure(args))
    b, h = report["baseline"], report["held"]
    print(f"{report['subscribers']} idle subscribers on one dev server, {args.idle:.0f} s windows")
    print(f"  server CPU: {b['cpu_pct']}% without, {h['cpu_pct']}% with them held")
    print(f"  server RSS: {b['rss_mb']:.1f} MB without, {h['rss_mb']:.1f} MB with them")
    print(f"  held requests answered and re-sent (20 s holds): {report['repolls_per_s']}/s")
    print(f"  the database moved (workers' heartbeats...): {h['db_moves_per_s']}/s")
    c = report["change_to_subscriber_ms"]
    print(f"  a change reaches its subscriber: p50 {c['p50']} ms, max {c['max']} ms (n={c['n']})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0
