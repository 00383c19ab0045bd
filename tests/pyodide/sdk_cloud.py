"""A fake Cloudflare account under real Pyodide, whose bindings reach trigger.do's adapters
through the real Python Workers SDK (`workers-runtime-sdk`), as in a deployed Worker.

The bindings are JS objects with workerd's class names (workerd.mjs, importable as `_workerd`
once run.mjs has registered it); the Worker and the Durable Objects are built and called the
way the runtime builds and calls them (python-entrypoint-helper.ts and introspection.py in
cloudflare/workerd @6552d99):

- an entrypoint class is called with the JS `(ctx, env)`; the SDK's `_wrap_class` then wraps
  `env` (`_EnvWrapper`: each binding in a `_BindingWrapper`) and a Durable Object's `ctx`
  (`DurableObjectContext`, whose `storage` is a `_BindingWrapper`);
- `fetch`, `queue`, `scheduled` and every RPC method are called through `dispatch` below, which
  does what introspection.py's `wrapper_func` does: `python_from_rpc` on each argument,
  `python_to_rpc` on the result; a Durable Object's `alarm` and `webSocket*` handlers are
  called directly with the raw JS arguments (`callRelaxed`).

Only the JS stand-ins are ours; every conversion between JS and Python is the SDK's.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

import _workerd  # type: ignore[import-not-found]
import js  # type: ignore[import-not-found]
from pyodide.code import relaxed_call  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]
from workers import python_from_rpc, python_to_rpc  # type: ignore[import-not-found]
from workers.rpc import _EnvWrapper  # type: ignore[import-not-found]

from trigger_do.engine import Engine
from trigger_do.platform.cloudflare import entry
from trigger_do.platform.cloudflare.platform import cloudflare_platform

RUN_QUEUE, DLQ = "trigger-do-runs", "trigger-do-runs-dlq"
SECRET = "tr_test_secret"
BASE = "https://trigger-do.example.workers.dev"


async def dispatch(relaxed: bool, inst: Any, prop: str, *args: Any) -> Any:
    """introspection.py `wrapper_func`: how the runtime calls `fetch`, `queue`, `scheduled`
    and RPC methods of a Python entrypoint."""
    method = getattr(inst, prop)
    py_args = [python_from_rpc(arg) for arg in args]
    result = relaxed_call(method, *py_args) if relaxed else method(*py_args)
    if inspect.isawaitable(result):
        result = await result
    return python_to_rpc(result)


def js_object(value: dict[str, Any]) -> Any:
    return to_js(value, dict_converter=js.Object.fromEntries)


class Clock:
    """The engine's clock: the JS fakes' clock (queue visibility, alarms), so one `advance`
    moves both."""

    def now(self) -> float:
        return float(_workerd.clock.nowMs()) / 1000.0

    def advance(self, seconds: float) -> None:
        _workerd.clock.advance(seconds)


@dataclass
class Cloud:
    env: Any  # the JS env object the runtime hands to constructors
    clock: Clock
    queues: Any  # _workerd.Queues
    namespaces: dict[str, Any]  # binding name -> _workerd.DurableObjectNamespace
    bucket: Any  # _workerd.R2Bucket
    worker: Any  # _workerd.Entrypoint over the Worker's class

    def engine(self) -> Engine:
        """An engine over the SDK-wrapped env (as the Worker builds its own)."""
        return Engine(cloudflare_platform(_EnvWrapper(self.env), clock=self.clock))

    async def queue(self, batch: Any) -> Any:
        """The Worker's `queue` handler, as the runtime calls it."""
        return await self.worker.call("queue", batch)

    async def fetch(self, method: str, path: str, headers: dict[str, str] | None = None,
                    body: bytes | None = None) -> Any:
        """An HTTP request to the Worker (`fetch`), as the runtime delivers it: a JS Request."""
        init: dict[str, Any] = {"method": method, "headers": js_object(headers or {})}
        if body is not None:
            init["body"] = to_js(body)
        request = js.Request.new(BASE + path, js_object(init))
        response = await self.worker.call("fetch", request)
        await _workerd.settle()
        return response

    async def deliver(self, name: str, handler: Any = None) -> int:
        """One batch of queue `name` to `handler` (default: the Worker's `queue`)."""
        target = create_proxy(handler or self.queue)
        try:
            return int(await self.queues.deliver(name, target))
        finally:
            target.destroy()

    async def drain(self, max_rounds: int = 500, advance: float = 0.0) -> int:
        """Deliver batches (run queue, then dead letters) until both are empty; when only
        delayed messages remain, advance the clock to the next one."""
        rounds = 0
        for _ in range(max_rounds):
            delivered = 0
            for name in (RUN_QUEUE, DLQ):
                delivered += await self.deliver(name)
            if delivered:
                rounds += 1
                continue
            next_ms = float(self.queues.nextVisibleMs())
            if next_ms == float("inf"):
                return rounds
            step = next_ms / 1000.0 - self.clock.now()
            self.clock.advance(max(step, 0.0) + 0.001 if not advance else min(advance, step))
        raise AssertionError(f"queues not drained after {max_rounds} rounds")

    def pending(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.queues.pending().to_py().items()}

    def rows_per_object(self, binding: str, table: str) -> list[int]:
        return [int(n) for n in self.namespaces[binding].tableRows(table)]


def make_cloud(
    *,
    shards: int = 16,
    max_batch_size: int = 100,
    max_retries: int = 3,
    vars: dict[str, str] | None = None,
) -> Cloud:
    """An env like the one wrangler.toml declares, with trigger.do's entry points."""
    clock = Clock()

    class TestWorker(entry.Default):
        pass

    TestWorker.clock = clock
    queues = _workerd.Queues.new()
    queues.consume(
        RUN_QUEUE,
        js_object(
            {"maxBatchSize": max_batch_size, "maxRetries": max_retries, "deadLetterQueue": DLQ}
        ),
    )
    queues.consume(DLQ, js_object({"maxBatchSize": max_batch_size, "maxRetries": max_retries}))
    env = js.Object.new()
    env.RUN_QUEUE = queues.queue(RUN_QUEUE)
    env.PACKETS = bucket = _workerd.R2Bucket.new()
    for name, value in {
        "TRIGGER_DO_INDEX_SHARDS": str(shards),
        "TRIGGER_SECRET_KEY": SECRET,
        "TRIGGER_DO_DLQ": DLQ,
        **(vars or {}),
    }.items():
        setattr(env, name, value)
    call = create_proxy(dispatch)
    namespaces = {}
    for binding, cls in {
        "RUN_INDEX": entry.RunIndex,
        "RUN": entry.Run,
        "REGISTRY": entry.Registry,
        "COORDINATOR": entry.Coordinator,
        "SCHEDULER": entry.Scheduler,
        "EVENTS": entry.Events,
        "WAITPOINTS": entry.Waitpoints,
    }.items():
        timed = type(cls.__name__, (cls,), {"clock": clock})  # alarms act at the test's clock
        namespaces[binding] = _workerd.DurableObjectNamespace.new(
            binding, create_proxy(timed), env, call
        )
        setattr(env, binding, namespaces[binding])
    worker = _workerd.Entrypoint.new(create_proxy(TestWorker), env, call)
    return Cloud(env, clock, queues, namespaces, bucket, worker)


async def json_of(response: Any) -> Any:
    return json.loads(str(await response.text()))
