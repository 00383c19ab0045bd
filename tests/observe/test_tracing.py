"""OpenTelemetry traces: the span tree of a run with a retry and a step (the SDK's in-memory
exporter), linked only through the run's message; and with tracing off, no OpenTelemetry
module imported at all, in the process that triggers nor in a worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tests.observe.observe_tasks  # noqa: F401
from tests.engine.driver import Driver
from trigger_do.shared import tracing
from trigger_do.shared.otel import OtelTracing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.use(OtelTracing(tracer_provider=provider))
    try:
        yield spans
    finally:
        tracing.use(None)


async def test_the_span_tree_of_a_run_with_a_retry_and_a_step(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    driver = Driver(tmp_path / "t.db")
    handle = await driver.client.trigger("obs-traced", {}, {})
    await driver.run_until_final([handle.id])
    assert await handle.result() == 42
    spans = {s.name + ":" + str(s.attributes.get("trigger_do.attempt", "")): s for s in
             exporter.get_finished_spans() if s.name != "step fetch"}  # fmt: skip
    steps = [s for s in exporter.get_finished_spans() if s.name == "step fetch"]
    trigger = spans["trigger obs-traced:"]
    first, second = spans["attempt obs-traced:1"], spans["attempt obs-traced:2"]
    assert len(spans) == 3 and len(steps) == 2

    assert trigger.kind == SpanKind.PRODUCER and trigger.parent is None
    assert trigger.attributes["trigger_do.run_id"] == handle.id
    for attempt in (first, second):  # each attempt a child of the trigger, in one trace
        assert attempt.kind == SpanKind.CONSUMER
        assert attempt.parent is not None
        assert attempt.parent.span_id == trigger.context.span_id
        assert attempt.context.trace_id == trigger.context.trace_id
        assert attempt.attributes["trigger_do.run_id"] == handle.id
        assert attempt.attributes["trigger_do.task"] == "obs-traced"
    assert first.attributes["trigger_do.state"] == "waiting_for_retry"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["trigger_do.state"] == "completed"
    assert second.status.status_code == StatusCode.UNSET

    # the step: run by the first attempt, replayed from its stored result by the second
    by_parent = {s.parent.span_id: s for s in steps if s.parent is not None}
    assert by_parent[first.context.span_id].attributes["trigger_do.step.cached"] is False
    assert by_parent[second.context.span_id].attributes["trigger_do.step.cached"] is True

    # ctx.logger records (and the engine's line about the failure) are the attempts' events
    def logged(span: object) -> list[str]:
        return [e.attributes["log.message"] for e in span.events]  # type: ignore[attr-defined]

    assert logged(first) == ["fetched", "attempt 1 failed: RuntimeError: the first attempt "
                             "fails after its step"]  # fmt: skip
    assert logged(second) == ["fetched"]
    assert json.loads(second.events[0].attributes["log.extras"]) == {"value": 41}


OFF = """
import asyncio, json, sys
import trigger_do
import tests.observe.observe_tasks as t

async def main():
    async with trigger_do.local(tasks="tests.observe.observe_tasks", db={db!r}, workers=1):
        worker = await (await t.modules.trigger({{}})).result(timeout=60)
        await (await t.traced.trigger({{}})).result(timeout=60)
    mine = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    off = trigger_do.shared.tracing.active is None
    print(json.dumps({{"worker": worker, "mine": mine, "off": off}}))

asyncio.run(main())
"""


def test_tracing_off_imports_no_opentelemetry(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRIGGER_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", OFF.format(db=str(tmp_path / "off.db"))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"worker": [], "mine": [], "off": True}
    # and the same script with tracing on does import it (the check can fail)
    env["TRIGGER_DO_TRACING"] = "on"
    on = subprocess.run(
        [sys.executable, "-c", OFF.format(db=str(tmp_path / "on.db"))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert on.returncode == 0, on.stderr
    found = json.loads(on.stdout.strip().splitlines()[-1])
    assert found["worker"] and found["mine"] and found["off"] is False


EXPORT = """
import asyncio
import trigger_do
import tests.observe.observe_tasks as t

async def main():
    async with trigger_do.local(tasks="tests.observe.observe_tasks", db={db!r}, workers=2):
        handle = await t.traced.trigger({{}})
        print(handle.id, await handle.result(timeout=60), flush=True)

