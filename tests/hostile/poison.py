"""Tasks that misbehave, and a noop that counts its executions, for tests/hostile/. Imported
in this process (the in-process driver) and by worker processes (by dotted path)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.engine.tasks_for_tests import record
from trigger_do import Retry, RunContext, task

BIG = "x" * 3_000_000  # 3 MB: past every per-run limit, and past a Durable Object row
ONCE = Retry(max_attempts=1)


@task(id="h-noop")
async def noop(payload: dict[str, Any], ctx: RunContext) -> int:
    record(payload["dir"], "executions", f"{ctx.run_id} {ctx.attempt}")
    return ctx.attempt


@task(id="h-raise-big", retry=ONCE)
async def raise_big(payload: Any) -> None:
    raise RuntimeError(BIG)


@task(id="h-log-big", retry=ONCE)
async def log_big(payload: Any, ctx: RunContext) -> None:
    ctx.logger.info(BIG)


@task(id="h-metadata-big", retry=ONCE)
async def metadata_big(payload: Any, ctx: RunContext) -> None:
    ctx.metadata.set("blob", BIG)


@task(id="h-checkpoint-big", retry=ONCE)
async def checkpoint_big(payload: Any, ctx: RunContext) -> None:
    await ctx.checkpoint("big", BIG)


@task(id="h-exit", retry=ONCE)
async def exits(payload: Any) -> None:
    raise SystemExit(3)


@task(id="h-interrupt", retry=ONCE)
async def interrupts(payload: Any) -> None:
    raise KeyboardInterrupt


@task(id="h-sync-exit", retry=ONCE)
def sync_exits(payload: Any) -> None:
    raise SystemExit("from a thread")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no description")


@task(id="h-bad-str", retry=Retry(max_attempts=2, initial_delay="10ms", jitter=False))
async def bad_str(payload: Any) -> None:
    raise BadStr()


@task(id="h-block")
async def blocks(payload: dict[str, Any], ctx: RunContext) -> str:
    """Blocks the event loop (a sync call inside `async def`)."""
    record(payload["dir"], "blocker", f"{ctx.run_id} {ctx.attempt}")
    time.sleep(payload["seconds"])
    return "unblocked"


@task(id="h-work")
async def work(payload: dict[str, Any], ctx: RunContext) -> int:
    """A second of work in small awaits, checkpointed halfway; returns its number."""
    record(payload["dir"], "work", f"{ctx.run_id} {ctx.attempt}")
    if not ctx.last_checkpoint:
        await asyncio.sleep(payload["seconds"] / 2)
        await ctx.checkpoint("half", {"n": payload["n"]})
    await asyncio.sleep(payload["seconds"] / 2)
    return int(payload["n"])
