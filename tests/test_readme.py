"""The README's examples, run as a user would run them: in a fresh directory, in fresh
processes, against real worker processes and a real database file."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import readme

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}


def _run(
    args: list[str], cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env={**ENV, **env}, capture_output=True, text=True, timeout=timeout
    )


def test_readme_first_lines_are_the_two_commands() -> None:
    first = readme.blocks("bash")[0].splitlines()
    assert first[0].startswith("pip install -e . && trigger-do demo")
    assert "python -m pytest" in first[1]
    ci = (readme.README.parent / ".ci" / "run").read_text()
    assert "python -m pytest -q" in ci and "pip install" in ci


def test_quick_start_examples_run(tmp_path: Path) -> None:
    """Each `# app.py` block, as written, as a script run with `python app.py` in the folder
    where `trigger-do dev --tasks tasks` runs (as the Quick start says)."""
    (tmp_path / "tasks.py").write_text(readme.tasks_module())
    scripts = readme.app_scripts()
    assert len(scripts) >= 4
    server = _dev(tmp_path)
    try:
        outputs = []
        for script in scripts:
            (tmp_path / "app.py").write_text(script)
            result = _run([sys.executable, "app.py"], tmp_path)
            assert result.returncode == 0, script + result.stdout + result.stderr
            outputs.append(result.stdout)
        assert "[info] sending" in outputs[0]  # the logs example printed the run's log line
        assert (tmp_path / "data" / "test.db").exists()  # the `local()` example's own database
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out


def test_dev_server_and_shell_commands(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(readme.tasks_module())
    _dev_command, trigger, runs_list, runs_logs = readme.shell_commands()
    server = _dev(tmp_path)
    try:
        done = _run(shlex.split(trigger), tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["message_id"].startswith("msg-")
        run_id = done.stderr.strip().splitlines()[0]

        listed = _run(shlex.split(runs_list), tmp_path)
        assert listed.returncode == 0 and run_id in listed.stdout

        logs = _run(shlex.split(runs_logs.replace("RUN_ID", run_id)), tmp_path, timeout=30)
        assert logs.returncode == 0 and "[info]" in logs.stdout and "sending" in logs.stdout

        failed = _run(
            ["trigger-do", "trigger", "resize-image", "--payload", "{}", "--wait"], tmp_path
        )
        assert failed.returncode == 1 and "KeyError" in failed.stderr
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dev(cwd: Path) -> subprocess.Popen[str]:
    """The README's `trigger-do dev --tasks tasks` (on a free port), once its workers have
    registered the tasks."""
    dev = readme.shell_commands()[0]
    server = subprocess.Popen(
        [*shlex.split(dev), "--port", str(_free_port())],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    db = cwd / ".trigger-do" / "trigger.db"
    deadline = time.monotonic() + 60
    while not (db.exists() and _registered(db)):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise AssertionError(server.communicate()[0])
        time.sleep(0.2)
    return server


def _registered(db: Path) -> bool:
    import sqlite3

    try:
        with sqlite3.connect(db) as conn:
            return bool(conn.execute("SELECT count(*) FROM tasks").fetchone()[0])
    except sqlite3.Error:
        return False


@pytest.mark.parametrize("argv", [["demo", "--batch", "200"]])
def test_demo_exits_zero(argv: list[str], tmp_path: Path) -> None:
    result = _run(["trigger-do", *argv], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every run ended as expected" in result.stdout


def test_mount_in_a_fastapi_app(tmp_path: Path) -> None:
    """The README's FastAPI example, served by uvicorn: a trigger through the mount prefix."""
    import httpx

    (tmp_path / "tasks.py").write_text(readme.tasks_module())
    (tmp_path / "main.py").write_text(readme.python_block("# main.py"))
    port = _free_port()
    env = {**ENV, "TRIGGER_SECRET_KEY": "tr_dev_readmeMountTest0000000"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/trigger/api/v1/tasks/send-email/trigger"
        headers = {"Authorization": f"Bearer {env['TRIGGER_SECRET_KEY']}"}
        body = {"payload": {"to": "a@b.c", "subject": "Hi", "body": "..."}}
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(url, json=body, headers=headers, timeout=10)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        run_id = r.json()["id"]
        bad = httpx.post(url, json={"payload": {"to": "a@b.c"}}, headers=headers, timeout=10)
        assert bad.status_code == 422 and "subject" in bad.json()["error"]
    finally:
        server.terminate()
        server.communicate(timeout=30)
    listed = _run(["trigger-do", "runs", "list", "--json"], tmp_path)
    assert run_id in listed.stdout  # written into the embedded database under the cwd
