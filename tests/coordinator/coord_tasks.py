"""Tasks the coordinator tests run in worker processes (`tests.coordinator.coord_tasks`)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import trigger_do
from trigger_do import task
from trigger_do.errors import AbortTaskRunError

shared = trigger_do.queue("coord-shared", concurrency_limit=3)


@task(id="coord-org", concurrency={"limit": 3, "key": "payload.org"})
async def coord_org(p: dict[str, Any]) -> int:
    await asyncio.sleep(p.get("sleep", 0.02))
    return int(p.get("i", 0))


@task(id="coord-fair", concurrency={"limit": 5, "key": "payload.org"})
async def coord_fair(p: dict[str, Any]) -> int:
    await asyncio.sleep(p.get("sleep", 0.01))
    return 0


@task(id="coord-rate", rate_limit={"limit": 5, "period": "1s", "key": "payload.account.id"})
async def coord_rate(p: dict[str, Any]) -> None:
    return None


@task(id="coord-rate-global", rate_limit="10/second")
async def coord_rate_global(p: Any) -> None:
    return None


@task(id="coord-shared-a", queue=shared)
async def coord_shared_a(p: dict[str, Any]) -> None:
    await asyncio.sleep(p.get("sleep", 0.02))


@task(id="coord-shared-b", queue=shared, concurrency={"limit": 2, "key": "payload.org"})
async def coord_shared_b(p: dict[str, Any]) -> None:
    await asyncio.sleep(p.get("sleep", 0.02))


@task(
    id="coord-mixed",
    concurrency={"limit": 4, "key": "payload.org"},
    retry={"max_attempts": 2, "initial_delay": 0.05, "max_delay": 0.1, "jitter": False},
    max_duration=0.3,
)
async def coord_mixed(p: dict[str, Any], ctx: Any) -> str:
    kind = p["kind"]
    if kind == "fail":
        raise ValueError("boom")
    if kind == "abort":
        raise AbortTaskRunError("no")
    if kind == "timeout":
        await asyncio.sleep(5)
    if kind == "slow":
        await asyncio.sleep(1.0)
    if kind == "crash" and ctx.attempt == 1 and p.get("crash_once"):
        marker = p["crash_once"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(0.01)
    return kind


@task(id="coord-noop-keyed", concurrency={"limit": 10, "key": "payload.k"})
async def coord_noop_keyed(p: Any) -> None:
    return None


@task(id="coord-noop")
async def coord_noop(p: Any) -> None:
    return None


@task(id="coord-clocked", concurrency={"limit": 3, "key": "payload.org"})
async def coord_clocked(p: dict[str, Any]) -> None:
    """Sleeps, then notes when its code began and ended (this process's file in
    `p["dir"]`): what really ran at once, whatever the runs' rows say."""
    import time

    began = time.time()
    await asyncio.sleep(p.get("sleep", 0.01))
    line = f"{p['org']} {began!r} {time.time()!r}\n"
    with open(os.path.join(p["dir"], str(os.getpid())), "a") as f:
        f.write(line)
