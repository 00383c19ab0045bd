"""Coordinator acquire/release micro-benchmarks: the coordinator's engineer adds them here
(a batch of 100 permits on one key, then their release), next to the other hot paths."""

from __future__ import annotations

import pytest

pytest.skip(
    "coordinator acquire/release benchmarks are added with the coordinator", allow_module_level=True
)
