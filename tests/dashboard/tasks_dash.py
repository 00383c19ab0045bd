"""Tasks for the dashboard's tests (served beside tests/http's)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from trigger_do import RunContext, schedules, task


class Work(BaseModel):
    items: int = 2
    pause: float = 0.0


@task(id="dash-work")
async def work(payload: Work, ctx: RunContext) -> dict[str, int]:
    """A step, a checkpoint per item, a log line per item: everything a run page shows."""
    size = await ctx.step("measure", lambda: {"items": payload.items})
    for i in range(payload.items):
        ctx.logger.info(f"item {i} of {size['items']}", item=i)
        await ctx.checkpoint(f"item-{i}", {"done": i + 1})
        await asyncio.sleep(payload.pause)
    return {"done": payload.items}


@schedules.task(id="dash-report")  # no cron: imperative schedules only
async def report(payload: object = None) -> str:
    return "reported"


@task(id="dash-child")
async def child(payload: object = None) -> dict[str, bool]:
    return {"child": True}


@task(id="dash-parent")
async def parent(payload: dict[str, str], ctx: RunContext) -> dict[str, object]:
    """Waits (a timer, keyed), then waits on a child: what a run page shows of waits."""
    await ctx.wait_for(payload.get("wait", "1h"), key="cooling-off")
    await child.trigger_and_wait({"from": ctx.run_id})
    return {"waited": True}


@task(id="dash-on-event", event="dash.ping")
async def on_event(payload: object = None) -> str:
    return "pinged"


@task(id="dash-on-hook", source="hmac", event="dash.hook", secret="dash-secret")
async def on_hook(payload: object = None) -> str:
    return "hooked"
