"""What metrics and tracing cost: `python -m load fanout` with both off, metrics on, tracing
on (exported over OTLP/HTTP to a local sink that accepts and drops every request) and both
on, alternating round by round (off, metrics, tracing, both; then again), medians reported.

    python -m load.observe_overhead --runs 20000 --repeat 3 --json observe.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "both off": {"TRIGGER_DO_METRICS": "off", "TRIGGER_DO_TRACING": "off"},
    "metrics on": {"TRIGGER_DO_METRICS": "on", "TRIGGER_DO_TRACING": "off"},
    "tracing on": {"TRIGGER_DO_METRICS": "off", "OTEL": "1"},
    "both on": {"TRIGGER_DO_METRICS": "on", "OTEL": "1"},
}


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that accepts every export and keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def one(config: str, runs: int, sink: str, workdir: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRIGGER_DO_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for name, value in CONFIGS[config].items():
        if name == "OTEL":
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink
        else:
            env[name] = value
    out = workdir / f"{config.replace(' ', '-')}.json"
    cmd = [sys.executable, "-m", "load", "fanout", "--runs", str(runs), "--json", str(out)]
    subprocess.run([*cmd, "--quiet"], env=env, cwd=workdir, check=True, capture_output=True)
    found: dict[str, Any] = json.loads(out.read_text())
    assert found["lost"] == 0 and found["completed"] == runs, found
    return found


def micro(n: int = 100_000) -> dict[str, float]:
    """Microseconds per call of what a run records: a counter, a histogram observation
    (FileMeter), an attempt span and a trigger span (OpenTelemetry SDK, batch processor,
    an exporter that drops)."""
    import time

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from trigger_do.platform.local.meter import FileMeter
    from trigger_do.shared.otel import OtelTracing

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        meter = FileMeter(Path(tmp))
        meter.count("started", "t")
        meter.observe("duration", "t", 0.01)
        t = time.perf_counter()
        for _ in range(n):
            meter.count("started", "t")
        out["counter inc"] = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for _ in range(n):
            meter.observe("duration", "t", 0.01)
        out["histogram observe"] = (time.perf_counter() - t) / n * 1e6
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=n))
    otel = OtelTracing(tracer_provider=provider)
    spans = n // 5
    t = time.perf_counter()
    for _ in range(spans):
        with otel.trigger(["t"], False):
            parent = otel.carrier()
    out["trigger span"] = (time.perf_counter() - t) / spans * 1e6
    t = time.perf_counter()
    for _ in range(spans):
        with otel.attempt(parent, "t", "run_x", 1) as span:
            otel.outcome(span, {"state": "completed"})
    out["attempt span"] = (time.perf_counter() - t) / spans * 1e6
    provider.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--micro", action="store_true", help="only the per-call costs (us)")
    args = p.parse_args(argv)
    if args.micro:
        costs = [micro() for _ in range(3)]
        for name in costs[0]:
            print(f"{name}: {statistics.median(c[name] for c in costs):.1f} us (median of 3)")
        return 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}"
    rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for config in CONFIGS:
                res = one(config, args.runs, sink, Path(tmp))
                rounds[config].append(res)
                print(
                    f"round {r + 1} {config:>10}: completed {res['completed_per_s']:>8,.0f}/s, "
                    f"accepted {res['accepted_per_s']:>8,.0f}/s",
                    flush=True,
                )
    server.shutdown()
    base = statistics.median(x["completed_per_s"] for x in rounds["both off"])
    table = []
    print(
        "\n| configuration | completed runs/s (median) | accepted runs/s (median) | vs both off |"
    )
    print("|---|---|---|---|")
    for config, results in rounds.items():
        done = statistics.median(x["completed_per_s"] for x in results)
        accepted = statistics.median(x["accepted_per_s"] for x in results)
        row = {"config": config, "completed_per_s": done, "accepted_per_s": accepted,
               "each": [x["completed_per_s"] for x in results], "ratio": done / base}  # fmt: skip
        table.append(row)
        print(f"| {config} | {done:,.0f} | {accepted:,.0f} | {done / base:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "rows": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
