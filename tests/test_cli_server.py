"""The CLI against a running `trigger-do dev --db data/t.db` (real processes, a free port):
child runs stay in the server's database, payloads are validated before anything is
written, one JSON shape for a run, `runs logs --follow` ends with the final status, and
the same commands through the HTTP API with `--target`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
KEY = "tr_dev_CliServerTestKey000000001"

TASKS = """
from pydantic import BaseModel

from trigger_do import RunContext, task


class Email(BaseModel):
    to: str
    subject: str


@task(id="send", concurrency={"limit": 2}, rate_limit={"limit": 10, "period": "1m"})
async def send(payload: Email, ctx: RunContext) -> dict:
    ctx.logger.info("sending", to=payload.to)
    await ctx.checkpoint("sent", {"to": payload.to})
    return {"sent": payload.to}


@task(id="child")
async def child(payload: dict) -> int:
    return payload["n"] * 2


@task(id="parent")
async def parent(payload: dict) -> int:
    return await child.trigger_and_wait({"n": payload["n"]}, timeout=30) + 1


@task(id="sync-parent")
def sync_parent(payload: dict) -> str:  # a sync task cannot wait for its child: it triggers
    return child.trigger_sync({"n": payload["n"]}).id


@task(id="boom", retry={"max_attempts": 1})
async def boom(payload: dict, ctx: RunContext) -> None:
    ctx.logger.warn("about to fail")
    raise ValueError("it broke")
