"""Tasks for the HTTP API's tests (served alongside `examples.tasks`)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from trigger_do import RunContext, task


class Ticks(BaseModel):
    count: int = 5
    interval: float = 0.1


@task(id="http-ticks")
async def ticks(payload: Ticks, ctx: RunContext) -> dict[str, int]:
    """Logs `count` lines, `interval` seconds apart: a run to follow live."""
    for i in range(payload.count):
        ctx.logger.info(f"tick {i}", i=i)
        await asyncio.sleep(payload.interval)
    return {"ticks": payload.count}


@task(id="http-sleep")
async def sleep(payload: dict[str, float]) -> dict[str, bool]:
    await asyncio.sleep(payload.get("seconds", 30.0))
    return {"slept": True}


@task(id="http-echo")
async def echo(payload: object = None) -> object:
    return payload


@task(id="http-gate")
async def gate(payload: dict[str, str], ctx: RunContext) -> str:
    """Logs, then waits until the file `payload["path"]` exists: a test that sees the first
    record before creating the file proves its stream is live."""
    from pathlib import Path

    ctx.logger.info("waiting")
    for _ in range(6000):
        if Path(payload["path"]).exists():
            break
        await asyncio.sleep(0.01)
    ctx.logger.info("released")
    return "ok"


@task(id="http-limited", concurrency={"limit": 2})
async def limited(payload: object = None) -> str:
    """A task with its own concurrency limit: a queue to pause, resume and override."""
    await asyncio.sleep(0.05)
    return "done"


@task(id="http-steps")
async def steps(payload: dict[str, float], ctx: RunContext) -> dict[str, int]:
    """Sets its metadata `step` to 0, 1, ... `interval` seconds apart: a run to watch live
    (Realtime)."""
    count = int(payload.get("steps", 3))
    for i in range(count):
        ctx.metadata.set("step", i)
        await asyncio.sleep(payload.get("interval", 0.4))
    return {"steps": count}


@task(id="http-parent")
async def parent(payload: object, ctx: RunContext) -> object:
    """Awaits one `http-echo` child: suspended (WAITING) while it runs (waits/)."""
    return {"child": await echo.trigger_and_wait(payload)}
