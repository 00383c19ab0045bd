"""Fixtures for the hot-path micro-benchmarks: a fresh local platform per benchmark."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(platform, sql) on a new database file."""
    from trigger_do.platform.local.platform import open_local

    platform, sql = open_local(tmp_path / "bench.db")
    yield platform, sql
    sql.close()
