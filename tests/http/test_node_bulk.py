"""The official Trigger.dev client's bulk actions (`runs.bulk.cancel/replay/poll/retrieve/list/
abort`, npm `@trigger.dev/sdk@4`) against `trigger-do dev` on a real socket:
tests/node_client/bulk.mjs makes the calls and asserts on what the client returns (the client
validates each response with its own schemas). The server is started as
tests/http/test_node_client.py starts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "node_client"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node 20 and npm"),
]


def _npm_install() -> None:
    if (FIXTURE / "node_modules" / "@trigger.dev" / "sdk").exists():
        return
    cmd = ["npm", "ci" if (FIXTURE / "package-lock.json").exists() else "install"]
    subprocess.run([*cmd, "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, timeout=480)


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`trigger-do dev` in a fresh directory; its key is the one it generated."""
    port = free_port()
    db = tmp_path / "data" / "t.db"
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    (tmp_path / "node_tasks.py").write_text(
        "from examples.tasks import *  # noqa\nfrom tests.http.tasks_http import *  # noqa\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trigger_do.cli",
            "dev",
            "--tasks",
            "node_tasks",
            "--port",
            str(port),
            "--db",
            str(db),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"trigger-do dev exited: {proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("trigger-do dev did not answer /healthz within 60 s")
            time.sleep(0.1)
        key = (db.parent / "secret-key").read_text().strip()
        yield url, key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_official_client_bulk_actions(dev_server: tuple[str, str]) -> None:
    _npm_install()
    url, key = dev_server
    env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key}
    done = subprocess.run(
        ["node", "bulk.mjs"], cwd=FIXTURE, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["cancel"] == {"total": 250, "success": 250, "failure": 0}
    assert report["replay"] == {"total": 11, "success": 10, "failure": 1}
    assert report["listed"] == 2
    assert report["errors"] == "ok"
    assert report["listByBulkAction"] == 10  # runs.list({bulkAction}): the replays it made
