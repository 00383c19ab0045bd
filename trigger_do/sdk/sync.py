"""Sync twins: run a coroutine from code outside an event loop (Django, Flask, scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import MisuseError

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise MisuseError(
        "a *_sync call was made inside a running event loop: use the async call with await"
    )
