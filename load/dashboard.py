"""`python -m load.dashboard --runs 20000`: how fast the dashboard's pages answer with N runs
in the database. The app (API + dashboard) on uvicorn over a real socket, on a fresh SQLite
file holding N delayed runs of `add` (no worker: nothing changes while it measures); a
signed-in client asks each page `--requests` times, one at a time. Reports p50/p95 in ms
and the page's size (the live fragments are what a page polls every 1-2 s)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import examples.tasks  # noqa: F401  (the `add` task the runs belong to)
from trigger_do.api.app import create_app
from trigger_do.api.server import make_server
from trigger_do.dashboard.login import login_url
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.producer.producer import TriggerRequest

KEY = "tr_dev_DashboardLoadKey0000000000000000"


async def seed(engine: Engine, runs: int) -> str:
    made = ""
    for start in range(0, runs, 500):
        batch = [
            TriggerRequest("add", {"a": i, "b": 1}, {"delay": "1d", "tags": [f"t{i % 10}"]})
            for i in range(start, min(runs, start + 500))
        ]
        made = (await engine.batch_trigger(batch)).runs[-1].id
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m load.dashboard", description=__doc__)
    p.add_argument("--runs", type=int, default=20_000)
    p.add_argument("--requests", type=int, default=50)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        platform, _ = open_local(Path(tmp) / "dash.db")
        engine = Engine(platform)
        began = time.perf_counter()
        run_id = asyncio.run(seed(engine, args.runs))
        print(f"seeded {args.runs} runs in {time.perf_counter() - began:.1f} s", flush=True)
        app = create_app(engine, KEY)
        loop = asyncio.new_event_loop()
        server = make_server(app, "127.0.0.1", 0, handle_signals=False)
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        served = asyncio.run_coroutine_threadsafe(server.serve(), loop)
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        pages = {
            "runs list": "/runs",
            "runs list, filtered": "/runs?status=DELAYED&task=add&tag=t3",
            "runs rows (live fragment)": "/runs/_rows",
            "run": f"/runs/{run_id}",
            "run (live fragment)": f"/runs/{run_id}/_live",
            "tasks": "/tasks",
            "queues": "/queues",
        }
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                client.get(login_url(app, url, time.time()))
                print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'KiB':>6}")
                for name, path in pages.items():
                    times = []
                    size = 0
                    for _ in range(args.requests):
                        t = time.perf_counter()
                        r = client.get(path)
                        times.append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                        size = len(r.content)
                    times.sort()
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    print(
                        f"{name:<28} {statistics.median(times):8.1f} {p95:8.1f} {size / 1024:6.1f}"
                    )
        finally:
            server.should_exit = True
            served.result(30)
            loop.call_soon_threadsafe(loop.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
