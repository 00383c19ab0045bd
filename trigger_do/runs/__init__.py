"""Run index (every run's row), run objects (checkpoints, steps, logs) and the task registry.

Also the SDK's live view of runs, `trigger_do.runs.subscribe(run_id)`, `subscribe_to_tag`
and `subscribe_to_batch` (defined in `sdk/realtime.py`; imported when first called)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..sdk.handles import RunStatus


def subscribe(run_id: str) -> AsyncIterator[RunStatus]:
    """`async for status in trigger_do.runs.subscribe(run_id)`: the run's status now and on
    every change, until it is final (`sdk.realtime.subscribe`)."""
    from ..sdk.realtime import subscribe as follow

    return follow(run_id)


def subscribe_to_tag(tag: str, *, created_within: str = "24h") -> AsyncIterator[RunStatus]:
    """Every run tagged `tag`, then each change; never ends by itself (`sdk.realtime`)."""
    from ..sdk.realtime import subscribe_to_tag as follow

    return follow(tag, created_within=created_within)


def subscribe_to_batch(batch_id: str) -> AsyncIterator[RunStatus]:
    """Every run of the batch, then each change, until all are final (`sdk.realtime`)."""
    from ..sdk.realtime import subscribe_to_batch as follow

    return follow(batch_id)
