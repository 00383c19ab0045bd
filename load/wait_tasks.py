"""The tasks of the `waits` load scenario (load/waits.py)."""

from __future__ import annotations

from typing import Any

from trigger_do import RunContext, task


@task(id="load-wait")
async def load_wait(payload: dict[str, Any], ctx: RunContext) -> int:
    """Waits `payload["wait"]` seconds (suspended: no worker holds it meanwhile)."""
    await ctx.wait_for(payload["wait"])
    return int(payload["i"])


@task(id="load-child")
async def load_child(payload: int) -> int:
    return payload


@task(id="load-parent")
async def load_parent(payload: int, ctx: RunContext) -> int:
    """Awaits one child (suspended while the child runs)."""
    return int(await load_child.trigger_and_wait(payload)) + 1
