"""Tasks the engine tests run, in this process (the in-process driver) and in worker
processes (imported by dotted path: `tests.engine.tasks_for_tests`).

Side effects that must survive a killed process go to files under a directory named in
the payload (`dir`), one line per event, so a test can count them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from trigger_do import AbortTaskRunError, Retry, RunContext, task

# Hook calls made in this process (the in-process driver runs hooks here).
EVENTS: list[tuple[str, Any]] = []


def record(directory: str, name: str, line: str) -> int:
    """Append `line` to `directory/name`; return how many lines it now has."""
    path = Path(directory) / name
    with path.open("a") as f:
        f.write(line + "\n")
    return len(path.read_text().splitlines())


def lines(directory: str | Path, name: str) -> list[str]:
    path = Path(directory) / name
    return path.read_text().splitlines() if path.exists() else []


@task(id="t-loop")
async def loop_selector(payload: Any) -> str:
    """The selector of the event loop a worker runs its tasks on."""
    return type(asyncio.get_running_loop()._selector).__name__  # type: ignore[attr-defined]


@task(id="t-echo")
async def echo(payload: Any) -> Any:
    return payload


# --- checkpoints, steps, slices -------------------------------------------------------------


class Chunks(BaseModel):
    dir: str
    chunks: int = 1000
    chunk_seconds: float = 0.005


def _completed(payload: Chunks, output: Any, ctx: RunContext) -> None:
    record(payload.dir, "completed", f"{ctx.run_id} {ctx.attempt}")


@task(id="t-chunks", on_success=_completed)
async def chunks(payload: Chunks, ctx: RunContext) -> dict[str, int]:
    """Works through `chunks` chunks, checkpointing each; resumes after the last one."""
    size = await ctx.step("download", lambda: record(payload.dir, "download", str(ctx.attempt)))
    start = ctx.last_checkpoint.data["next"] if ctx.last_checkpoint else 0
    for i in range(start, payload.chunks):
        record(payload.dir, "work", f"{os.getpid()} {ctx.attempt} {i}")
        await asyncio.sleep(payload.chunk_seconds)
        await ctx.checkpoint(f"chunk-{i}", {"next": i + 1})
    return {"chunks": payload.chunks, "attempt": ctx.attempt, "download_calls": size}


@task(id="t-steps", retry=Retry(max_attempts=3, initial_delay="50ms", jitter=False))
async def steps(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Two durable steps (sync and async), then a failure on every attempt but the last."""
    charged = await ctx.step("charge", lambda: record(payload["dir"], "charge", str(ctx.attempt)))

    async def notify() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"sent": record(payload["dir"], "notify", str(ctx.attempt))}

    notified = await ctx.step("notify", notify)
    if ctx.attempt < 3:
        raise RuntimeError(f"fails after its steps on attempt {ctx.attempt}")
    return {"charged": charged, "notified": notified, "attempt": ctx.attempt}


# --- retries, aborts, timeouts ----------------------------------------------------------------

FLAKY_RETRY = Retry(max_attempts=3, backoff="exponential", initial_delay="400ms", jitter=False)


@task(id="t-flaky", retry=FLAKY_RETRY)
async def flaky(payload: dict[str, Any], ctx: RunContext) -> int:
    """Fails until attempt `succeed_on`; checkpoints each attempt's start (its `at`)."""
    await ctx.checkpoint("attempt", ctx.attempt)
    if ctx.attempt < payload.get("succeed_on", 1):
        raise ConnectionError(f"unavailable on attempt {ctx.attempt}")
    return ctx.attempt


@task(id="t-abort", retry=Retry(max_attempts=5, initial_delay="10ms"))
async def abort(payload: Any, ctx: RunContext) -> None:
    raise AbortTaskRunError("no point in retrying this")


@task(
    id="t-timeout",
    max_duration="300ms",
    retry=Retry(max_attempts=2, initial_delay="10ms", jitter=False),
)
async def slow(payload: dict[str, Any], ctx: RunContext) -> str:
    if ctx.attempt >= payload.get("fast_on", 99):
        return "fast"
    await asyncio.sleep(10)
    return "slow"


