"""The Cloudflare scenarios under real Pyodide 314, through the real Python Workers SDK
(tests/pyodide/sdk_cloud.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_HARNESS = Path(__file__).resolve().parents[1] / "pyodide" / "harness.py"
_spec = importlib.util.spec_from_file_location("pyodide_harness", _HARNESS)
assert _spec is not None and _spec.loader is not None
harness = sys.modules.get("pyodide_harness") or importlib.util.module_from_spec(_spec)
if "pyodide_harness" not in sys.modules:
    sys.modules["pyodide_harness"] = harness
    _spec.loader.exec_module(harness)


@pytest.mark.skipif(not harness.node_available(), reason="node/npm not on PATH")
def test_engine_on_cloudflare_adapters_under_pyodide() -> None:
    proc = harness.run_in_pyodide(
        "tests/pyodide/cf_scenario.py",
        ["trigger_do", "examples", "tests/cloudflare", "tests/pyodide"],
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "pyodide cloudflare scenario ok" in proc.stdout, output


@pytest.mark.skipif(not harness.node_available(), reason="node/npm not on PATH")
def test_adapters_meet_the_real_workers_sdk_under_pyodide() -> None:
    """tests/pyodide/cf_seams.py: dates, nulls, a 1 MB packet, SQL bindings, a raising
    transaction, the HTTP API and an SSE stream through the SDK's ASGI bridge, a live-log
    WebSocket through hibernation, the alarm and close handlers, a ttl through the shard's
    alarm, a public access token, a Realtime subscription held in the run's object, and a
    loud failure without the SDK."""
    proc = harness.run_in_pyodide("tests/pyodide/cf_seams.py", ["trigger_do", "tests/pyodide"])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "pyodide sdk seams ok (12 checks)" in proc.stdout, output
