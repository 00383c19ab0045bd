"""Shared fixtures: the embedded runtime over real worker processes and a real SQLite file."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # worker processes import test task modules by dotted path
    sys.path.insert(0, str(ROOT))

import trigger_do  # noqa: E402
from tests.engine.driver import Driver, FakeClock  # noqa: E402
from trigger_do.platform.local.runtime import LocalRuntime  # noqa: E402
from trigger_do.sdk.client import pop_client, push_client  # noqa: E402

ENGINE_TASKS = "tests.engine.tasks_for_tests"

# Short leases and polls keep process tests quick; tests override what they need.
RUNTIME_DEFAULTS: dict[str, Any] = {
    "workers": 2,
    "lease_seconds": 2.0,
    "poll_interval": 0.01,
}


@pytest.fixture
def make_runtime(
    tmp_path: Path,
) -> Callable[..., AbstractAsyncContextManager[LocalRuntime]]:
    """`async with make_runtime(workers=1, slice_seconds=1) as rt:` — `trigger_do.local`
    on `tmp_path / "t.db"` serving `tests.engine.tasks_for_tests` unless told otherwise."""

    def make(**options: Any) -> AbstractAsyncContextManager[LocalRuntime]:
        opts = {**RUNTIME_DEFAULTS, **options}
        tasks = opts.pop("tasks", ENGINE_TASKS)
        db = opts.pop("db", tmp_path / "t.db")
        return trigger_do.local(tasks=tasks, db=db, **opts)  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def runtime(
    make_runtime: Callable[..., AbstractAsyncContextManager[LocalRuntime]],
) -> AsyncIterator[LocalRuntime]:
    """The embedded runtime with the defaults above (2 workers)."""
    async with make_runtime() as rt:
        yield rt


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    """The engine in this process on a real SQLite file, real clock, one batch at a time
    (no worker processes); SDK calls go to it."""
    d = Driver(tmp_path / "d.db", lease_seconds=2.0, flush_interval=0.001)
    push_client(d.client)
    yield d
    pop_client(d.client)


@pytest.fixture
def fake_driver(tmp_path: Path, clock: FakeClock) -> Iterator[Driver]:
    """The same with a fake clock (delays, ttls and key expiry without waiting)."""
    d = Driver(tmp_path / "f.db", clock=clock, lease_seconds=2.0, flush_interval=0.001)
    push_client(d.client)
    yield d
    pop_client(d.client)