@task(id="t-upstream-timeout", retry=Retry(max_attempts=2, initial_delay="10ms", jitter=False))
async def upstream_timeout(payload: dict[str, Any], ctx: RunContext) -> str:
    """Raises a TimeoutError of its own (an upstream call's), with or without max_duration."""
    raise TimeoutError(f"the upstream API did not answer (attempt {ctx.attempt})")


# --- long-running, cancel, shutdown, crashes --------------------------------------------------


@task(id="t-sleep", retry=Retry(max_attempts=1))
async def sleeper(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Sleeps `seconds` in small awaits; records start, finish or cancellation."""
    record(payload["dir"], "started", f"{os.getpid()} {ctx.attempt}")
    try:
        end = time.monotonic() + payload["seconds"]
        while time.monotonic() < end:
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        record(payload["dir"], "cancelled", f"{os.getpid()} {ctx.attempt}")
        raise
    record(payload["dir"], "finished", f"{os.getpid()} {ctx.attempt}")
    return {"slept": payload["seconds"], "pid": os.getpid()}


@task(id="t-suicide", retry=Retry(max_attempts=10, initial_delay="10ms"))
async def suicide(payload: dict[str, Any], ctx: RunContext) -> dict[str, int]:
    """Hard-kills its own worker process on every delivery while the `flag` file exists."""
    record(payload["dir"], "deliveries", f"{os.getpid()} {ctx.attempt}")
    if Path(payload["flag"]).exists():
        os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(30)
    return {"attempt": ctx.attempt}


# --- sync functions, hooks, models, metadata, logs ---------------------------------------------


@task(id="t-sync")
def sync_double(payload: dict[str, int], ctx: RunContext) -> dict[str, Any]:
    time.sleep(0.01)
    return {"double": payload["n"] * 2, "thread": threading.current_thread().name}


def _on_start(payload: Any, ctx: RunContext) -> None:
    EVENTS.append(("start", ctx.run_id))


async def _on_success(payload: Any, output: Any, ctx: RunContext) -> None:
    await asyncio.sleep(0)
    EVENTS.append(("success", output))


def _on_failure(payload: Any, error: BaseException, ctx: RunContext) -> None:
    EVENTS.append(("failure", repr(error)))


@task(
    id="t-hooks",
    on_start=_on_start,
    on_success=_on_success,
    on_failure=_on_failure,
    retry=Retry(max_attempts=1),
)
async def hooked(payload: dict[str, Any], ctx: RunContext) -> str:
    if payload.get("fail"):
        raise ValueError("the run failed")
    return "done"


def _explode(*args: Any) -> None:
    raise RuntimeError("the hook exploded")


@task(
    id="t-bad-hooks",
    on_start=_explode,
    on_success=_explode,
    on_failure=_explode,
    retry=Retry(max_attempts=1),
)
async def bad_hooks(payload: dict[str, Any], ctx: RunContext) -> str:
    if payload.get("fail"):
        raise ValueError("the run failed")
    return "outcome stands"


class Order(BaseModel):
    order_id: str
    quantity: int = Field(gt=0)


class Receipt(BaseModel):
    order_id: str
    total: float
    payload_type: str


@task(id="t-model")
async def model_task(payload: Order, ctx: RunContext) -> Receipt:
    return Receipt(
        order_id=payload.order_id,
        total=payload.quantity * 2.5,
        payload_type=type(payload).__name__,
    )


@task(id="t-meta")
async def meta(payload: dict[str, Any], ctx: RunContext) -> str:
    """Sets metadata and progress, then waits until the `release` file exists."""
    ctx.metadata.set("stage", "halfway")
    ctx.metadata.update({"rows": 21})
    await ctx.progress(0.5)
    while not Path(payload["release"]).exists():
        await asyncio.sleep(0.01)
    ctx.metadata.set("stage", "done")
    return "released"


@task(id="t-logs")
async def logs_task(payload: dict[str, Any], ctx: RunContext) -> int:
    for i in range(payload["n"]):
        ctx.logger.info(f"line {i}", i=i)
        await asyncio.sleep(payload["gap"])
    ctx.logger.warn("last line", level="warn")
    return payload["n"]
