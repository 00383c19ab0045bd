"""The write-ahead log deleted under a running `trigger-do dev`: the server notices within
a second, stops its workers and refuses every request with a 503 saying why, rather than
accepting runs into a file nobody will read."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from trigger_do.api.keys import load_or_create_key
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.processes import alive

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, key: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(
        url, data=json.dumps({"payload": {"a": 1, "b": 2}}).encode(), method="POST",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_vanished_wal_stops_the_server_accepting(tmp_path: Path) -> None:
    db, port = tmp_path / "t.db", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trigger_do.cli", "serve", "--tasks", "examples.tasks",
         "--db", str(db), "--port", str(port), "--workers", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/v1/tasks/add/trigger"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = post(url, load_or_create_key(db))
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.1)
        assert status == 200
        _, sql = open_local(db)
        workers = [int(r[0]) for r in sql.exec("SELECT pid FROM worker_sessions")]
        Path(f"{db}-wal").unlink()  # the operator's mistake
        time.sleep(1.0)
        status, body = post(url, load_or_create_key(db))
        assert status == 503 and "vanished" in str(body["error"]), body
        deadline = time.monotonic() + 30
        while any(alive(p) for p in workers):
            assert time.monotonic() < deadline, "the workers kept running"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
