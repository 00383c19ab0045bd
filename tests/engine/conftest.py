"""Engine test fixtures (`driver`, `fake_driver`, `clock`: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine import tasks_for_tests  # registers the test tasks


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    tasks_for_tests.EVENTS.clear()
    yield
