# ruff: noqa: E402, F704  (sys.path is set up before the imports it serves; top-level await)
"""The engine scenario under real Pyodide 314 (the Python Workers runtime), its bindings
reaching the Cloudflare adapters through the real Python Workers SDK (sdk_cloud.py): JS
stand-ins with workerd's class names, `ctx.storage.sql` on real SQLite (sql.js), every value
converted by the SDK's own wrappers.

Run with: node tests/pyodide/run.mjs tests/pyodide/cf_scenario.py \
    --src trigger_do --src examples --src tests/cloudflare --src tests/pyodide
"""

import json
import sys

sys.path[:0] = ["/home/pyodide/src/cloudflare", "/home/pyodide/src/pyodide"]

assert sys.platform == "emscripten", sys.platform

from cf_events_scenario import EXPECTED_WEBHOOKS, GITHUB_SECRET, run_webhooks
from cf_scenario import (
    EXPECTED_LIMITS,
    EXPECTED_SCHEDULES,
    EXPECTED_WAITS,
    expected,
    run_limits,
    run_scenario,
    run_schedules,
    run_waits,
)
from sdk_cloud import DLQ, RUN_QUEUE, SECRET, make_cloud

from trigger_do.platform.cloudflare import ffi
from trigger_do.producer.producer import TriggerRequest
from trigger_do.schedules.shapes import schedule_object
from trigger_do.shared import serialization

assert ffi.IN_PYODIDE
assert not serialization.HAVE_ORJSON  # the standard json fallback is what runs here
assert not any(m.startswith("trigger_do.platform.local") for m in sys.modules), sorted(
    m for m in sys.modules if m.startswith("trigger_do.platform")
)

cloud = make_cloud(
    shards=16,
    vars={"TRIGGER_DO_SLICE_SECONDS": "0.2", "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET},
)
engine = cloud.engine()
got = await run_scenario(engine, cloud.drain)
want = expected()
for key in want:
    assert got[key] == want[key], (key, got[key], want[key])
assert cloud.pending() == {RUN_QUEUE: 0, DLQ: 0}, cloud.pending()

# a per-key concurrency limit and a rate limit (the coordinator's objects, its windows on
# the `limits` library over the Sql port)
limits_got = await run_limits(engine, cloud.drain)
assert limits_got == EXPECTED_LIMITS, limits_got

# a schedule: the Scheduler object's alarm fires its instants through the producer (the
# cron iterated by croniter, its description by cron-descriptor, zoneinfo on tzdata)
async def fire_scheduler() -> int:
    return int(await cloud.namespaces["SCHEDULER"].fireAlarms())


schedules_got = await run_schedules(engine, cloud.drain, fire_scheduler, cloud.clock.advance)
assert schedules_got == EXPECTED_SCHEDULES, schedules_got
paris = await engine.schedules.create(
    "cf-tick", "30 2 * * *", "cf-paris", timezone="Europe/Paris"
)
assert paris["next_at"] > engine.now() and paris["timezone"] == "Europe/Paris"
assert schedule_object(paris)["generator"]["description"] == "At 02:30 AM"
await engine.schedules.delete(paris["id"])

# events, and a signed GitHub delivery through the Worker's fetch (the SDK's ASGI bridge):
# verified with the secret from the env, deduplicated in the Events Durable Object
async def post(path, headers, body):
    res = await cloud.fetch("POST", path, headers, body)
    return int(res.status), json.loads(str(await res.text()))


webhooks_got = await run_webhooks(engine, post, cloud.drain, SECRET)
assert webhooks_got == EXPECTED_WEBHOOKS, webhooks_got


# a run that waits an hour (its shard's alarm resumes it), then on a child and a batch
async def fire_index() -> int:
    return int(await cloud.namespaces["RUN_INDEX"].fireAlarms())


waits_got = await run_waits(engine, cloud.drain, fire_index, cloud.clock.advance)
assert waits_got == EXPECTED_WAITS, waits_got

# wait tokens: spread over the Waitpoints objects; one completed, one timed out by its
# object's alarm (TRIGGER_WAITPOINT_TIMEOUT), an idempotency key found again
approve, _ = await engine.tokens.create(idempotency_key="cf-approve", tags=["cf"])
await engine.tokens.complete(approve["id"], {"approved": True})
again, cached = await engine.tokens.create(idempotency_key="cf-approve")
assert cached and again["id"] == approve["id"] and again["status"] == "COMPLETED"
short, _ = await engine.tokens.create(timeout="1m")
cloud.clock.advance(61)
assert int(await cloud.namespaces["WAITPOINTS"].fireAlarms()) >= 1
timed = await engine.tokens.get(short["id"])
assert timed["status"] == "TIMED_OUT" and "TRIGGER_WAITPOINT_TIMEOUT" in timed["output"], timed

# a run whose consumer dies on every delivery is dead-lettered and ends CRASHED
run = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 2}))


async def dies(batch):
    raise RuntimeError("isolate killed")


for _ in range(4):
    await cloud.deliver(RUN_QUEUE, dies)
await cloud.drain()
row = await engine.get_run(run.id)
assert row["state"] == "crashed", row["state"]

assert not any(m.startswith("trigger_do.platform.local") for m in sys.modules)
print(f"runs per shard: {sorted(cloud.rows_per_object('RUN_INDEX', 'runs'))}")
print("pyodide cloudflare scenario ok")
