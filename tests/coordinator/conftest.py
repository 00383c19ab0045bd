"""Coordinator test fixtures: the repository root on the path (worker processes get it
through PYTHONPATH) and the test tasks registered."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.coordinator import coord_tasks  # noqa: E402,F401  (registers the test tasks)
