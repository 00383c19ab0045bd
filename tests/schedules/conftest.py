"""Schedules test fixtures (`fake_driver`, `clock`: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.schedules import tasks_sched  # registers the scheduled tasks


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    tasks_sched.EVENTS.clear()
    yield
