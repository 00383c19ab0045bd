"""The seed's examples, in Python. Run them with `trigger-do demo`, or serve them with
`trigger-do dev --tasks examples.tasks`."""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel

from trigger_do import AbortTaskRunError, Retry, RunContext, task


class Email(BaseModel):
    to: str
    subject: str
    body: str


# Simple task (the seed's call form: task(id=..., run=fn))
async def _send_email(payload: Email, ctx: RunContext) -> dict[str, str]:
    ctx.logger.info("sending email", to=payload.to)
    message_id = "msg_" + hashlib.sha1(f"{payload.to}{payload.subject}".encode()).hexdigest()[:12]
    return {"message_id": message_id}


send_email = task(id="send-email", run=_send_email)


class SyncData(BaseModel):
    source_id: str
    fail_times: int = 0  # demo knob: fail this many attempts before succeeding


# Task with a retry policy
@task(
    id="sync-data",
    retry=Retry(max_attempts=5, backoff="exponential", initial_delay="100ms", max_delay="5m"),
)
async def sync_data(payload: SyncData, ctx: RunContext) -> dict[str, int]:
    if ctx.attempt <= payload.fail_times:
        raise ConnectionError(f"source {payload.source_id} unavailable (attempt {ctx.attempt})")
    records = [f"{payload.source_id}-{i}" for i in range(42)]
    ctx.logger.info("synced", records=len(records), attempt=ctx.attempt)
    return {"record_count": len(records)}


class LargeFile(BaseModel):
    file_id: str
    chunks: int = 1000
    chunk_seconds: float = 0.0


# Checkpointing for long-running tasks: resumes after the last finished chunk
@task(id="process-large-file")
async def process_large_file(payload: LargeFile, ctx: RunContext) -> dict[str, int]:
    # (the last checkpoint may be "downloaded", which has no chunk count yet)
    done = ctx.last_checkpoint.data.get("processed", 0) if ctx.last_checkpoint else 0
    if done == 0:
        size = await ctx.step("download", lambda: {"size": payload.chunks * 1024})
        await ctx.checkpoint("downloaded", size)
    for i in range(done, payload.chunks):
        if payload.chunk_seconds:
            await asyncio.sleep(payload.chunk_seconds)
        await ctx.checkpoint(f"chunk-{i}", {"processed": i + 1, "total": payload.chunks})
        if (i + 1) % 100 == 0:
            await ctx.progress((i + 1) / payload.chunks)
    return {"processed_chunks": payload.chunks}


@task(id="add")
async def add(payload: dict[str, int]) -> dict[str, int]:
    return {"sum": payload["a"] + payload["b"]}


@task(id="noop")
async def noop(payload: object = None) -> None:
    return None


@task(id="validate-order", retry={"max_attempts": 3})
def validate_order(payload: dict[str, object]) -> dict[str, bool]:
    """A sync task: runs off the event loop."""
    if not payload.get("items"):
        raise AbortTaskRunError("an order needs items")  # fails at once, no retry
    return {"valid": True}