"""


@dataclass
class Server:
    cwd: Path
    url: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["trigger-do", *args],
            cwd=self.cwd,
            env={**ENV, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def db(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, "--db", "data/t.db", timeout=timeout)

    def remote(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, "--target", self.url, timeout=timeout, TRIGGER_SECRET_KEY=KEY)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _registered(db: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return bool(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
    except sqlite3.Error:
        return False


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("cli-server")
    (cwd / "clitasks.py").write_text(TASKS)
    port = free_port()
    proc = subprocess.Popen(
        ["trigger-do", "dev", "--tasks", "clitasks", "--db", "data/t.db", "--port", str(port)],
        cwd=cwd,
        env={**ENV, "TRIGGER_SECRET_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    srv = Server(cwd, f"http://127.0.0.1:{port}", proc)
    assert proc.stdout is not None
    out = proc.stdout
    threading.Thread(target=lambda: srv.lines.extend(iter(out.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 60
    while not (_registered(cwd / "data" / "t.db") and _healthy(srv.url)):  # workers and API
        assert proc.poll() is None and time.monotonic() < deadline, "".join(srv.lines)
        time.sleep(0.1)
    try:
        yield srv
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_dev_prints_its_tasks_and_what_it_watches(server: Server) -> None:
    deadline = time.monotonic() + 10
    while not any("watching" in line for line in server.lines) and time.monotonic() < deadline:
        time.sleep(0.1)
    out = "".join(server.lines)
    header = next(line for line in server.lines if "schedule" in line)
    assert header.split() == ["task", "queue", "limits", "schedule"]
    send = next(line for line in server.lines if line.split()[:2] == ["send", "task/send"])
    assert "concurrency 2" in send and "rate 10 per 1m" in send
    child = next(line for line in server.lines if line.split()[:1] == ["child"])
    assert child.split() == ["child", "task/child", "-"]  # no limits, no schedule yet
    watching = next(line for line in server.lines if "watching" in line)
    assert "1 file(s)" in watching and "clitasks.py" in watching, out


@pytest.mark.parametrize("parent", ["parent", "sync-parent"])
def test_a_child_run_goes_to_the_servers_database(server: Server, parent: str) -> None:
    done = server.db("trigger", parent, "--payload", '{"n": 4}', "--wait", timeout=90)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == 9 if parent == "parent" else str(out).startswith("run_")
    assert not (server.cwd / ".trigger-do").exists()  # nothing went to the default database
    children = json.loads(server.db("runs", "list", "--task", "child", "--json").stdout)
    assert {"n": 4} in [r["payload"] for r in children]


def _count(server: Server) -> int:
    return len(json.loads(server.db("runs", "list", "--limit", "1000", "--json").stdout))


@pytest.mark.parametrize("where", ["db", "remote"])
def test_trigger_validates_the_payload_first(server: Server, where: str) -> None:
    before = _count(server)
    run = server.db if where == "db" else server.remote
    for payload, field_name in (
        ('{"to": "a@b.c"}', "subject"),
        ('{"to": 5, "subject": "Hi"}', "to"),
    ):
        bad = run("trigger", "send", payload)
        assert bad.returncode == 2, bad.stdout + bad.stderr
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("trigger-do: "), bad.stderr
        assert field_name in lines[0] and "send" in lines[0]
        assert "http" not in lines[0] and "pydantic" not in lines[0]
    assert _count(server) == before  # nothing was written
    good = run("trigger", "send", '{"to": "a@b.c", "subject": "Hi"}')
    assert good.returncode == 0 and good.stdout.startswith("run_"), good.stderr


def test_one_json_shape_for_a_run(server: Server) -> None:
    """`runs show --json`, a `runs list --json` item, the HTTP API's run and the same two
    commands through `--target`: the same object (the API's `GET /api/v3/runs/ID`)."""
    import httpx

    done = server.db("trigger", "send", '{"to": "x@y.z", "subject": "Hi"}', "--wait")
    assert done.returncode == 0, done.stderr
    run_id = done.stderr.strip().splitlines()[0]
    shown = json.loads(server.db("runs", "show", run_id, "--json").stdout)
    listed = json.loads(server.db("runs", "list", "--task", "send", "--json").stdout)
    item = next(r for r in listed if r["id"] == run_id)
    api = httpx.get(
        f"{server.url}/api/v3/runs/{run_id}", headers={"Authorization": f"Bearer {KEY}"}
    ).json()
    remote_shown = json.loads(server.remote("runs", "show", run_id, "--json").stdout)
    remote_listed = json.loads(server.remote("runs", "list", "--task", "send", "--json").stdout)
    remote_item = next(r for r in remote_listed if r["id"] == run_id)
    assert shown == item == api == remote_shown == remote_item
    assert shown["payload"] == {"to": "x@y.z", "subject": "Hi"}  # values, not JSON strings
    assert shown["output"] == {"sent": "x@y.z"}
    assert shown["status"] == "COMPLETED" and shown["taskIdentifier"] == "send"
    assert [c["name"] for c in shown["triggerDo"]["checkpoints"]] == ["sent"]
    human = server.db("runs", "show", run_id)
    assert human.returncode == 0 and "COMPLETED" in human.stdout and "x@y.z" in human.stdout
    table = server.db("runs", "list", "--status", "completed")
    assert run_id in table.stdout and "COMPLETED" in table.stdout


@pytest.mark.parametrize("where", ["db", "remote"])
def test_logs_follow_ends_with_the_final_status(server: Server, where: str) -> None:
    run = server.db if where == "db" else server.remote
    ok = run("trigger", "send", '{"to": "f@g.h", "subject": "Hi"}').stdout.strip()
    followed = run("runs", "logs", ok, "--follow")
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.strip().splitlines()
    assert "sending" in lines[0] and "to=f@g.h" in lines[0]
    assert lines[-1] == f"run {ok} COMPLETED after 1 attempt(s)"

    failed = run("trigger", "boom", "{}").stdout.strip()
    followed = run("runs", "logs", failed, "--follow")
    assert followed.returncode == 1, followed.stderr
    lines = followed.stdout.strip().splitlines()
    assert "about to fail" in lines[0]
    assert lines[-1] == f"run {failed} FAILED after 1 attempt(s): ValueError: it broke"


def test_cancel_through_either_side(server: Server) -> None:
    later = server.db("trigger", "child", '{"n": 1}', "--delay", "1h").stdout.strip()
    canceled = server.remote("runs", "cancel", later)
    assert canceled.returncode == 0 and "canceled" in canceled.stdout, canceled.stderr
    again = server.db("runs", "cancel", later)
    assert again.returncode == 1 and "CANCELED" in again.stdout, again.stderr
