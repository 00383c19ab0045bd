# ruff: noqa: E402  (sys.path is set up before the imports it serves)
"""The engine scenario under real Pyodide 314 (the Python Workers runtime), on the
Cloudflare adapters over the binding fakes, whose `ctx.storage.sql` is Pyodide's own
sqlite3 and whose values are real JS values (so `to_js`/`to_py` really run).

Run with: node tests/pyodide/run.mjs tests/pyodide/cf_scenario.py \
    --src trigger_do --src examples --src tests/cloudflare
"""

import sys

sys.path.insert(0, "/home/pyodide/src/cloudflare")  # cf_fakes, cf_scenario

assert sys.platform == "emscripten", sys.platform

import cf_fakes
from cf_scenario import EXPECTED_LIMITS, expected, run_limits, run_scenario

from trigger_do.platform.cloudflare import ffi
from trigger_do.shared import serialization

assert ffi.IN_PYODIDE and cf_fakes.IN_PYODIDE
assert not serialization.HAVE_ORJSON  # the standard json fallback is what runs here
assert not any(m.startswith("trigger_do.platform.local") for m in sys.modules), sorted(
    m for m in sys.modules if m.startswith("trigger_do.platform")
)

cloud = cf_fakes.make_cloud(shards=16, vars={"TRIGGER_DO_SLICE_SECONDS": "0.2"})
engine = cloud.worker.engine()
got = await run_scenario(engine, cloud.drain)  # noqa: F704
want = expected()
for key in want:
    assert got[key] == want[key], (key, got[key], want[key])
assert cloud.queues.pending() == {"trigger-do-runs": 0, "trigger-do-runs-dlq": 0}

# a per-key concurrency limit and a rate limit (the coordinator's objects, its windows on
# the `limits` library over the Sql port)
limits_got = await run_limits(engine, cloud.drain)  # noqa: F704
assert limits_got == EXPECTED_LIMITS, limits_got

# a run whose consumer dies on every delivery is dead-lettered and ends CRASHED
from trigger_do.producer.producer import TriggerRequest

run = await engine.trigger(TriggerRequest("add", {"a": 1, "b": 2}))  # noqa: F704


async def dies(batch):
    raise RuntimeError("isolate killed")


for _ in range(4):
    await cloud.queues.deliver("trigger-do-runs", dies)  # noqa: F704
await cloud.drain()  # noqa: F704
row = await engine.get_run(run.id)  # noqa: F704
assert row["state"] == "crashed", row["state"]

assert not any(m.startswith("trigger_do.platform.local") for m in sys.modules)
per_shard = sorted(
    len(list(c.execute("SELECT id FROM runs")))
    for c in cloud.namespaces["RUN_INDEX"].databases.values()
)
print(f"runs per shard: {per_shard}")
print("pyodide cloudflare scenario ok")
