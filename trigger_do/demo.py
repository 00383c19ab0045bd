"""`trigger-do demo`: the seed's examples, end to end, on the embedded runtime."""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .errors import RunFailedError, TriggerDoError
from .shared.states import FINAL_STATES


def _examples() -> Any:
    """`examples.tasks`, from the current directory or beside the installed source."""
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / "examples" / "tasks.py").exists():
            if str(root) not in sys.path:
                sys.path.append(str(root))
            return importlib.import_module("examples.tasks")
    raise TriggerDoError("examples/tasks.py not found: run the demo from the repository root")


async def run_demo(*, workers: int = 2, batch: int = 1000) -> int:
    from .platform.local.runtime import local

    console = Console(highlight=False, soft_wrap=True)
    ex = _examples()
    with tempfile.TemporaryDirectory(prefix="trigger-do-demo-") as tmp:
        db = Path(tmp) / "demo.db"
        console.print(
            f"[bold]trigger.do demo[/]: embedded runtime, {workers} worker processes, database {db}"
        )
        async with local(tasks=ex, db=db, workers=workers):
            ok = await _scenarios(console, ex, batch)
    console.print(
        "[bold green]demo finished: every run ended as expected[/]"
        if ok
        else "[bold red]demo finished with unexpected results[/]"
    )
    return 0 if ok else 1


async def _scenarios(console: Console, ex: Any, batch: int) -> bool:
    ok = True

    # 1. a simple task, trigger and wait
    t0 = time.perf_counter()
    out = await ex.send_email.trigger_and_wait(
        {"to": "user@example.com", "subject": "Hello", "body": "Welcome!"}, timeout=30
    )
    console.print(f"send-email          completed in {_ms(t0)}: {out}")

    # 2. retries with exponential backoff: fails twice, succeeds on attempt 3
    handle = await ex.sync_data.trigger({"source_id": "src-123", "fail_times": 2})
    out = await handle.result(timeout=60)
    status = await handle.status()
    console.print(
        f"sync-data           completed on attempt {status.attempt} "
        f"(2 failures retried with backoff): {out}"
    )
    ok &= status.attempt == 3

    # 3. a long-running task that checkpoints 1,000 chunks, with live progress
    handle = await ex.process_large_file.trigger({"file_id": "file-1", "chunks": 1000})
    with _bar(console) as bar:
        job = bar.add_task("process-large-file", total=1000)
        while True:
            status = await handle.status()
            bar.update(job, completed=int((status.progress or 0) * 1000))
            if status.is_final:
                break
            await _sleep(0.1)
    out = await handle.result(timeout=120)
    console.print(
        f"process-large-file  {status.state.value}: {out}, "
        f"{len(status.checkpoints)} checkpoints, last {status.checkpoints[-1].name}"
    )
    ok &= len(status.checkpoints) == 1001

    # 4. a batch, fanned out over the workers
    t0 = time.perf_counter()
    b = await ex.add.batch_trigger([{"a": i, "b": i} for i in range(batch)])
    accepted = _ms(t0)
    with _bar(console) as bar:
        job = bar.add_task(f"batch of {batch}", total=batch)
        ids = [r.id for r in b.runs]
        from .sdk.client import current_client

        client = current_client()
        while True:
            states = await client.get_states(ids)
            done = sum(1 for s in states.values() if s[0] in FINAL_STATES)
            bar.update(job, completed=done)
            if done == batch:
                break
            await _sleep(0.05)
    results = await b.results(timeout=120)
    right = all(r == {"sum": 2 * i} for i, r in enumerate(results))
    console.print(
        f"batch of {batch}       accepted in {accepted}, all completed in {_ms(t0)}; "
        f"outputs in input order: {right}"
    )
    ok &= right

    # 5. a sync task that aborts: fails at once, without retrying
    handle = await ex.validate_order.trigger({"items": []})
    try:
        await handle.result(timeout=30)
        ok = False
    except RunFailedError as exc:
        status = await handle.status()
        console.print(
            f"validate-order      {exc.state} after {status.attempt} attempt "
            f"(AbortTaskRunError, no retry): {exc.error.get('message')}"
        )
        ok &= status.attempt == 1
    return bool(ok)


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a pipe or a log gets the result lines only
    )


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _ms(t0: float) -> str:
    return f"{(time.perf_counter() - t0) * 1000:.0f} ms"
