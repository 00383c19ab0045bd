"""Tasks for the metrics and tracing tests."""

from __future__ import annotations

import asyncio
import os

from trigger_do import AbortTaskRunError, Retry, RunContext, task


@task(id="obs-ok")
async def ok(payload: dict[str, float], ctx: RunContext) -> dict[str, bool]:
    await asyncio.sleep(payload.get("sleep", 0.0))
    return {"ok": True}


@task(id="obs-flaky", retry=Retry(max_attempts=3, initial_delay="10ms", jitter=False))
async def flaky(payload: dict[str, int], ctx: RunContext) -> int:
    """Fails its first attempt, then completes."""
    if ctx.attempt < 2:
        raise RuntimeError("first attempts fail")
    return ctx.attempt


@task(id="obs-fail")
async def fail(payload: dict[str, int], ctx: RunContext) -> None:
    raise AbortTaskRunError("no retry for this one")


@task(id="obs-limited", concurrency={"limit": 1, "key": "payload.org"})
async def limited(payload: dict[str, str], ctx: RunContext) -> None:
    await asyncio.sleep(0.05)


@task(id="obs-poison")
def poison(payload: dict[str, int]) -> None:
    os._exit(1)  # the worker dies on every delivery: dead-lettered, CRASHED


@task(id="obs-traced", retry=Retry(max_attempts=2, initial_delay="10ms", jitter=False))
async def traced(payload: dict[str, int], ctx: RunContext) -> int:
    """A step, a log line, and a first attempt that fails after its step."""
    fetched = await ctx.step("fetch", lambda: 41)
    ctx.logger.info("fetched", value=fetched)
    if ctx.attempt == 1:
        raise RuntimeError("the first attempt fails after its step")
    return int(fetched) + 1


@task(id="obs-modules")
def modules(payload: dict[str, int]) -> list[str]:
    """The OpenTelemetry modules this worker process has imported."""
    import sys

    return sorted(m for m in sys.modules if m.startswith("opentelemetry"))


@task(id="obs-waits")
async def waits(payload: dict[str, float], ctx: RunContext) -> bool:
    await ctx.wait_for("1h", key="cool")
    return bool((await ok.trigger_and_wait({}))["ok"])
