"""CPU time of the Cloudflare Worker's queue consumer and producer, on CPython and under
Pyodide 314 (the Python Workers runtime) in Node through the real Python Workers SDK.

    python -m load.cf_cpu [--batches 7] [--sizes 1,2,4,8] [--json FILE]

Both runs drive the same engine code over fakes of the bindings: on CPython the fast
contract-test fakes (tests/cloudflare/cf_fakes.py), under Pyodide the JS stand-ins with
workerd's class names behind the SDK's wrappers (tests/pyodide/sdk_cloud.py). Figures are
the Worker's own CPU (process CPU minus what the Durable Objects spent, which on Workers
runs in their own isolates under their own limits), medians over `--batches` batches:

- one consumer batch of 100 noop runs (`queue`: claim, start, run, coalesced finish);
- a trigger with a payload of N MiB (stored in R2 as a packet) and its consumption.

`cpu_ms` in wrangler.toml's `[limits]` bounds one invocation's CPU; the largest packet
that fits is extrapolated from the per-MiB slope. This file is also the Pyodide script
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigger_do import task
from trigger_do.producer.producer import TriggerRequest

RUN_QUEUE = "trigger-do-runs"
MIB = 1 << 20


@task(id="cf-cpu-noop")
async def noop(payload: object = None) -> None:
    return None


@task(id="cf-cpu-packet")
async def packet(payload: dict[str, str]) -> int:
    return len(payload["blob"])


async def measure(
    cloud: Any,
    cpu: Callable[[], float],
    object_cpu: Callable[[], float],
    batches: int,
    sizes: list[int],
) -> dict[str, Any]:
    """Milliseconds of the Worker's CPU per consumer batch of 100 noop runs, and per packet."""
    engine = cloud.engine()

    def worker_ms(since: tuple[float, float]) -> float:
        return ((cpu() - since[0]) - (object_cpu() - since[1])) * 1000

    await engine.batch_trigger([TriggerRequest("cf-cpu-noop", None) for _ in range(100)])
    assert await cloud.deliver(RUN_QUEUE) == 100  # warm-up: imports, schemas, first objects
    per_batch = []
    for _ in range(batches):
        await engine.batch_trigger([TriggerRequest("cf-cpu-noop", None) for _ in range(100)])
        start = (cpu(), object_cpu())
        assert await cloud.deliver(RUN_QUEUE) == 100
        per_batch.append(worker_ms(start))
    packets = []
    for mib in sizes:
        payload = {"blob": "x" * (mib * MIB)}
        start = (cpu(), object_cpu())
        run = await engine.trigger(TriggerRequest("cf-cpu-packet", payload))
        trigger_ms = worker_ms(start)
        start = (cpu(), object_cpu())
        assert await cloud.deliver(RUN_QUEUE) == 1
        consume_ms = worker_ms(start)
        row = await engine.get_run(run.id)
        assert row["state"] == "completed" and row["output"] == mib * MIB, row["state"]
        packets.append({"mib": mib, "trigger_ms": trigger_ms, "consume_ms": consume_ms})
    return {"batch_ms": statistics.median(per_batch), "batches": per_batch, "packets": packets}


def slope_ms_per_mib(packets: list[dict[str, Any]], key: str) -> float:
    """Least-squares slope of `key` against the size (the fixed cost drops out)."""
    xs = [p["mib"] for p in packets]
    ys = [p[key] for p in packets]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else my


# --- under Pyodide ------------------------------------------------------------------------------


PYODIDE_SCRIPT = """# ruff: noqa
import sys
sys.path.insert(0, "/home/pyodide/src")
from load.cf_cpu import pyodide_main
await pyodide_main(%d, %r)
"""


async def pyodide_main(batches: int, sizes: list[int]) -> None:  # pragma: no cover - in Node
    import js  # type: ignore[import-not-found]

    sys.path.insert(0, "/home/pyodide/src/pyodide")
    from sdk_cloud import make_cloud  # type: ignore[import-not-found]

    cloud = make_cloud(shards=16)

    def cpu() -> float:
        used = js.process.cpuUsage()
        return float(used.user + used.system) / 1e6

    def object_cpu() -> float:
        return sum(float(ns.cpuMicros) for ns in cloud.namespaces.values()) / 1e6

    result = await measure(cloud, cpu, object_cpu, batches, sizes)
    print("RESULT " + json.dumps(result))


# --- on CPython -------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


async def cpython_run(batches: int, sizes: list[int]) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests" / "cloudflare"))
    from cf_fakes import make_cloud  # type: ignore[import-not-found]

    cloud = make_cloud(shards=16)

    def object_cpu() -> float:
        return sum(ns.cpu_seconds for ns in cloud.namespaces.values())

    return await measure(cloud, time.process_time, object_cpu, batches, sizes)


def pyodide_run(batches: int, sizes: list[int]) -> dict[str, Any]:
    path = ROOT / "tests" / "pyodide" / "harness.py"
    spec = importlib.util.spec_from_file_location("pyodide_harness", path)
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "cf_cpu_pyodide.py"
        script.write_text(PYODIDE_SCRIPT % (batches, sizes))
        proc = harness.run_in_pyodide(script, ["trigger_do", "tests/pyodide", "load"], timeout=1200)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])  # type: ignore[no-any-return]
    raise SystemExit(f"the Pyodide run failed:\n{proc.stdout}\n{proc.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load.cf_cpu", description=__doc__)
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--sizes", default="1,2,4,8", help="packet sizes in MiB, comma-separated")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    cpython = asyncio.run(cpython_run(args.batches, sizes))
    pyodide = pyodide_run(args.batches, sizes)
    cpu_ms = int(tomllib.loads((ROOT / "wrangler.toml").read_text())["limits"]["cpu_ms"])
    out: dict[str, Any] = {"cpu_ms": cpu_ms, "cpython": cpython, "pyodide": pyodide}
    print(f"{'':34}{'CPython':>12}{'Pyodide 314':>14}{'ratio':>8}")
    ratio = pyodide["batch_ms"] / cpython["batch_ms"]
    print(f"{'consumer batch of 100 noop (ms)':34}{cpython['batch_ms']:>12.1f}"
          f"{pyodide['batch_ms']:>14.1f}{ratio:>7.1f}x")  # fmt: skip
    for c, p in zip(cpython["packets"], pyodide["packets"], strict=True):
        for key in ("trigger_ms", "consume_ms"):
            label = f"{c['mib']} MiB packet, {key.split('_')[0]} (ms)"
            print(f"{label:34}{c[key]:>12.1f}{p[key]:>14.1f}{p[key] / c[key]:>7.1f}x")
    for key in ("trigger_ms", "consume_ms"):
        slope = slope_ms_per_mib(pyodide["packets"], key)
        out[f"pyodide_{key}_per_mib"] = slope
        largest = cpu_ms / slope if slope > 0 else float("inf")
        out[f"largest_mib_{key.split('_')[0]}"] = largest
        print(f"Pyodide {key.split('_')[0]}: {slope:.1f} ms per MiB -> cpu_ms {cpu_ms} fits "
              f"{largest:,.0f} MiB")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
