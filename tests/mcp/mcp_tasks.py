"""Tasks the MCP tests drive through `trigger-do mcp`."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from trigger_do import RunContext, task


class Sum(BaseModel):
    a: int
    b: int


@task(id="mcp-add", concurrency={"limit": 2, "key": "payload.a"})
async def add(payload: Sum, ctx: RunContext) -> dict[str, int]:
    ctx.logger.info("adding", a=payload.a, b=payload.b)
    print("a task's print must not reach the MCP wire")  # stdout is the protocol's
    await ctx.checkpoint("added", {"sum": payload.a + payload.b})
    return {"sum": payload.a + payload.b}


@task(id="mcp-slow")
async def slow(payload: dict[str, float], ctx: RunContext) -> None:
    await asyncio.sleep(payload.get("seconds", 60))
