"""A full disk, then a read-only one, get a clear 503 with `Retry-After` and lose nothing, on
a real tmpfs in a private mount namespace (`unshare -m`, as root; skipped where that is
impossible)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -m` (root) for a private tmpfs")
def test_a_full_disk_answers_503_with_retry_after_and_writes_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["unshare", "-m", sys.executable, str(Path(__file__).with_name("storage_server.py")),
         str(tmp_path / "mnt")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    statuses = [a[0] for a in report["answers"]]
    assert statuses[0] == 200  # before the disk filled
    refused = [a for a in report["answers"][1:] if a[0] != 200]
    assert refused, "the disk never filled"
    for status, retry_after, body in refused:
        assert status == 503 and retry_after is not None and int(retry_after) > 0, body
        assert "cannot be written" in body and "full" in body
    assert 500 not in statuses
    accepted = sum(1 for s in statuses[1:] if s == 200)
    assert report["after"] == report["before"] + accepted  # a 503 wrote nothing
    status, retry_after, body = report["ro"]  # a read-only file system
    assert status == 503 and retry_after is not None, body
    assert "cannot be written" in body
