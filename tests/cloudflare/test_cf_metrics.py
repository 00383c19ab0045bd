"""`/metrics` on the Worker: the counters come from the run-index shards' own SQLite (SQLite
triggers count each change in the transaction that makes it: `runs/index_metrics.py`), the
gauges from the shards and coordinators, through the same app as locally. A retention purge
deletes the rows and leaves every counter as it was."""

from __future__ import annotations

import json

from cf_fakes import FakeRequest, make_cloud
from prometheus_client.parser import text_string_to_metric_families

import examples.tasks  # noqa: F401  (registers the example tasks)

AUTH = {"authorization": "Bearer tr_test_secret", "content-type": "application/json"}
BASE = "https://trigger-do.example.workers.dev"


async def scrape(cloud: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/metrics", AUTH))  # type: ignore[attr-defined]
    assert res.status == 200, res.body
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(res.body.decode())
        for s in f.samples
    }


async def test_counters_from_the_shards_and_gauges_on_the_worker() -> None:
    cloud = make_cloud(shards=4, vars={"TRIGGER_DO_RETENTION": "60s"})
    for task, payload, n in (("add", {"a": 1, "b": 2}, 6), ("validate-order", {}, 2)):
        for _ in range(n):
            body = json.dumps({"payload": payload}).encode()
            res = await cloud.worker.fetch(
                FakeRequest("POST", f"{BASE}/api/v1/tasks/{task}/trigger", AUTH, body)
            )
            assert res.status == 200, res.body
    queued = await scrape(cloud)
    assert queued[("trigger_do_runs_triggered_total", (("task", "add"),))] == 6
    assert queued[("trigger_do_queue_depth", (("queue", "task/add"),))] == 6
    assert ("trigger_do_runs_started_total", (("task", "add"),)) not in queued

    await cloud.drain()
    done = await scrape(cloud)

    def count(event: str, task: str) -> float:
        return done.get((f"trigger_do_runs_{event}_total", (("task", task),)), 0.0)

    assert [count(e, "add") for e in ("triggered", "started", "completed", "failed")] == [
        6, 6, 6, 0
    ]  # fmt: skip
    assert [count(e, "validate-order") for e in ("triggered", "started", "failed")] == [2, 2, 2]
    hist = ("trigger_do_run_duration_seconds_count", (("task", "add"),))
    assert done[hist] == 6
    inf = ("trigger_do_run_trigger_to_start_seconds_bucket", (("le", "+Inf"), ("task", "add")))
    assert done[inf] == 6
    assert done[("trigger_do_queue_depth", (("queue", "task/add"),))] == 0
    assert not any(name == "trigger_do_workers_alive" for name, _ in done)  # no processes

    # retention: every row purged by the cron heartbeat's housekeeping, no counter lower
    cloud.clock.advance(120)
    await cloud.worker.scheduled()
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v1/runs", AUTH))
    assert res.json()["data"] == []
    after = await scrape(cloud)
    counters = {k: v for k, v in done.items() if k[0].endswith(("_total", "_count", "_sum"))}
    assert {k: after[k] for k in counters} == counters
