"""`GET /metrics` on a real server (uvicorn, 2 worker processes, a real SQLite file) during
a small load: the counters the processes kept match the runs table, never go down (not
while runs finish, not when retention purges every row), and the gauges read at scrape time
match the runs table and the coordinators."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tests.observe.observe_tasks  # noqa: F401  (the server validates payloads)
from tests import readme
from tests.http.conftest import ServerThread, free_port
from trigger_do.api.app import create_app
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.shared.config import EngineConfig

ROOT = Path(__file__).resolve().parents[2]
KEY = "tr_dev_TestKeyForTheMetricsRoute0000001WithMore"
TASKS = ["tests.observe.observe_tasks"]
COUNTERS = ("triggered", "started", "completed", "failed", "retried", "crashed", "dead_lettered")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Api:
    def __init__(self, url: str, db: Path, runtime: LocalRuntime) -> None:
        self.url, self.db, self.runtime = url, db, runtime
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {KEY}"})

    def trigger(self, task: str, payload: dict[str, Any]) -> str:
        r = self.http.post(f"/api/v1/tasks/{task}/trigger", json={"payload": payload})
        assert r.status_code == 200, r.text
        return str(r.json()["id"])

    def batch(self, task: str, payloads: list[dict[str, Any]]) -> None:
        items = [{"task": task, "payload": p} for p in payloads]
        r = self.http.post("/api/v2/tasks/batch", json={"items": items})
        assert r.status_code == 200, r.text

    def scrape(self) -> Samples:
        r = self.http.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text)
            for s in family.samples
        }

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return list(conn.execute(sql, params))
        finally:
            conn.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    db = tmp_path / "m.db"
    runtime = LocalRuntime(TASKS, db, workers=2, poll_interval=0.01, max_retries=1)
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    try:
        yield Api(f"http://127.0.0.1:{port}", db, runtime)
    finally:
        thread.stop()


def counter(samples: Samples, event: str, task: str) -> float:
    return samples.get((f"trigger_do_runs_{event}_total", (("task", task),)), 0.0)


def gauge(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def all_counters(samples: Samples) -> dict[tuple[str, Any], float]:
    return {k: v for k, v in samples.items() if k[0].endswith(("_total", "_count", "_sum"))}


def wait_until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_counters_and_gauges_against_the_runs_table(api: Api) -> None:
    # gauges first, on a still state: a paused queue holds its runs queued
    assert api.http.post(
        "/api/v1/queues/task%252Fobs-limited/pause", json={"action": "pause"}
    ).is_success
    for org in ("a", "a", "a", "b"):
        api.trigger("obs-limited", {"org": org})
    wait_until(lambda: api.rows("SELECT count(*) FROM runs WHERE state = 'queued'")[0][0] == 4)

    def parked(samples: Samples) -> float:  # the coordinator's parked runs, by key
        return sum(v for (name, _), v in samples.items() if name == "trigger_do_parked_runs")

    wait_until(lambda: parked(api.scrape()) == 4)  # the workers have parked them
    time.sleep(0.2)
    seen = api.scrape()
    queued = api.rows("SELECT count(*), min(created_at) FROM runs WHERE state = 'queued'")
    assert gauge(seen, "trigger_do_queue_depth", queue="task/obs-limited") == queued[0][0] == 4
    assert gauge(seen, "trigger_do_queue_paused", queue="task/obs-limited") == 1
    age = gauge(seen, "trigger_do_queue_oldest_age_seconds", queue="task/obs-limited")
    assert age is not None and 0.2 <= age < time.time() - queued[0][1] + 1
    assert parked(seen) == 4
    assert gauge(seen, "trigger_do_workers_alive") == 2
    assert api.http.post(
        "/api/v1/queues/task%252Fobs-limited/pause", json={"action": "resume"}
    ).is_success

    # a small load, scraped while it runs: counters only ever grow (one run of it lasts
    # 0.5 s, so that the load outlasts a few scrapes however fast the rest goes)
    api.batch("obs-ok", [{"sleep": 0.002}] * 149 + [{"sleep": 0.5}])
    api.batch("obs-flaky", [{}] * 10)
    api.batch("obs-fail", [{}] * 5)
    api.batch("obs-limited", [{"org": "c"}] * 4)
    before = all_counters(api.scrape())
    scrapes = 1

    def finished() -> bool:
        nonlocal before, scrapes
        now = all_counters(api.scrape())
        assert all(now.get(k, 0) >= v for k, v in before.items()), "a counter went down"
        before, scrapes = now, scrapes + 1
        return not api.rows("SELECT count(*) FROM runs WHERE finished_at IS NULL")[0][0]

    wait_until(finished)
    assert scrapes >= 3  # it was scraped during the load
    # then a run that kills its worker on every delivery (alone: the runs a dying worker
    # was running lose a delivery too): dead-lettered, CRASHED
    poison = api.trigger("obs-poison", {})
    wait_until(finished)

    # every counter against the runs table (and the dead letters)
    final = api.scrape()
    by_task: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for task, state, attempt, started in api.rows(
        "SELECT task, state, attempt, started_at FROM runs"
    ):
        row = by_task[task]
        row["triggered"] += 1
        row["started"] += started is not None
        row["completed"] += state == "completed"
        row["failed"] += state in ("failed", "timed_out")
        row["crashed"] += state == "crashed"
        row["retried"] += max(0, attempt - 1) if state == "completed" else 0
    for (task,) in api.rows("SELECT task FROM dead_letters"):
        by_task[task]["dead_lettered"] += 1
    assert by_task["obs-ok"]["completed"] == 150 and by_task["obs-flaky"]["retried"] == 10
    assert by_task["obs-poison"]["crashed"] == 1 == by_task["obs-poison"]["dead_lettered"]
    assert api.rows("SELECT state FROM runs WHERE id = ?", poison) == [("crashed",)]
    dead = api.http.get("/api/v1/deadLetters").json()["data"]  # as the MCP tools read them
    assert [(d["runId"], d["taskIdentifier"], d["reason"]) for d in dead] == [
        (poison, "obs-poison", "max deliveries exceeded")
    ]
    for task, expected in by_task.items():
        for event in COUNTERS:
            assert counter(final, event, task) == expected[event], (task, event)
        histogram = "trigger_do_run_trigger_to_start_seconds_count"
        assert final[(histogram, (("task", task),))] == expected["started"], task
        ended = expected["completed"] + expected["failed"]
        assert final.get(("trigger_do_run_duration_seconds_count", (("task", task),)), 0) == ended
    inf = ("trigger_do_run_duration_seconds_bucket", (("le", "+Inf"), ("task", "obs-ok")))
    assert final[inf] == 150, api.http.get("/metrics").text

    # the README's table names every metric served, and only those
    text = api.http.get("/metrics").text
    served = {f.name for f in text_string_to_metric_families(text)}
    section = readme.README.read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    listed = {
        m.removesuffix("_total") for m in re.findall(r"^\| `(trigger_do_\w+)`", section, re.M)
    }
    assert served == listed

    # retention purges every row: the counters stay as they were
    assert api.rows("SELECT count(*) FROM runs")[0][0] == 150 + 10 + 5 + 4 + 4 + 1
    platform, _ = open_local(api.db)
    purger = Engine(platform, EngineConfig(retention=0.0))
    time.sleep(0.01)
    totals = asyncio.run(purger.housekeeping())
    assert totals["purged"] == 150 + 10 + 5 + 4 + 4 + 1
    assert api.rows("SELECT count(*) FROM runs")[0][0] == 0
    after = api.scrape()
    assert all_counters(after) == all_counters(final)


def test_metrics_need_the_key_unless_public(api: Api, tmp_path: Path) -> None:
    assert httpx.get(f"{api.url}/metrics").status_code == 401
    assert httpx.get(f"{api.url}/metrics/").status_code in (401, 404)
    engine = api.runtime.engine
    port = free_port()
    public = ServerThread(create_app(engine, KEY, metrics_public=True), port)
    public.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "trigger_do_workers_alive 2.0" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/runs").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/mcp").status_code == 401  # still guarded
    finally:
        public.stop()


async def test_metrics_off_counts_nothing(tmp_path: Path) -> None:
    from trigger_do.platform.local.platform import EnvSettings
    from trigger_do.ports import NO_METER
    from trigger_do.producer.producer import TriggerRequest

    platform, _ = open_local(
        tmp_path / "off.db", settings=EnvSettings({"TRIGGER_DO_METRICS": "off"})
    )
    assert platform.meter is NO_METER
    await Engine(platform).trigger(TriggerRequest("obs-ok", {}, {}))
    assert not (tmp_path / "off.metrics").exists()
    on, _ = open_local(tmp_path / "on.db")
    await Engine(on).trigger(TriggerRequest("obs-ok", {}, {}))
    assert [p.name for p in (tmp_path / "on.metrics").iterdir()] == [f"counter_{os.getpid()}.db"]


COUNT_IN_A_PROCESS = """
import sys
from pathlib import Path
from trigger_do.platform.local.meter import FileMeter
m = FileMeter(Path(sys.argv[1]))
m.count("triggered", "t", 2)
m.observe("duration", "t", 0.3)
"""


def test_the_files_of_gone_processes_are_folded_and_nothing_is_lost(tmp_path: Path) -> None:
    import subprocess
    import sys

    from trigger_do.platform.local.meter import FileMeter

    folder = tmp_path / "m.metrics"
    mine = FileMeter(folder)
    mine.count("triggered", "t", 1)

    def totals() -> tuple[float, float]:
        fams = {f.name: f for f in mine.collect()}
        triggered = sum(s.value for s in fams["trigger_do_runs_triggered"].samples)
        count = next(
            s.value
            for s in fams["trigger_do_run_duration_seconds"].samples
            if s.name.endswith("_count")
        )
        return triggered, count

    def processes(n: int) -> None:
        for _ in range(n):
            cmd = [sys.executable, "-c", COUNT_IN_A_PROCESS, str(folder)]
            subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    processes(3)
    assert len(list(folder.glob("*.db"))) == 1 + 3 * 2  # mine, and 2 files per process
    # a file a process is creating this instant (empty), and one a process died creating
    (folder / f"counter_{os.getppid()}.db").touch()
    (folder / "counter_4194999.db").touch()  # above any pid_max: no such process
    assert totals() == (1 + 3 * 2, 3)
    assert sorted(f.name for f in folder.glob("*.db")) == sorted(
        [
            "counter_merged.db",
            "histogram_merged.db",
            f"counter_{os.getpid()}.db",
            f"counter_{os.getppid()}.db",
        ]
    )  # the gone processes' files folded into one per kind; this (live) process's kept
    processes(2)
    mine.count("triggered", "t", 1)
    assert totals() == (2 + 5 * 2, 5)
    assert totals() == (2 + 5 * 2, 5)  # folding twice adds nothing
    fams = {f.name: f for f in mine.collect()}
    buckets = {
        s.labels["le"]: s.value
        for s in fams["trigger_do_run_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert (buckets["0.25"], buckets["0.5"], buckets["+Inf"]) == (0, 5, 5)  # still cumulative


FULL_DISK = """
import os, subprocess, sys
from pathlib import Path
from trigger_do.platform.local.meter import FileMeter
mount = Path(sys.argv[1])
mount.mkdir(parents=True, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
meter = FileMeter(mount / "m.metrics")
meter.count("triggered", "first")
meter.flush()  # its file is written
with open(mount / "filler", "wb", buffering=0) as filler:  # the disk full to the last block
    try:
        while True:
            filler.write(b"\\0" * 4096)
    except OSError:
        pass
for i in range(2000):  # new keys: the file must grow, on a full disk
    meter.count("triggered", f"task-{i}")
meter.flush()
other = FileMeter(mount / "other.metrics")  # a file created on the full disk
other.count("triggered", "first")
other.flush()
print("alive", other._broken, flush=True)
print("alive", meter._broken, flush=True)
"""


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root")
def test_a_full_disk_turns_metrics_off_and_never_kills_the_process(tmp_path: Path) -> None:
    """prometheus-client writes through a memory map; on a full disk an unallocated page
    would kill the process (SIGBUS). The meter allocates first: an OSError, metrics off."""
    done = subprocess.run(
        ["unshare", "-m", sys.executable, "-c", FULL_DISK, str(tmp_path / "mnt")],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["alive", "True", "alive", "True"]
    assert "metrics off in this process" in done.stderr
