"""Two dev servers on one database (two processes, each with its own supervisor firing
timers and its own worker): every schedule fires exactly once per instant, and the
declarative schedules both register exist once.

Time is real here: to make instants due now, the test moves the schedules' next instants to
the present (as a scheduler back from downtime finds them), three times over."""

from __future__ import annotations

import os
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
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
SCHEDULES = 40
ROUNDS = 3

pytestmark = pytest.mark.timeout(300)


def _serve(db: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trigger_do.cli", "dev", "--tasks", "tests.schedules.tasks_sched",
         "--db", str(db), "--port", str(port), "--workers", "1"],
        env={**ENV, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    db = tmp_path / "data" / "t.db"
    first_port = free_port()
    procs = [_serve(db, first_port)]
    urls = [f"http://127.0.0.1:{first_port}"]
    try:
        _wait(procs[0], urls[0])  # the first creates the database and the key
        second_port = free_port()
        procs.append(_serve(db, second_port))
        urls.append(f"http://127.0.0.1:{second_port}")
        _wait(procs[1], urls[1])
        yield urls, db
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(proc: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"trigger-do dev exited: {proc.stdout.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "trigger-do dev did not start"
        time.sleep(0.1)


def test_two_dev_servers_fire_each_instant_once(two_servers: tuple[list[str], Path]) -> None:
    urls, db = two_servers
    key = (db.parent / "secret-key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    ids = []
    for i in range(SCHEDULES):  # created through either server
        # (a cron that never comes due by itself during the test: the test sets each instant)
        body = {"task": "sched-report", "cron": "0 0 1 1 *", "deduplicationKey": f"two-{i}"}
        r = httpx.post(f"{urls[i % 2]}/api/v1/schedules", json=body, headers=headers)
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    listed = httpx.get(f"{urls[1]}/api/v1/schedules?perPage=100", headers=headers).json()
    declarative = [s for s in listed["data"] if s["type"] == "DECLARATIVE"]
    assert len(declarative) == 4  # both servers' workers registered them: once each

    sql = LocalSql(db)
    instants = []
    try:
        for _ in range(ROUNDS):
            instant = float(int(time.time()))
            instants.append(instant)

            def due_now(instant: float = instant) -> None:
                sql.exec("UPDATE schedules SET next_at = ? WHERE type = 'IMPERATIVE'", instant)
                SchedulerObject(sql, SchedulerObject.NAME)._rearm()

            sql.transaction(due_now)  # both supervisors see them due at their next tick
            want = len(instants) * SCHEDULES
            deadline = time.monotonic() + 60
            while _count(sql, "state = 'completed'") < want:
                assert time.monotonic() < deadline, _count(sql, "1")
                time.sleep(0.1)
            time.sleep(1.1)  # the next round's instant is another second
        time.sleep(1.0)  # a late double would show up now
        assert _count(sql, "1") == ROUNDS * SCHEDULES
        rows = sql.exec(
            "SELECT options->>'$.schedule.id', json_extract(payload, '$.timestamp'), "
            "attempt FROM runs"
        )
        pairs = sorted((sid, ts) for sid, ts, _ in rows)
        assert len(set(pairs)) == len(pairs) == ROUNDS * SCHEDULES  # one run per instant
        assert {sid for sid, _ in pairs} == set(ids)
        assert {attempt for *_, attempt in rows} == {1}  # each ran once
        stamps = {time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t)) for t in instants}
        assert {ts for _, ts in pairs} == stamps
    finally:
        sql.close()


def _count(sql: LocalSql, where: str) -> int:
    return int(sql.exec(f"SELECT count(*) FROM runs WHERE {where}")[0][0])
