"""Traces (the `otel` extra): whether this process traces, and the few calls the engine
makes. Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set or
`TRIGGER_DO_TRACING=on` (an OpenTelemetry SDK the application configured itself); off, the
engine checks `active is None` and nothing else: no span, no OpenTelemetry import.

On, `shared/otel.py` makes a span per trigger call, per attempt and per step, with the run
id, task and attempt as attributes; the trigger span's context rides in each run's message
(`RunMessage.trace`, a W3C traceparent), so an attempt in any worker process is its child;
`ctx.logger` records are events on the attempt's span."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..ports import Settings

if TYPE_CHECKING:
    from .otel import OtelTracing

active: OtelTracing | None = None  # None: tracing off in this process
OFF = ("off", "0", "false", "no")
ON = ("on", "1", "true", "yes")


def configure(settings: Settings) -> OtelTracing | None:
    """Turn tracing on for this process if its settings ask for it (once: later calls keep
    what the first one decided, as OpenTelemetry's global provider does)."""
    global active
    if active is not None:
        return active
    mode = (settings.get("TRIGGER_DO_TRACING") or "").lower()
    endpoint = settings.get("OTEL_EXPORTER_OTLP_ENDPOINT") or settings.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if mode in OFF or not (mode in ON or endpoint):
        return None
    from .otel import OtelTracing

    active = OtelTracing(export=bool(endpoint))
    return active


def use(tracing: Any) -> None:
    """Trace with `tracing` (an `OtelTracing`), or stop (None): for tests and embedders."""
    global active
    active = tracing
