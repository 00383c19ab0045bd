"""`python -m load tokens --count 1000 [--runs]`: N wait tokens, each with a waiter, completed
in one burst over HTTP (the official client's `POST /api/v1/waitpoints/tokens/{id}/complete`, N
requests at once on a real socket, half of them through the key-less callback URL); every
waiter must be told exactly once (the completion hook, what resumes a waiting run). Reports
the burst's wall time and completions per second, read back from the tokens' rows.

Runs the HTTP API in this process on a fresh SQLite file (no workers: only the requests
write), the engine's real clock. With `--runs`, each waiter is a run of `load-token-wait`
(load/token_tasks.py) on the embedded runtime's `--workers` processes, suspended on its own
token (`ctx.wait_token` + `token.wait()`): the report adds how long until every run resumed
and completed, and that each completed once with its token's output."""

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
    p.add_argument("--runs", action="store_true", help="the waiters are suspended runs")
    p.add_argument("--workers", type=int, default=2, help="with --runs: worker processes (2)")
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
    runtime = None
    if args.runs:
        from trigger_do.platform.local.runtime import LocalRuntime

        runtime = LocalRuntime("load.token_tasks", folder / "t.db", workers=args.workers)
        await runtime.start()
        engine, sql = runtime.engine, runtime.sql
    else:
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
            if runtime is not None:
                from trigger_do.producer.producer import TriggerRequest

                reqs = [TriggerRequest("load-token-wait", {}) for _ in range(args.count)]
                await engine.batch_trigger(reqs)
                while len(made) < args.count:  # every run suspended on its token
                    await asyncio.sleep(0.2)
                    made = await _all_tokens(http)
                while int(sql.exec("SELECT count(*) FROM runs WHERE state = 'waiting'")[0][0]) < (
                    args.count
                ):
                    await asyncio.sleep(0.2)
            else:
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
            resumed = None
            if runtime is not None:
                while (
                    int(sql.exec("SELECT count(*) FROM runs WHERE state = 'completed'")[0][0])
                    < args.count
                    and time.perf_counter() - started < 600
                ):
                    await asyncio.sleep(0.05)
                resumed = time.perf_counter() - started
    finally:
        server.should_exit = True
        await serving
    runs_report: dict[str, Any] = {}
    if runtime is not None:
        rows = sql.exec("SELECT state, output, attempt FROM runs")
        outs = [json.loads(o) for st, o, _ in rows if st == "completed" and o]
        by_token = {o["token"]: o for o in outs}
        runs_report = {
            "runs_completed": len(outs),
            "runs_with_their_tokens_output": sum(
                1 for t in made if by_token.get(t["id"], {}).get("ok")
            ),
            "resume_all_seconds": round(resumed or 0.0, 3),
            "workers": args.workers,
        }
    rows = sql.exec("SELECT status, count(*), min(completed_at), max(completed_at) "
                    "FROM waitpoint_tokens GROUP BY status")  # fmt: skip
    if runtime is not None:
        await runtime.stop()
    else:
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
        **runs_report,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }


async def _all_tokens(http: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, str] = {"page[size]": "100", "filter[tags]": "load-run"}
    while True:
        got = (await http.get("/api/v1/waitpoints/tokens", params=params)).json()
        out += got["data"]
        if not got["pagination"].get("next"):
            return out
        params["page[after]"] = got["pagination"]["next"]


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
    ok = report["completed"] == args.count == report["http_200"]
    if args.runs:  # the waiters are the engine's own resume hook's: the runs say it
        ok = (
            ok and report["runs_completed"] == report["runs_with_their_tokens_output"] == args.count
        )
    else:
        ok = ok and report["waiters_told_once"] == args.count
    return 0 if ok else 1
