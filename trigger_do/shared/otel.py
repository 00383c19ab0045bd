"""OpenTelemetry spans for trigger.do (imported only when tracing is on: `tracing.py`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("trigger_do.tracing")
_PROPAGATOR = TraceContextTextMapPropagator()
FAILED = ("failed", "timed_out", "system_failure", "crashed")


class OtelTracing:
    """Spans on `tracer_provider` (default: the global one; with `export` and no SDK
    configured by the application, an OTLP/HTTP exporter from the standard OTEL_* vars)."""

    def __init__(self, *, export: bool = False, tracer_provider: Any = None) -> None:
        if tracer_provider is None and export:
            tracer_provider = _otlp_provider()
        self.tracer = trace.get_tracer("trigger_do", tracer_provider=tracer_provider)

    # --- triggers ---------------------------------------------------------------------------

    @contextmanager
    def trigger(self, tasks: list[str], batch: bool) -> Iterator[Span]:
        name = f"trigger {tasks[0]}" if len(set(tasks)) == 1 else "trigger"
        with self.tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER) as span:
            span.set_attribute("trigger_do.task", sorted(set(tasks)))
            span.set_attribute("trigger_do.batch", batch)
            span.set_attribute("trigger_do.runs", len(tasks))
            yield span

    def carrier(self) -> str | None:
        """The current span's context as a traceparent (what a run's message carries)."""
        out: dict[str, str] = {}
        _PROPAGATOR.inject(out)
        return out.get("traceparent")

    # --- attempts, steps, logs --------------------------------------------------------------

    @contextmanager
    def attempt(
        self, traceparent: str | None, task: str, run_id: str, attempt: int
    ) -> Iterator[Span]:
        parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
        with self.tracer.start_as_current_span(
            f"attempt {task}",
            context=parent or otel_context.Context(),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "trigger_do.run_id": run_id,
                "trigger_do.task": task,
                "trigger_do.attempt": attempt,
            },
        ) as span:
            yield span

    def outcome(self, span: Span, outcome: dict[str, Any]) -> None:
        state = outcome.get("state")
        if state is None:
            return
        span.set_attribute("trigger_do.state", str(state))
        if str(state) in FAILED or str(state) == "waiting_for_retry":
            span.set_status(Status(StatusCode.ERROR, str(outcome.get("error") or state)[:500]))

    @contextmanager
    def step(self, name: str, cached: bool) -> Iterator[Span]:
        with self.tracer.start_as_current_span(f"step {name}") as span:
            span.set_attribute("trigger_do.step", name)
            span.set_attribute("trigger_do.step.cached", cached)
            yield span

    @contextmanager
    def wait(self, kind: str, key: str | None) -> Iterator[Span]:
        """A wait (`timer`, `run`, `batch`), a child of the attempt that reached it; a
        suspension is no error (the attempt ends there, the run resumes later)."""
        with self.tracer.start_as_current_span(
            f"wait {kind}", record_exception=False, set_status_on_exception=False
        ) as span:
            span.set_attribute("trigger_do.wait.kind", kind)
            if key is not None:
                span.set_attribute("trigger_do.wait.key", key)
            yield span

    def current(self) -> Span | None:
        span = trace.get_current_span()
        return span if span.get_span_context().is_valid else None

    def log(self, span: Span, level: str, message: str, extras: str | None) -> None:
        attributes = {"log.severity": level, "log.message": message}
        if extras:
            attributes["log.extras"] = extras
        span.add_event("log", attributes)


def _otlp_provider() -> Any:
    """The application's provider if it configured one; else the SDK with OTLP/HTTP."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning("tracing needs the otel extra: pip install 'trigger-do[otel]' (%s)", exc)
        return None
    attributes: dict[str, Any] = {"process.pid": os.getpid()}  # which worker ran what
    if not os.environ.get("OTEL_SERVICE_NAME"):  # it names the service, else "trigger-do"
        attributes["service.name"] = "trigger-do"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider
