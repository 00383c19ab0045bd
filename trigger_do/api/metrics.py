"""`GET /metrics`: Prometheus text. The counters and histograms are the ones the processes
that caused them kept (`ports.Meter`: runs triggered, started, completed, failed, retried,
crashed, dead-lettered; trigger-to-start and duration), never recomputed from rows; the
gauges are read now: queue depth, running, paused and oldest queued age by queue; running
and parked runs by queue and concurrency key; workers alive. Behind the secret key unless the
app is made with `metrics_public` (`auth.GUARDED_PATHS`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..coordinator.coordinator import CoordinatorObject
from ..engine import Engine
from ..runs import index_metrics
from .requests import engine_of


class _Families:
    """A collector of families read before the scrape (collectors are synchronous)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterable[Any]:
        return iter(self.families)


async def gauges(engine: Engine) -> list[Any]:
    from prometheus_client.core import GaugeMetricFamily

    now = engine.now()
    queues = await engine.list_queues()
    oldest = await engine.index.oldest_queued()
    depth = GaugeMetricFamily(
        "trigger_do_queue_depth",
        "Runs waiting for a consumer (retries included).",
        labels=["queue"],
    )
    running = GaugeMetricFamily("trigger_do_queue_running", "Runs running.", labels=["queue"])
    paused = GaugeMetricFamily("trigger_do_queue_paused", "1 if paused.", labels=["queue"])
    age = GaugeMetricFamily(
        "trigger_do_queue_oldest_age_seconds",
        "Age of the oldest run waiting for a consumer (0: none).",
        labels=["queue"],
    )
    key_running = GaugeMetricFamily(
        "trigger_do_concurrency_running",
        "Concurrency slots held, by queue and concurrency key.",
        labels=["queue", "key"],
    )
    key_parked = GaugeMetricFamily(
        "trigger_do_parked_runs",
        "Runs parked by a limit (concurrency, rate, pause), by queue and concurrency key.",
        labels=["queue", "key"],
    )
    for q in queues:
        name = q["name"]
        depth.add_metric([name], q["queued"])
        running.add_metric([name], q["running"])
        paused.add_metric([name], 1 if q["paused"] else 0)
        age.add_metric([name], max(0.0, now - oldest[name]) if name in oldest else 0.0)
        stats = await engine.queues.coordinators(name)(CoordinatorObject.stats, now)
        for key, counts in sorted(stats["keys"].items()):
            key_running.add_metric([name, key or ""], counts.get("running", 0))
            key_parked.add_metric([name, key or ""], counts.get("parked", 0))
    return [depth, running, paused, age, key_running, key_parked]


async def metrics(request: Request) -> Response:
    # imported here: the app imports this module on a Worker too, which never scrapes
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    engine = engine_of(request)
    families = list(engine.platform.meter.collect())
    if not any(f.type == "counter" for f in families):  # no process counts: the shards' do
        families += index_metrics.families(await engine.index.metric_counts())
    families += await gauges(engine)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
