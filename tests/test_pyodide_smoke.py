"""Runs tests/pyodide/smoke.py under real Pyodide 314 in Node (see tests/pyodide/README.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_HARNESS = Path(__file__).resolve().parent / "pyodide" / "harness.py"
_spec = importlib.util.spec_from_file_location("pyodide_harness", _HARNESS)
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = harness
_spec.loader.exec_module(harness)


@pytest.mark.skipif(not harness.node_available(), reason="node/npm not on PATH")
def test_pyodide_smoke() -> None:
    proc = harness.run_in_pyodide("tests/pyodide/smoke.py")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "pyodide smoke ok" in proc.stdout, output
