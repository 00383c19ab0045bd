"""Events test fixtures (`fake_driver`, `clock`: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.events import tasks_events  # registers the subscribed tasks


@pytest.fixture(autouse=True)
def _clear_seen() -> Iterator[None]:
    tasks_events.SEEN.clear()
    yield
