# ruff: noqa: F704  (sys.path is set up before the imports it serves; top-level await)
"""The seams between trigger.do's Cloudflare adapters and the real Python Workers SDK, under
real Pyodide 314 (sdk_cloud.py: JS stand-ins with workerd's class names, the SDK's own
wrappers and conversions). Each check names what broke before it was fixed.

Run with: node tests/pyodide/run.mjs tests/pyodide/cf_seams.py \
    --src trigger_do --src tests/pyodide
"""

import asyncio
import json
import math
import sys

sys.path.insert(0, "/home/pyodide/src/pyodide")

import _workerd
from sdk_cloud import RUN_QUEUE, SECRET, Clock, make_cloud
from workers import rpc as sdk_rpc
from workers.entrypoints import DurableObjectContext
from workers.rpc import _BindingWrapper, _EnvWrapper

from trigger_do import RunContext, task
from trigger_do.platform.cloudflare.queue import CloudflareQueue, wrap_batch
from trigger_do.platform.cloudflare.sql import DurableSql
from trigger_do.ports import OutMessage
from trigger_do.producer.producer import TriggerRequest

AUTH = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
CHECKS: list[str] = []


def check(name: str) -> None:
    CHECKS.append(name)
    print(f"ok  {name}")


@task(id="echo")
async def echo(payload: dict, ctx: RunContext) -> dict:
    return payload


@task(id="measure")
async def measure(payload: dict, ctx: RunContext) -> int:
    return len(payload["blob"])


@task(id="talk")
async def talk(payload: dict, ctx: RunContext) -> str:
    for i in range(payload["lines"]):
        ctx.logger.info(f"line {i}", i=i)
        await asyncio.sleep(0)
    return "said"


async def subscribe(run_id: str):
    """A live-log WebSocket upgrade to the Worker, the key in the query."""
    path = f"/api/v1/runs/{run_id}/logs/ws?token={SECRET}"
    return await cloud.fetch("GET", path, {"upgrade": "websocket"})


class Walks:
    """Counts how often the SDK's `python_to_rpc` inspects a value element by element (its
    `_raise_on_disabled_type`): once per value for bytes, once per byte for a JS proxy."""

    def __init__(self) -> None:
        self.count = 0
        self._real = sdk_rpc._raise_on_disabled_type

    def __enter__(self) -> "Walks":
        def counting(value):
            self.count += 1
            return self._real(value)

        sdk_rpc._raise_on_disabled_type = counting
        return self

    def __exit__(self, *exc: object) -> None:
        sdk_rpc._raise_on_disabled_type = self._real


cloud = make_cloud(shards=2)
engine = cloud.engine()

# 1. A batch's message timestamps: a JS Date arrives through the SDK as a naive datetime
#    (before: `float(datetime)` raised inside `wrap_batch`, every batch retried, then
#    dead-lettered, where the dead-letter consumer failed the same way).
producer = CloudflareQueue(_EnvWrapper(cloud.env).RUN_QUEUE)
sent_at = Clock().now()
await producer.send_all([OutMessage({"v": 1, "n": i, "none": None}) for i in range(3)])
seen: list = []


async def read(batch):
    messages = wrap_batch(_BindingWrapper(batch))  # as the SDK's queue-handler wrapper does
    seen.extend((m.timestamp, m.body) for m in messages)
    for m in messages:
        m.ack()


assert await cloud.deliver(RUN_QUEUE, read) == 3
assert all(abs(ts - sent_at) < 5 for ts, _ in seen), [ts for ts, _ in seen]
check("message timestamps (JS Dates) read as epoch seconds")

# 2. None in a queue body keeps its key (before: `to_js` made it `undefined`, and the JSON
#    encoding of the queue dropped the key).
assert [b for _, b in seen] == [{"v": 1, "n": i, "none": None} for i in range(3)], seen
run = await engine.trigger(TriggerRequest("echo", {"a": None, "b": [None, 1], "c": {"d": None}}))
await cloud.drain()
row = await engine.get_run(run.id)
assert row["state"] == "completed"
assert row["output"] == {"a": None, "b": [None, 1], "c": {"d": None}}
check("None in a queue body and a payload survives the queue")

# 3. A 1 MB payload goes to R2 as a packet, crossing as bytes (before: a Uint8Array proxy that
#    the SDK walked byte by byte, seconds of CPU per packet).
big = "x" * 1_000_000
with Walks() as walks:
    run = await engine.trigger(TriggerRequest("measure", {"blob": big}))
assert walks.count < 100, walks.count
await cloud.drain()
row = await engine.get_run(run.id)
assert row["state"] == "completed" and row["output"] == 1_000_000, row["state"]
keys = [str(k) for k in cloud.bucket.objects.keys()]
assert any(run.id in k for k in keys), keys
with Walks() as walks:
    got = await engine.platform.blobs.get(next(k for k in keys if run.id in k))
assert got is not None and len(got) > 1_000_000 and walks.count < 100
check("a 1 MB packet through R2, as bytes both ways")

