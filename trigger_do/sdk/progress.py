"""Long waits in the terminal show progress (rich)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import RunFailedError
from .handles import RunHandle


async def wait_with_progress(handle: RunHandle, timeout: float | None = None) -> Any:
    """Wait for a run, showing its state and progress; return its output."""
    deadline = None if timeout is None else time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    console = Console(stderr=True)  # stdout stays the output alone, for pipes
    with Progress(
        *columns, transient=True, console=console, disable=not console.is_terminal
    ) as bar:
        job = bar.add_task(handle.id, total=1.0, state="queued")
        while True:
            status = await handle.status()
            bar.update(job, completed=status.progress or 0.0, state=status.state.value)
            if status.is_final:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {handle.id} not finished after {timeout}s")
            await asyncio.sleep(0.1)
    if status.state != "completed":
        raise RunFailedError(status.id, status.state.value, status.error)
    return status.output
