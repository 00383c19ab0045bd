"""Waits test fixtures: the test tasks registered, their counts cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.waits import tasks_waits


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    tasks_waits.CALLS.clear()
    tasks_waits.SWITCH["changed"] = False
    yield
