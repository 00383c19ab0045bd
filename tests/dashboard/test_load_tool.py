"""`python -m load.dashboard` runs end to end on a small database (figures are not judged:
they belong to load/, not to tests)."""

from __future__ import annotations

import pytest

from load.dashboard import main


def test_the_dashboard_timing_tool_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "120", "--requests", "2"]) == 0
    out = capsys.readouterr().out
    assert "seeded 120 runs" in out
    for page in ("runs list", "run (live fragment)", "queues"):
        assert page in out