# 4. SQL bindings through the SDK: None (JS null), bool (as 0/1), bytes (a BLOB), floats
#    (a Durable Object hands an integral REAL back as an int; run rows read it as a float).
state = _workerd.DurableObjectState.new(
    _workerd.DurableObjectId.new("T", "t"),
    _workerd.DurableObjectStorage.new(_workerd.newDatabase()),
    _workerd.newSocketHub(),
)
sql = DurableSql(DurableObjectContext(state).storage)
sql.exec("CREATE TABLE t (a, b INTEGER, c BLOB, d REAL, e TEXT)")
with Walks() as walks:
    sql.exec("INSERT INTO t VALUES (?, ?, ?, ?, ?)", None, True, b"\x00\xff" * 300_000, 2.0, "é")
assert walks.count < 20, walks.count
assert sql.exec("SELECT a, b, c = x'00ff' || c, typeof(c), d, e FROM t")[0][:2] == (None, 1)
a, b, c, d, e = sql.exec("SELECT a, b, c, d, e FROM t")[0]
assert (a, b, c, d, e) == (None, 1, b"\x00\xff" * 300_000, 2, "é") and isinstance(d, int)
assert sql.exec("SELECT typeof(?), ? / 2", 3, 3) == [("real", 1.5)]  # every number a double
run = await engine.trigger(TriggerRequest("echo", {}))
await cloud.drain()
row = await engine.get_run(run.id)
for col in ("created_at", "started_at", "finished_at"):
    assert isinstance(row[col], float), (col, row[col])
check("SQL with None, bool, bytes and REAL bindings")

# 5. A transaction whose function raises rolls back, and the error surfaces as itself.


def failing() -> None:
    sql.exec("INSERT INTO t (e) VALUES ('rolled back')")
    raise ValueError("no good")


try:
    sql.transaction(failing)
except ValueError as exc:
    assert "no good" in str(exc)
else:
    raise AssertionError("the transaction did not raise")
assert sql.exec("SELECT count(*) FROM t WHERE e = 'rolled back'") == [(0,)]
sql.transaction(lambda: sql.exec("INSERT INTO t (e) VALUES ('kept')"))
assert sql.exec("SELECT count(*) FROM t WHERE e = 'kept'") == [(1,)]
check("a transaction that raises rolls back")

# 6. The HTTP API through the SDK's ASGI bridge (a JS Request in, a JS Response out).
res = await cloud.fetch(
    "POST", "/api/v1/tasks/echo/trigger", AUTH, json.dumps({"payload": {"k": None}}).encode()
)
assert int(res.status) == 200, await res.text()
run_id = json.loads(str(await res.text()))["id"]
await cloud.drain()
res = await cloud.fetch("GET", f"/api/v3/runs/{run_id}", AUTH)
body = json.loads(str(await res.text()))
assert int(res.status) == 200 and (body["status"], body["output"]) == ("COMPLETED", {"k": None})
res = await cloud.fetch("GET", "/api/v1/runs", {**AUTH, "authorization": "Bearer wrong"})
assert int(res.status) == 401
res = await cloud.fetch(
    "GET", f"/api/v1/runs/{run_id}/logs", {**AUTH, "accept": "text/event-stream"}
)
assert int(res.status) == 200 and "text/event-stream" in str(res.headers.get("content-type"))
stream = str(await res.text())  # the whole stream: the run is final, so it ends
assert stream.rstrip().endswith('event: end\ndata: {"event":"end","status":"COMPLETED"}'), stream
check("the HTTP API through the SDK's ASGI bridge, an SSE stream included")

# 7. Live logs over a WebSocket that ends in the run's Durable Object, with the object evicted
#    between every event (hibernation): the records once each, in order, then the end.
run_ns = cloud.namespaces["RUN"]
run_ns.evictBetweenEvents = True
run_ns.evictAll()
run = await engine.trigger(TriggerRequest("talk", {"lines": 3}))
res = await subscribe(run.id)
assert int(res.status) == 101, int(res.status)
client = res.webSocket
await cloud.drain()
messages = [json.loads(str(m)) for m in client.received]
assert [m["type"] for m in messages] == ["log", "log", "log", "end"], messages
assert [m["message"] for m in messages[:3]] == ["line 0", "line 1", "line 2"]
assert messages[-1]["status"] == "COMPLETED" and client.closed.to_py() == [1000, ""]
assert run_ns.liveInstances() == 0  # nothing of the objects stayed in memory
check("a live-log WebSocket through hibernation")

# 8. The object's own handlers, which the runtime calls with raw JS arguments: `alarm` (the
#    safety net that ends the streams of a run canceled over the API) and `webSocketClose`;
#    and an unknown run's socket, closed 4404 with the local API's message.
res = await subscribe("run_missing")
assert int(res.status) == 101
assert [json.loads(str(m)) for m in res.webSocket.received] == [
    {"type": "error", "error": "no run with id 'run_missing'"}
]
assert res.webSocket.closed.to_py() == [4404, ""]
run = await engine.trigger(TriggerRequest("talk", {"lines": 0}))
res = await subscribe(run.id)
watcher = res.webSocket
await engine.cancel(run.id)  # nobody tells the object: its alarm finds out
cloud.clock.advance(31)
assert int(await run_ns.fireAlarms()) == 1
assert [json.loads(str(m)) for m in watcher.received] == [{"type": "end", "status": "CANCELED"}]
run = await engine.trigger(TriggerRequest("talk", {"lines": 0}))
res = await subscribe(run.id)
leaving = res.webSocket
leaving.close(1001, "going away")
assert int(await run_ns.deliverSocketEvents()) == 1  # webSocketClose, on a rebuilt object
await cloud.drain()
assert list(leaving.received) == []
check("alarm and webSocketClose with the runtime's raw arguments; 4404 for an unknown run")

