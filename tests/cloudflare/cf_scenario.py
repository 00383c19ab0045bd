"""The engine scenario, written once against an engine and a `drain()` driver, run on the
Cloudflare adapters over fakes (CPython and Pyodide) and on the local platform; both must
give the same results. Imports `examples.tasks` (add, sync-data, validate-order,
process-large-file)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import examples.tasks  # noqa: F401  (registers the example tasks)
from trigger_do import schedules, task
from trigger_do.engine import Engine
from trigger_do.producer.producer import TriggerRequest

RUNNING: dict[str, int] = {}  # org -> attempts running now (the consumer is in-process)
PEAK: dict[str, int] = {}


@task(id="cf-org", concurrency={"limit": 2, "key": "payload.org"})
async def per_org(payload: dict[str, str]) -> str:
    org = payload["org"]
    RUNNING[org] = RUNNING.get(org, 0) + 1
    PEAK[org] = max(PEAK.get(org, 0), RUNNING[org])
    await asyncio.sleep(0.02)
    RUNNING[org] -= 1
    return org


@task(id="cf-rate", rate_limit={"limit": 3, "period": "1s"})
async def rate_limited(payload: int) -> int:
    return payload


async def run_limits(engine: Engine, drain: Drain) -> dict[str, Any]:
    """A per-key concurrency limit and a rate limit."""
    PEAK.clear()
    orgs = await engine.batch_trigger(
        [TriggerRequest("cf-org", {"org": f"org-{i % 2}"}) for i in range(12)]
    )
    rated = await engine.batch_trigger([TriggerRequest("cf-rate", i) for i in range(7)])
    await drain()
    org_rows = await engine.get_runs([r.id for r in orgs.runs])
    rate_rows = await engine.get_runs([r.id for r in rated.runs])
    starts = sorted(r["started_at"] for r in rate_rows.values())
    return {
        "org_states": sorted({r["state"] for r in org_rows.values()}),
        "org_peak": dict(sorted(PEAK.items())),
        "rate_outputs": sorted(r["output"] for r in rate_rows.values()),
        # no 1 s window holds more than 3 starts
        "rate_max_in_window": max(sum(1 for t in starts if s <= t < s + 1.0) for s in starts),
    }


EXPECTED_LIMITS = {
    "org_states": ["completed"],
    "org_peak": {"org-0": 2, "org-1": 2},
    "rate_outputs": list(range(7)),
    "rate_max_in_window": 3,
}

Drain = Callable[[], Awaitable[Any]]


@schedules.task(id="cf-tick")  # imperative schedules only
async def cf_tick(event: schedules.ScheduledEvent) -> dict[str, Any]:
    return {"at": event.timestamp.isoformat(), "external_id": event.external_id}


async def run_schedules(
    engine: Engine,
    drain: Drain,
    fire_alarms: Callable[[], Awaitable[int]],
    advance: Callable[[float], None],
) -> dict[str, Any]:
    """An imperative schedule on the Scheduler object: its alarm, kept at the next instant,
    fires the run through the producer; the next instant follows the one that fired."""
    sched = await engine.schedules.create("cf-tick", "* * * * *", "cf-tick-1", external_id="e1")
    first = float(sched["next_at"])
    advance(first - engine.now() - 1.0)
    early = await fire_alarms()  # not due yet: nothing
    advance(1.5)
    fired = [await fire_alarms()]
    await drain()
    after = await engine.schedules.get(sched["id"])
    advance(float(after["next_at"]) - engine.now() + 0.5)
    fired.append(await fire_alarms())
    await drain()
    rows = await engine.list_runs(limit=10, schedule_id=sched["id"])
    runs = [await engine.get_run(r["id"]) for r in reversed(rows)]
    await engine.schedules.delete(sched["id"])
    return {
        "early": early,
        "fired": fired,
        "states": [r["state"] for r in runs],
        "external_ids": [r["output"]["external_id"] for r in runs],
        "spacing": [
            float(r["payload"]["timestamp"][17:19]) for r in runs
        ],  # seconds past the minute: 0 (nominal instants, not the late alarms)
        "last_is_first": runs[1]["payload"].get("lastTimestamp") == runs[0]["payload"]["timestamp"],
        "schedule_on_run": runs[0]["options"]["schedule"]["id"] == sched["id"],
        "next_from_nominal": float(after["next_at"]) - first,
    }


EXPECTED_SCHEDULES = {
    "early": 0,
    "fired": [1, 1],
    "states": ["completed", "completed"],
    "external_ids": ["e1", "e1"],
    "spacing": [0.0, 0.0],
    "last_is_first": True,
    "schedule_on_run": True,
    "next_from_nominal": 60.0,
}


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """What must match across platforms (ids and times differ)."""
    error = row.get("error") or {}
    return {
        "task": row["task"],
        "state": row["state"],
        "attempt": row["attempt"],
        "output": row["output"],
        "error": error.get("name"),
        "checkpoints": [c["name"] for c in row.get("checkpoints", [])],
    }


async def run_scenario(engine: Engine, drain: Drain, *, batch_size: int = 250) -> dict[str, Any]:
    """Trigger, batch, retries, an abort, checkpoints across time slices, idempotency."""
    out: dict[str, Any] = {}
    single = await engine.trigger(TriggerRequest("add", {"a": 2, "b": 3}))
    retried = await engine.trigger(
        TriggerRequest("sync-data", {"source_id": "crm", "fail_times": 2})
    )
    aborted = await engine.trigger(TriggerRequest("validate-order", {"items": []}))
    valid = await engine.trigger(TriggerRequest("validate-order", {"items": [1]}))
    large = await engine.trigger(
        TriggerRequest("process-large-file", {"file_id": "f", "chunks": 40, "chunk_seconds": 0.01})
    )
    key = {"idempotency_key": "order-7"}
    first = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 1}, key))
    again = await engine.trigger(TriggerRequest("add", {"a": 9, "b": 9}, key))
    batch = await engine.batch_trigger(
        [TriggerRequest("add", {"a": i, "b": i}) for i in range(batch_size)]
    )
    await drain()

    for name, handle in [
        ("single", single),
        ("retried", retried),
        ("aborted", aborted),
        ("valid", valid),
        ("large", large),
        ("first", first),
    ]:
        out[name] = summary(await engine.get_run(handle.id))
    out["idempotent"] = [again.id == first.id, again.cached]
    runs = await engine.get_runs([r.id for r in batch.runs])
    out["batch_outputs"] = [runs[r.id]["output"]["sum"] for r in batch.runs]
    out["batch_states"] = sorted({runs[r.id]["state"] for r in batch.runs})
    found = await engine.get_batch(batch.id)
    assert found is not None
    out["batch"] = {
        "run_count": found["run_count"],
        "runs_in_order": found["runs"] == [r.id for r in batch.runs],
        "finished": found["finished"],
    }
    logs = await engine.logs(large.id)
    out["large_continued"] = any("continued after a slice" in rec["message"] for rec in logs)
    listed = await engine.list_runs(limit=10, tasks=["sync-data"])
    out["listed"] = [r["id"] for r in listed] == [retried.id]
    return out


def expected(batch_size: int = 250) -> dict[str, Any]:
    return {
        "single": {
            "task": "add",
            "state": "completed",
            "attempt": 1,
            "output": {"sum": 5},
            "error": None,
            "checkpoints": [],
        },
        "retried": {
            "task": "sync-data",
            "state": "completed",
            "attempt": 3,
            "output": {"record_count": 42},
            "error": "ConnectionError",
            "checkpoints": [],
        },
        "aborted": {
            "task": "validate-order",
            "state": "failed",
            "attempt": 1,
            "output": None,
            "error": "AbortTaskRunError",
            "checkpoints": [],
        },
        "valid": {
            "task": "validate-order",
            "state": "completed",
            "attempt": 1,
            "output": {"valid": True},
            "error": None,
            "checkpoints": [],
        },
        "large": {
            "task": "process-large-file",
            "state": "completed",
            "attempt": 1,
            "output": {"processed_chunks": 40},
            "error": None,
            "checkpoints": ["downloaded", *[f"chunk-{i}" for i in range(40)]],
        },
        "first": {
            "task": "add",
            "state": "completed",
            "attempt": 1,
            "output": {"sum": 2},
            "error": None,
            "checkpoints": [],
        },
        "idempotent": [True, True],
        "batch_outputs": [2 * i for i in range(batch_size)],
        "batch_states": ["completed"],
        "batch": {"run_count": batch_size, "runs_in_order": True, "finished": batch_size},
        "large_continued": True,
        "listed": True,
    }


# --- waits and child runs (waits/) ------------------------------------------------------------


@task(id="cf-wait-child")
async def cf_wait_child(payload: int) -> int:
    return payload * 2


@task(id="cf-wait-parent")
async def cf_wait_parent(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.wait_for("1h")
    one = await cf_wait_child.trigger_and_wait(1)
    many = await cf_wait_child.batch_trigger_and_wait([2, 3])
    return {"one": one, "many": many, "attempt": ctx.attempt}


async def run_waits(
    engine: Engine,
    drain: Drain,
    fire_alarms: Callable[[], Awaitable[int]],
    advance: Callable[[float], None],
) -> dict[str, Any]:
    """A run that waits an hour (its index shard's alarm resumes it), then suspends on a
    child and on a batch of two (their ends resume it): WAITING between, no message held."""
    parent = await engine.trigger(TriggerRequest("cf-wait-parent", {}))
    await drain()
    waiting = (await engine.get_run(parent.id))["state"]
    advance(3599)
    early = await fire_alarms()
    advance(2)
    fired = await fire_alarms()
    await drain()
    row = await engine.get_run(parent.id)
    children = await engine.list_runs(tasks=["cf-wait-child"], limit=10)
    return {
        "waiting": waiting,
        "early": early,
        "fired": fired,
        "state": row["state"],
        "output": row["output"],
        "children": sorted(int(c["output"]) for c in children),  # list rows hold JSON text
        "linked": sorted({c["options"]["parent_run_id"] == parent.id for c in children}),
    }


EXPECTED_WAITS = {
    "waiting": "waiting",
    "early": 0,
    "fired": 1,
    "state": "completed",
    "output": {"one": 2, "many": [4, 6], "attempt": 1},
    "children": [2, 4, 6],
    "linked": [True],
}
