"""`python -m load tokens --count 1000`: N wait tokens, each with a waiter, completed in one
burst over HTTP (the official client's `POST /api/v1/waitpoints/tokens/{id}/complete`, N
requests at once on a real socket, half of them through the key-less callback URL); every
waiter must be told exactly once (the completion hook, what resumes a waiting run). Reports
the burst's wall time and completions per second, read back from the tokens' rows.

Runs the HTTP API in this process on a fresh SQLite file (no workers: only the requests
write), the engine's real clock."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KEY = "tr_dev_LoadTokensKey0000000000001"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load tokens",
        description="N wait tokens with a waiter each, completed in one HTTP burst: each "
        "waiter told once; how long the burst takes.",
    )
    p.add_argument("--count", type=int, default=1000, help="tokens (default 1,000)")
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight (50)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    return p


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from trigger_do.api.app import create_app
    from trigger_do.api.server import make_server
    from trigger_do.engine import Engine
    from trigger_do.platform.local.platform import open_local
    from trigger_do.waitpoints import TokenCompletion

    folder = Path(tempfile.mkdtemp(prefix="load-tokens-"))
    platform, sql = open_local(folder / "t.db")
    engine = Engine(platform)
    told: dict[str, int] = {}

    async def hook(done: list[TokenCompletion]) -> None:
        for c in done:
            told[c.waitpoint] = told.get(c.waitpoint, 0) + 1

    engine.tokens.hooks.append(hook)
    port = _port()
    server = make_server(create_app(engine, KEY), "127.0.0.1", port, handle_signals=False)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:
            made = []
            for i in range(args.count):
                r = await http.post("/api/v1/waitpoints/tokens", json={"tags": ["load"]})
                made.append(r.json())
                await engine.tokens.wait_on(made[-1]["id"], f"run_load{i}:1")
            gate = asyncio.Semaphore(args.concurrency)

            async def complete(i: int, token: dict[str, Any]) -> int:
                async with gate:
                    if i % 2:  # the callback URL: no key, the raw body is the output
                        r = await http.post(token["url"], content=json.dumps({"n": i}), headers={})
                    else:
                        path = f"/api/v1/waitpoints/tokens/{token['id']}/complete"
                        r = await http.post(path, json={"data": {"n": i}})
                    return r.status_code

            started = time.perf_counter()
            statuses = await asyncio.gather(*(complete(i, t) for i, t in enumerate(made)))
            burst = time.perf_counter() - started
    finally:
        server.should_exit = True
        await serving
    rows = sql.exec("SELECT status, count(*), min(completed_at), max(completed_at) "
                    "FROM waitpoint_tokens GROUP BY status")  # fmt: skip
    sql.close()
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    by_status = {str(s): int(n) for s, n, _, _ in rows}
    return {
        "scenario": "tokens",
        "count": args.count,
        "concurrency": args.concurrency,
        "http_200": sum(1 for s in statuses if s == 200),
        "completed": by_status.get("COMPLETED", 0),
        "waiters_told_once": sum(1 for n in told.values() if n == 1),
        "waiters_told_twice_or_more": sum(1 for n in told.values() if n > 1),
        "burst_seconds": round(burst, 3),
        "completions_per_second": round(args.count / burst, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        print(
            "python -m load tokens: --count and --concurrency must be at least 1", file=sys.stderr
        )
        return 2
    report = asyncio.run(run(args))
    print(json.dumps(report, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    ok = report["completed"] == args.count == report["waiters_told_once"] == report["http_200"]
    return 0 if ok else 1
