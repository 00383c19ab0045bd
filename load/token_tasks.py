"""The task of `python -m load tokens --runs` (load/tokens.py): waits on its own token."""

from __future__ import annotations

from typing import Any

from trigger_do import RunContext, task


@task(id="load-token-wait")
async def load_token_wait(payload: Any, ctx: RunContext) -> dict[str, Any]:
    token = await ctx.wait_token(timeout="1h", tags=["load-run"])
    got = await token.wait()
    return {"token": token.id, "ok": got.ok, "output": got.output}
