"""Tasks the waits tests run: in this process (the driver) and in worker processes (by
dotted path: `tests.waits.tasks_waits`). What must survive a process goes to files under
the payload's `dir`; in-process counts go to `CALLS`."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trigger_do import Retry, RunContext, RunFailedError, queue, task

CALLS: Counter[str] = Counter()
SWITCH: dict[str, bool] = {"changed": False}  # a deploy that changed a task's code


def note(payload: dict[str, Any], name: str) -> None:
    CALLS[name] += 1
    if payload.get("dir"):
        with (Path(payload["dir"]) / name).open("a") as f:
            f.write("x\n")


@task(id="w-echo")
async def echo(payload: Any) -> Any:
    return payload


@task(id="w-fail", retry=Retry(max_attempts=1))
async def fail(payload: Any) -> Any:
    raise ValueError(f"child says no to {payload!r}")


@task(id="w-sleeper")
async def sleeper(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """A step, a wait, then the rest: the step runs once however often it replays."""
    made = await ctx.step("before", lambda: note(payload, "before") or ctx.attempt)
    note(payload, "replayed")
    await ctx.wait_for(payload.get("wait", "1h"))
    note(payload, "after")
    return {"made": made, "attempt": ctx.attempt}


@task(id="w-until")
async def until(payload: dict[str, Any], ctx: RunContext) -> str:
    await ctx.wait_until(datetime.fromtimestamp(payload["at"], UTC))
    return "woke"


@task(id="w-journey", retry=Retry(max_attempts=2, initial_delay=0, jitter=False))
async def journey(payload: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Steps, waits and children in one run: each recorded, each returned on replay."""
    account = await ctx.step("create", lambda: note(payload, "create") or {"id": 7})
    await ctx.wait_for("3d", key="cooling-off")
    report = await echo.trigger_and_wait({"account": account["id"]})
    note(payload, "between")
    await ctx.wait_for(0.01)  # in place
    pages = await echo.batch_trigger_and_wait([{"page": p} for p in range(3)])
    await ctx.wait_for("1h")
    note(payload, "end")
    if payload.get("fail_once") and ctx.attempt == 1:
        raise RuntimeError("a failure after everything: the retry replays it all")
    return {"report": report, "pages": pages, "attempt": ctx.attempt}


@task(id="w-changes", retry=Retry(max_attempts=1))
async def changes(payload: Any, ctx: RunContext) -> str:
    """Its code changes while it waits: a replay reaches a child where a wait was."""
    if SWITCH["changed"]:
        await echo.trigger_and_wait("x")
    else:
        await ctx.wait_for("1h")
    return "never"


@task(id="w-sync")
def sync_waiter(payload: Any, ctx: RunContext) -> str:
    if payload == "child":
        return str(echo.trigger_and_wait_sync("x"))
    ctx.wait_for_sync("1h")
    return "never"


@task(id="w-parent")
async def parent(payload: dict[str, Any], ctx: RunContext) -> Any:
    child = fail if payload.get("fail") else echo
    try:
        return {"child": await child.trigger_and_wait(payload.get("value", "hi"))}
    except RunFailedError as exc:
        return {"failed": exc.run_id, "state": exc.state, "error": exc.error.get("message")}


@task(id="w-fanout")
async def fanout(payload: dict[str, Any], ctx: RunContext) -> int:
    results = await echo.batch_trigger_and_wait(list(range(payload["n"])))
    return sum(results)


@task(id="w-long-child")
async def long_child(payload: Any, ctx: RunContext) -> str:
    await ctx.wait_for("1d")
    return "late"


@task(id="w-grandparent")
async def grandparent(payload: Any, ctx: RunContext) -> Any:
    return await middle.trigger_and_wait(payload)


@task(id="w-middle")
async def middle(payload: Any, ctx: RunContext) -> Any:
    return await long_child.trigger_and_wait(payload)


SHARED = queue("w-shared", concurrency_limit=1)


@task(id="w-shared-child", queue=SHARED)
async def shared_child(payload: Any) -> Any:
    return {"child": payload}


@task(id="w-shared-parent", queue=SHARED)
async def shared_parent(payload: Any, ctx: RunContext) -> Any:
    return await shared_child.trigger_and_wait(payload)


@task(id="w-keys")
async def keys(payload: dict[str, Any], ctx: RunContext) -> list[str]:
    """Triggers children with one key in each scope; returns their ids."""
    ids = []
    for scope in ("run", "attempt", "global"):
        handle = await echo.trigger(
            scope, idempotency_key=payload["key"], idempotency_key_scope=scope
        )
        ids.append(handle.id)
    return ids


@task(id="w-bad-wait", retry=Retry(max_attempts=1))
async def bad_wait(payload: str, ctx: RunContext) -> None:
    try:
        if payload == "duration":
            await ctx.wait_for("soon")
        elif payload == "far":
            await ctx.wait_until(datetime(9999, 1, 1, tzinfo=UTC))
        else:
            await ctx.wait_until("tomorrow")  # type: ignore[arg-type]
    except Exception as exc:
        CALLS[type(exc).__name__] += 1


@task(id="w-by-id")
async def by_id(payload: Any, ctx: RunContext) -> Any:
    """Children by task id (`trigger_do.tasks`), as code that does not import them."""
    from trigger_do import tasks

    one = await tasks.trigger_and_wait("w-echo", "one")
    many = await tasks.batch_trigger_and_wait("w-echo", ["a", "b"])
    return [one, many]


@task(id="w-keyed-parent")
async def keyed_parent(payload: dict[str, Any], ctx: RunContext) -> Any:
    """Awaits a child by a global key: the second parent gets the first one's child, ended."""
    return await echo.trigger_and_wait(
        payload["value"], idempotency_key="shared", idempotency_key_scope="global"
    )
