"""The official Trigger.dev client's schedules (`schedules.create/list/retrieve/update/
activate/deactivate/del/timezones`, npm `@trigger.dev/sdk@4`) against `trigger-do dev` on a
real socket: tests/node_client/schedules.mjs makes the calls and asserts on what the client
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
from trigger_do.platform.local.database import LocalSql
from trigger_do.schedules.scheduler import SchedulerObject

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "node_client"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
CALLS = {
    "schedules.create",
    "schedules.list",
    "schedules.retrieve",
    "schedules.update",
    "schedules.activate",
    "schedules.deactivate",
    "schedules.del",
    "schedules.timezones",
}

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
def dev_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`trigger-do dev` in a fresh directory serving the schedules' test tasks."""
    port = free_port()
    db = tmp_path / "data" / "t.db"
    (tmp_path / "node_sched_tasks.py").write_text("from tests.schedules.tasks_sched import *\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trigger_do.cli", "dev", "--tasks", "node_sched_tasks",
         "--port", str(port), "--db", str(db), "--workers", "1"],
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
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
            assert time.monotonic() < deadline, "trigger-do dev did not answer /healthz"
            time.sleep(0.1)
        yield url, (db.parent / "secret-key").read_text().strip(), db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _scheduled_run(url: str, key: str, db: Path) -> tuple[str, str]:
    """A schedule, made due now (as after downtime), and the run it started."""
    headers = {"Authorization": f"Bearer {key}"}
    body = {"task": "sched-report", "cron": "*/5 * * * *", "deduplicationKey": "node-run"}
    sched = httpx.post(f"{url}/api/v1/schedules", json=body, headers=headers).json()["id"]
    sql = LocalSql(db)
    try:

        def due_now() -> None:
            sql.exec(
                "UPDATE schedules SET next_at = ? WHERE id = ?", float(int(time.time())), sched
            )
            SchedulerObject(sql, SchedulerObject.NAME)._rearm()

        sql.transaction(due_now)
    finally:
        sql.close()
    deadline = time.monotonic() + 30
    while True:
        got = httpx.get(f"{url}/api/v1/runs", params={"filter[schedule]": sched}, headers=headers)
        if got.json()["data"]:
            return sched, str(got.json()["data"][0]["id"])
        assert time.monotonic() < deadline, "the schedule did not fire"
        time.sleep(0.1)


def test_official_client_schedules(dev_server: tuple[str, str, Path]) -> None:
    _npm_install()
    url, key, db = dev_server
    sched, run = _scheduled_run(url, key, db)
    env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key,
           "SCHEDULE_ID": sched, "SCHEDULED_RUN": run}  # fmt: skip
    done = subprocess.run(
        ["node", "schedules.mjs"], cwd=FIXTURE, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert set(report["calls"]) == CALLS


def test_readme_lists_the_schedules_calls() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Scheduled tasks", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(schedules\.\w+)`", section)) >= CALLS
