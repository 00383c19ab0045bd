"""A parent that waits on a child run and then on a timer, for `get_run_details`' test."""

from __future__ import annotations

from trigger_do import RunContext, task


@task(id="mcp-child")
async def child(payload: dict[str, int]) -> int:
    return payload["n"] * 2


@task(id="mcp-parent")
async def parent(payload: dict[str, int], ctx: RunContext) -> int:
    doubled = await child.trigger_and_wait({"n": payload["n"]})
    await ctx.wait_for("1h", key="cooling-off")  # suspends: the run stays WAITING
    return int(doubled)