# 9. A ttl through the Timers port: the run's index shard keeps its alarm at the expiry
#    (through the SDK's storage wrapper) and the alarm, called with the runtime's raw
#    AlarmInvocationInfo, expires the run on time.
index_ns = cloud.namespaces["RUN_INDEX"]
run = await engine.trigger(TriggerRequest("echo", {}, {"ttl": "10s"}))
expires_at = (await engine.get_run(run.id))["expires_at"]
alarms = [float(r.storage.alarmMs) for r in index_ns.objects.values() if r.storage.alarmMs]
assert alarms == [math.ceil(expires_at * 1000)], (alarms, expires_at)
cloud.clock.advance(11)
assert int(await index_ns.fireAlarms()) == 1
assert (await engine.get_run(run.id))["state"] == "expired"
check("a ttl expires through the shard's alarm")

# 10. A public access token (an HS256 JWT signed with the secret key, as the official client
#     signs one) reads the run it names and no other, on the Worker.
import jwt  # noqa: E402  (PyJWT: the Worker's dependency, from its Pyodide wheel)

mine = await engine.trigger(TriggerRequest("echo", {}))
other = await engine.trigger(TriggerRequest("echo", {}))
token = jwt.encode(
    {
        "sub": "env", "pub": True, "scopes": [f"read:runs:{mine.id}"],
        "iss": "https://id.trigger.dev", "aud": "https://api.trigger.dev",
        "exp": int(cloud.clock.now()) + 3600,
    },
    SECRET,
    algorithm="HS256",
)  # fmt: skip
bearer = {"authorization": f"Bearer {token}"}
assert int((await cloud.fetch("GET", f"/api/v3/runs/{mine.id}", bearer)).status) == 200
assert int((await cloud.fetch("GET", f"/api/v3/runs/{other.id}", bearer)).status) == 403
forged = jwt.encode({"scopes": ["read:runs"], "exp": 2**31}, "not the key", algorithm="HS256")
res = await cloud.fetch("GET", f"/api/v3/runs/{mine.id}", {"authorization": f"Bearer {forged}"})
assert int(res.status) == 401
check("a public access token reads its run and no other")

# 12. A Realtime subscription (`GET /realtime/v1/runs/{id}`) forwarded to the run's Durable
#     Object and answered there through the SDK's ASGI bridge: a snapshot, then a live
#     request held in the object until the run changes (its watcher, not the Worker's).
live_cloud = make_cloud(shards=2, vars={"TRIGGER_DO_REALTIME_HOLD": "5"})
live_engine = live_cloud.engine()
run = await live_engine.trigger(TriggerRequest("talk", {"lines": 2}))
path = f"/realtime/v1/runs/{run.id}"
res = await live_cloud.fetch("GET", path + "?offset=-1", AUTH)
assert int(res.status) == 200, str(await res.text())
offset, handle = str(res.headers.get("electric-offset")), str(res.headers.get("electric-handle"))
[row, done] = json.loads(str(await res.text()))
assert row["value"]["status"] == "PENDING" and done == {"headers": {"control": "up-to-date"}}
assert handle == f"run-{run.id}" and res.headers.get("electric-schema")
held = asyncio.ensure_future(
    live_cloud.fetch("GET", f"{path}?offset={offset}&handle={handle}&live=true", AUTH)
)
await asyncio.sleep(0.2)
assert not held.done()
await live_cloud.drain()
res = await asyncio.wait_for(held, 10)
[row, _] = json.loads(str(await res.text()))
assert row["headers"] == {"operation": "update"} and row["value"]["status"] in (
    "EXECUTING", "COMPLETED_SUCCESSFULLY"
), row["value"]["status"]
assert int((await live_cloud.fetch("GET", path)).status) == 401  # checked in the object
check("a Realtime subscription answered and held by the run's Durable Object")

# 11. A Worker built without the SDK fails loudly at import (before: the stand-in classes took
#    over silently and no handler of the deployed Worker was ever called).
for name in [m for m in sys.modules if m.startswith("trigger_do.platform.cloudflare.entry")]:
    del sys.modules[name]
saved = sys.modules.get("workers")
sys.modules["workers"] = None  # type: ignore[assignment]
try:
    import trigger_do.platform.cloudflare.entry  # noqa: F401
except ImportError as exc:
    assert "Python Workers SDK" in str(exc), exc
else:
    raise AssertionError("entry imported without the SDK")
finally:
    sys.modules["workers"] = saved
check("no SDK: a loud ImportError")

print(f"pyodide sdk seams ok ({len(CHECKS)} checks)")