asyncio.run(main())
"""


def test_spans_from_every_process_reach_the_otlp_endpoint_in_one_trace(tmp_path: Path) -> None:
    """The real exporter (OTLP/HTTP) in every process: the trigger span from the process
    that triggered, the attempts from the worker processes, joined by the run's message."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, int, bytes, bytes | None]] = []  # name, pid, span, parent

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            export = ExportTraceServiceRequest.FromString(body)
            for rs in export.resource_spans:
                pid = next(
                    (a.value.int_value for a in rs.resource.attributes if a.key == "process.pid"),
                    0,
                )
                for scope in rs.scope_spans:
                    for s in scope.spans:
                        received.append((s.name, pid, s.trace_id + s.span_id, s.parent_span_id))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRIGGER_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", EXPORT.format(db=str(tmp_path / "x.db"))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "42"
    names = sorted(name for name, *_ in received)
    assert names == [
        "attempt obs-traced", "attempt obs-traced", "step fetch", "step fetch",
        "trigger obs-traced",
    ], received  # fmt: skip
    (trigger,) = [r for r in received if r[0] == "trigger obs-traced"]
    attempts = [r for r in received if r[0] == "attempt obs-traced"]
    for _, pid, span, parent in attempts:
        assert span[:16] == trigger[2][:16]  # one trace
        assert parent == trigger[2][16:]  # a child of the trigger span
        assert pid != trigger[1]  # from a worker process, not the one that triggered


async def test_a_two_phase_batch_is_traced_when_it_is_sealed(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """The official client's batches: items written by one call, sealed by the last; the
    runs' messages are sent in the sealing call's span."""
    from trigger_do.producer.producer import TriggerRequest

    driver = Driver(tmp_path / "t.db")
    batch = await driver.engine.create_batch(2)
    for index in (1, 0):  # the second call completes (and seals) the batch
        request = TriggerRequest("obs-ok", {}, {})
        await driver.engine.add_batch_items(batch["id"], [(index, request)])
    (sealed,) = [s for s in exporter.get_finished_spans() if s.name.startswith("trigger")]
    assert sealed.name == "trigger obs-ok"
    assert sealed.attributes["trigger_do.batch_id"] == batch["id"]
    runs = [rid for _, rid in await driver.engine.index.batch_items(batch["id"])]
    await driver.run_until_final(runs)
    attempts = [s for s in exporter.get_finished_spans() if s.name == "attempt obs-ok"]
    assert len(attempts) == 2
    assert all(
        a.parent is not None and a.parent.span_id == sealed.context.span_id for a in attempts
    )


async def test_a_span_per_wait_in_the_attempt_that_reached_it(
    fake_driver: Driver, exporter: InMemorySpanExporter
) -> None:
    from tests.waits.drive import run_until_final, settle

    driver = fake_driver
    handle = await driver.client.trigger("obs-waits", {}, {})
    await settle(driver)
    assert (await handle.status()).state == "waiting"
    await run_until_final(driver, [handle.id])  # the timer fires; the child runs
    assert await handle.result(timeout=5) is True

    spans = exporter.get_finished_spans()
    waits = [s for s in spans if s.name.startswith("wait ")]
    attempts = {s.context.span_id: s for s in spans if s.name == "attempt obs-waits"}
    described = [
        (
            s.name,
            s.attributes.get("trigger_do.wait.key"),
            s.attributes["trigger_do.wait.position"],
            s.attributes["trigger_do.wait.replayed"],
            s.attributes.get("trigger_do.wait.suspended", False),
        )
        for s in waits
    ]
    assert described == [
        ("wait timer", "cool", 1, False, True),  # the first attempt suspends on the timer
        ("wait timer", "cool", 1, True, False),  # resumed: replayed at once
        ("wait run", None, 2, False, True),  # suspends on the child
        ("wait timer", "cool", 1, True, False),  # resumed again: both replayed
        ("wait run", None, 2, True, False),
    ]
    for s in waits:  # each a child of the attempt (span) that reached it, never an error
        assert s.parent is not None and s.parent.span_id in attempts
        assert s.status.status_code != StatusCode.ERROR
        assert s.attributes["trigger_do.wait.kind"] == s.name.removeprefix("wait ")
    assert waits[2].attributes["trigger_do.wait.runs"] == 1
