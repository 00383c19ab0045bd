"""Tasks that wait on tokens and events (registered by the tests that import this module)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from trigger_do import RunContext, task

CALLS: Counter[str] = Counter()
TOKENS: dict[str, str] = {}  # run id -> the token it waits on (for the tests to complete)


@task(id="tok-approve")
async def approve(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    CALLS["started"] += 1
    token = await ctx.wait_token(
        timeout=payload.get("timeout", "1h"), idempotency_key=payload.get("key"), tags=["approval"]
    )
    TOKENS[ctx.run_id] = token.id
    result = await token.wait()
    CALLS["resumed"] += 1
    return {"token": token.id, "url": token.url, "ok": result.ok, "output": result.output,
            "error": result.error}  # fmt: skip


@task(id="tok-two")
async def two(payload: dict[str, Any], ctx: RunContext) -> list[Any]:
    """Two tokens one after the other: each replay makes the same two again."""
    first = await ctx.wait_token()
    TOKENS[ctx.run_id + ":1"] = first.id
    a = await first.wait()
    second = await ctx.wait_token()
    TOKENS[ctx.run_id + ":2"] = second.id
    b = await second.wait()
    return [a.output, b.output]


@task(id="tok-paid")
async def paid(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    CALLS["paid-started"] += 1
    got = await ctx.wait_for_event(
        "invoice.paid", match={"payload.account": payload["account"]}, timeout="7d",
        lookback=payload.get("lookback"),
    )  # fmt: skip
    return {"ok": got.ok, "output": got.output, "error": got.error}
