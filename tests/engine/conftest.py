"""Engine test fixtures: the in-process driver with the SDK pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # worker processes get this path through PYTHONPATH
    sys.path.insert(0, str(ROOT))

from tests.engine import tasks_for_tests  # noqa: E402  (registers the test tasks)
from tests.engine.driver import Driver, FakeClock  # noqa: E402
from trigger_do.sdk.client import pop_client, push_client  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Driver]:
    """The engine in this process on a real SQLite file, real clock; SDK calls go to it."""
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


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    tasks_for_tests.EVENTS.clear()
    yield
