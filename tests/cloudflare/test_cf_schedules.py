"""Schedules on Cloudflare, on fakes of the bindings (cf_fakes.py): the Scheduler Durable
Object keeps its one alarm at the next due instant; when the alarm fires it claims what is
due and triggers the runs through the producer (run-index shards, the run queue); the cron
heartbeat syncs the declarative schedules; the schedules API through the Worker's `fetch`."""

from __future__ import annotations

import json
import math
from typing import Any

from cf_fakes import FakeRequest, make_cloud
from cf_scenario import EXPECTED_SCHEDULES, run_schedules

import tests.schedules.tasks_sched  # noqa: F401  (scheduled tasks with declarative crons)
from trigger_do.producer.producer import TriggerRequest
from trigger_do.schedules.scheduler import SchedulerObject
from trigger_do.schedules.service import run_key, run_ref

AUTH = {"authorization": "Bearer tr_test_secret", "content-type": "application/json"}
BASE = "https://trigger-do.example.workers.dev"


async def test_the_scheduler_alarm_fires_due_instants_through_the_producer() -> None:
    cloud = make_cloud(shards=4)
    ns = cloud.namespaces["SCHEDULER"]
    got = await run_schedules(cloud.engine(), cloud.drain, ns.fire_alarms, cloud.clock.advance)
    assert got == EXPECTED_SCHEDULES
    assert cloud.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 0}


async def test_the_alarm_follows_the_next_instant_and_a_lapsed_claim() -> None:
    cloud = make_cloud(shards=2)
    engine = cloud.engine()
    ns = cloud.namespaces["SCHEDULER"]
    sched = await engine.schedules.create("sched-report", "*/5 * * * *", "cf-alarm")
    [storage] = ns.storages.values()
    assert storage.alarm_ms == math.ceil(sched["next_at"] * 1000)  # the one alarm, on time
    # a firer (another invocation) claims the instant, triggers, and dies before completing
    cloud.clock.advance(sched["next_at"] - cloud.clock.now() + 0.1)
    claimed_at = cloud.clock.now()
    due = await engine.schedules.object(SchedulerObject.claim_due, claimed_at, 20.0, 10)
    assert [d["id"] for d in due] == [sched["id"]]
    await engine.schedules.producer.trigger_many([_request(d) for d in due], batch=False)
    assert storage.alarm_ms == math.ceil((claimed_at + 20.0) * 1000)  # at the claim's lapse
    assert await ns.fire_alarms() == 0
    cloud.clock.advance(21)
    assert await ns.fire_alarms() == 1  # the lapsed claim is taken again ...
    await cloud.drain()
    runs = await engine.list_runs(limit=10, schedule_id=sched["id"])
    assert len(runs) == 1 and runs[0]["state"] == "completed"  # ... and no second run
    after = await engine.schedules.get(sched["id"])
    assert after["next_at"] == sched["next_at"] + 300  # from the nominal instant
    assert storage.alarm_ms == math.ceil(after["next_at"] * 1000)
    await engine.schedules.deactivate(sched["id"])
    assert storage.alarm_ms is None  # nothing left to fire


def _request(due: dict[str, Any]) -> TriggerRequest:
    """The run the dead firer triggered (as `ScheduleService` would)."""
    payload = {"type": "IMPERATIVE", "timestamp": "2026-01-01T00:00:00.000Z",
               "scheduleId": due["id"], "timezone": "UTC", "upcoming": []}  # fmt: skip
    return TriggerRequest(
        due["task"],
        None,
        {"idempotency_key": run_key(due["id"], due["instant"])},
        payload_text=json.dumps(payload),
        schedule=run_ref(due),
    )


async def test_the_heartbeat_syncs_declarative_schedules() -> None:
    cloud = make_cloud(shards=2)
    engine = cloud.engine()
    await cloud.worker.scheduled()
    rows, _ = await engine.schedules.page(1, 100)
    declared = sorted((r["task"], r["cron"]) for r in rows if r["type"] == "DECLARATIVE")
    assert ("sched-daily", "0 3 * * *") in declared and ("sched-paris", "30 2 * * *") in declared
    ids = {r["id"] for r in rows}
    await cloud.worker.scheduled()  # every minute: the same schedules, untouched
    assert {r["id"] for r in (await engine.schedules.page(1, 100))[0]} == ids
    [storage] = cloud.namespaces["SCHEDULER"].storages.values()
    earliest = min(r["next_at"] for r in rows)
    assert storage.alarm_ms == math.ceil(earliest * 1000)


async def test_the_schedules_api_through_the_workers_fetch() -> None:
    cloud = make_cloud(shards=2)
    body = json.dumps(
        {"task": "sched-report", "cron": "0 9 * * 1", "deduplicationKey": "cf-http"}
    ).encode()
    res = await cloud.worker.fetch(FakeRequest("POST", f"{BASE}/api/v1/schedules", AUTH, body))
    assert res.status == 200, res.body
    made = res.json()
    assert made["generator"]["description"] == "At 09:00 AM, only on Monday"
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v1/schedules", AUTH))
    assert res.json()["pagination"]["count"] == 1
    bad = json.dumps({"task": "sched-report", "cron": "* * * * * *", "deduplicationKey": "x"})
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/api/v1/schedules", AUTH, bad.encode())
    )
    assert res.status == 422 and "seconds" in res.json()["error"]
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v1/timezones", {}))
    assert res.status == 200 and res.json()["timezones"][0] == "UTC"  # no key needed
    res = await cloud.worker.fetch(
        FakeRequest("GET", f"{BASE}/api/v1/schedules/{made['id']}x", AUTH)
    )
    assert (res.status, res.json()["error"]) == (404, "Schedule not found")
