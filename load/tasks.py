"""The tasks the load scenarios trigger. Serve them with `--tasks load.tasks`.

Every task notes each execution it finishes (run id, attempt, outcome) in a per-process
trace when `TRIGGER_DO_LOAD_TRACE` names a folder: the load tool reads the traces back to
count duplicate completions (a run whose body returned twice), which the runs table alone
cannot show. The trace is a list append per execution, written out in large chunks.
"""

from __future__ import annotations

import asyncio
import atexit
import os
from typing import Any

from trigger_do import Retry, RunContext, task

TRACE_ENV = "TRIGGER_DO_LOAD_TRACE"
ORG_LIMIT = 10  # per-org concurrency limit
RATE_LIMIT = 100  # starts per RATE_PERIOD
RATE_PERIOD = "1s"

_trace: list[str] = []
_trace_dir = os.environ.get(TRACE_ENV)


def _flush() -> None:
    if not _trace_dir or not _trace:
        return
    lines = "".join(_trace)
    _trace.clear()
    with open(os.path.join(_trace_dir, f"{os.getpid()}.tsv"), "a", encoding="utf-8") as f:
        f.write(lines)


if _trace_dir:
    atexit.register(_flush)


def _note(ctx: RunContext, outcome: str) -> None:
    if _trace_dir:
        _trace.append(f"{ctx.run_id}\t{ctx.attempt}\t{outcome}\n")
        if len(_trace) >= 2000:
            _flush()


@task(id="load-noop")
async def noop(payload: Any, ctx: RunContext) -> None:
    """Nothing: measures the engine's own cost per run."""
    _note(ctx, "ok")


@task(id="load-org", concurrency={"limit": ORG_LIMIT, "key": "payload.org"})
async def per_org(payload: dict[str, Any], ctx: RunContext) -> None:
    """Holds its slot for `ms` milliseconds, so concurrency per org is observable."""
    await asyncio.sleep(payload.get("ms", 10) / 1000)
    _note(ctx, "ok")


@task(id="load-rate", rate_limit={"limit": RATE_LIMIT, "period": RATE_PERIOD})
async def rate_limited(payload: Any, ctx: RunContext) -> None:
    """A call to a third-party API with a quota of RATE_LIMIT starts per RATE_PERIOD."""
    _note(ctx, "ok")


@task(
    id="load-flaky",
    retry=Retry(max_attempts=3, backoff="fixed", initial_delay="50ms", jitter=False),
)
async def flaky(payload: dict[str, Any], ctx: RunContext) -> None:
    """Fails its first `fail` attempts, then succeeds (a retry path under load)."""
    if ctx.attempt <= payload.get("fail", 1):
        _note(ctx, "error")
        raise ConnectionError(f"flaky dependency (attempt {ctx.attempt})")
    _note(ctx, "ok")


@task(id="load-checkpoint")
async def checkpointing(payload: dict[str, Any], ctx: RunContext) -> dict[str, int]:
    """Writes `steps` checkpoints (a long-running task's durable progress)."""
    done = ctx.last_checkpoint.data["done"] if ctx.last_checkpoint else 0
    steps = payload.get("steps", 3)
    for i in range(done, steps):
        await ctx.checkpoint(f"step-{i}", {"done": i + 1})
    _note(ctx, "ok")
    return {"done": steps}


# The same bodies with no concurrency or rate limit (`--unlimited`): twins under their own
# ids, so one process (and one server serving `load.tasks`) holds both variants and a run's
# task id says which one it was. Tasks without limits are their own twin.
per_org_unlimited = task(id="load-org-unlimited", run=per_org.fn)
rate_unlimited = task(id="load-rate-unlimited", run=rate_limited.fn)
UNLIMITED = {per_org.id: per_org_unlimited.id, rate_limited.id: rate_unlimited.id}

TASKS = {
    t.id: t
    for t in (noop, per_org, rate_limited, flaky, checkpointing, per_org_unlimited, rate_unlimited)
}
