"""The official Trigger.dev client (npm `@trigger.dev/sdk@4`) against `trigger-do dev` on a
real socket: tests/node_client/client.mjs makes every call and asserts on what the client
returns (the client validates each response with its own schemas)."""

from __future__ import annotations

import json
import os
import re
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

# Every client call client.mjs makes, which the README's "Supported calls" list names.
CALLS = {
    "tasks.trigger",
    "tasks.batchTrigger",
    "batch.trigger",
    "batch.retrieve",
    "runs.retrieve",
    "runs.list",
    "runs.cancel",
    "runs.replay",
    "runs.reschedule",
    "queues.list",
    "queues.retrieve",
    "queues.pause",
    "queues.resume",
    "queues.overrideConcurrencyLimit",
    "queues.resetConcurrencyLimit",
    "idempotencyKeys.create",
    "idempotencyKeys.reset",
    "auth.createPublicToken",
    "auth.createTriggerPublicToken",
    "auth.createBatchTriggerPublicToken",
}
# Realtime: the calls tests/node_client/realtime.mjs makes (README "Supported calls" too)
REALTIME_CALLS = {"runs.subscribeToRun", "runs.subscribeToRunsWithTag", "runs.subscribeToBatch"}
NAMESPACES = "tasks|batch|runs|queues|idempotencyKeys|auth"


def readme_calls() -> set[str]:
    """The calls the README's "Supported calls" list names."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use the official Trigger.dev client", 1)[1].split("\n## ", 1)[0]
    rest = section.split("Supported calls", 1)[1]
    bullets = rest[rest.index("\n- ") :].split("\n\n", 1)[0]
    return set(re.findall(rf"`((?:{NAMESPACES})\.\w+)`", bullets))


def test_readme_lists_exactly_the_calls_the_test_makes() -> None:
    assert readme_calls() == CALLS | REALTIME_CALLS


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
        assert key.startswith("tr_dev_") and len(key) == 39 and not key.startswith("tr_dev_sk_")
        yield url, key
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_official_client_against_trigger_do_dev(dev_server: tuple[str, str]) -> None:
    _npm_install()
    url, key = dev_server
    env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key}
    done = subprocess.run(
        ["node", "client.mjs"], cwd=FIXTURE, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["trigger"] == {"sum": 5}
    assert report["batchTrigger"] == [{"sum": 2}, {"sum": 4}]
    assert report["list"] == 5
    assert report["largePayload"] == 200 * 1024
    assert report["nulls"] == [None, None]
    assert report["idempotencyReset"] is True
    assert report["queues"] >= 2 and report["listByQueue"] == 1
    assert report["publicTokens"] is True
    assert set(report["calls"]) == CALLS


def test_official_client_gets_401_with_a_wrong_key(dev_server: tuple[str, str]) -> None:
    _npm_install()
    url, _ = dev_server
    script = (
        'import { configure, tasks } from "@trigger.dev/sdk";'
        "configure({ baseURL: process.env.TRIGGER_API_URL, accessToken: 'tr_dev_wrong' });"
        "try { await tasks.trigger('add', {a: 1, b: 2}); console.log('no error'); }"
        "catch (e) { console.log(JSON.stringify({status: e.status, message: e.message})); }"
    )
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=FIXTURE,
        env={**ENV, "TRIGGER_API_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["status"] == 401 and "invalid secret key" in out["message"]


def test_official_client_realtime_subscriptions(dev_server: tuple[str, str]) -> None:
    """`runs.subscribeToRun` (until the run completes, seeing each status and metadata
    change), `subscribeToRunsWithTag` and `subscribeToBatch` (stopped by the script)."""
    _npm_install()
    url, key = dev_server
    env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key}
    done = subprocess.run(
        ["node", "realtime.mjs"], cwd=FIXTURE, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["subscribeToRun"]["steps"] == [0, 1, 2]
    assert report["subscribeToRun"]["statuses"][-1] == "COMPLETED"
    assert report["subscribeToRunsWithTag"] == 3
    assert report["subscribeToBatch"] == [3, 7, 11]
    assert report["scopedBatch"] == report["scopedTag"] == 3  # with public access tokens
    assert report["offloaded"] == 600 * 1024  # a payload and output read from their packets
    assert set(report["calls"]) == REALTIME_CALLS


def test_readme_realtime_example(dev_server: tuple[str, str]) -> None:
    """The README's official-client Realtime example, as written."""
    _npm_install()
    url, key = dev_server
    [block] = [b for kind, b in readme_blocks() if kind == "js realtime"]
    script = FIXTURE / f"readme-realtime-{os.getpid()}.mjs"  # beside node_modules
    script.write_text(block)
    try:
        env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key}
        done = subprocess.run(
            ["node", script.name], cwd=FIXTURE, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        script.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "COMPLETED { sum: 5 }", lines


def readme_blocks() -> list[tuple[str, str]]:
    """`(fence info, body)` of every fenced block of the README."""
    found = re.findall(r"^```([^\n]*)\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    return [(info.strip(), body) for info, body in found]
