"""`trigger-do dev`: a bad tasks module is reported before the port is looked at, and the
workers restart when (and only when) a module the tasks import changes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.test_cli import cli, one_line_error

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}


@pytest.mark.parametrize(
    ("module", "source", "words"),
    [
        ("no.such.module", None, ["cannot import tasks module 'no.such.module'"]),
        ("broken", "raise RuntimeError('half written')\n", ["'broken'", "half written"]),
    ],
)
def test_a_bad_tasks_module_is_reported_before_a_port_in_use(
    tmp_path: Path, module: str, source: str | None, words: list[str]
) -> None:
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        result = cli("dev", "--tasks", module, "--port", port, cwd=tmp_path)
    one_line_error(result, *words)
    assert "in use" not in result.stderr and port not in result.stderr
    assert not (tmp_path / ".trigger-do").exists()  # nothing started, nothing written


TASKS = """
from trigger_do import task

from helper import GREETING


@task(id="hello")
async def hello(payload: dict) -> str:
    return GREETING
"""


class Dev:
    def __init__(self, cwd: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = str(s.getsockname()[1])
        self.proc = subprocess.Popen(
            ["trigger-do", "dev", "--tasks", "tasks", "--db", "data/t.db", "--port", port],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        out = self.proc.stdout
        assert out is not None
        reader = threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")))
        reader.daemon = True
        reader.start()

    def wait_for(self, text: str, timeout: float = 30, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if text in line:
                    return line
            assert self.proc.poll() is None, "".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in:\n{''.join(self.lines)}")


def test_dev_restarts_workers_only_when_an_imported_module_changes(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text('GREETING = "hi"\n')
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "unrelated.py").write_text("X = 1\n")
    dev = Dev(tmp_path)
    try:
        dev.wait_for("API on")
        deadline = time.monotonic() + 30
        while True:  # until the workers registered the task
            done = cli(
                "trigger", "hello", "--payload", "{}", "--db", "data/t.db", "--wait", cwd=tmp_path
            )
            if done.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.returncode == 0 and json.loads(done.stdout) == "hi", done.stderr

        # a database file, an unrelated module, a new file: no restart
        time.sleep(0.5)
        (tmp_path / "unrelated.py").write_text("X = 2\n")
        (tmp_path / "scratch.py").write_text("Y = 1\n")
        (tmp_path / "notes.db-wal").write_bytes(b"\0" * 1024)
        (tmp_path / "data" / "notes.txt").write_text("x")
        time.sleep(3)  # longer than the watcher's debounce (1.6 s)
        assert not any("changed" in line for line in dev.lines), "".join(dev.lines)

        watching = dev.wait_for("watching")
        assert "helper.py" in watching and "tasks.py" in watching
        assert "unrelated.py" not in watching
        hello = next(line for line in dev.lines if line.split()[:2] == ["hello", "task/hello"])
        assert hello.split() == ["hello", "task/hello", "-"]

        # a half-written module: the workers keep the previous code
        seen = len(dev.lines)
        (tmp_path / "helper.py").write_text("GREETING = (\n")
        kept = dev.wait_for("keep the previous code", start=seen)
        assert "helper.py changed" in kept and "SyntaxError" in kept
        assert not any("restarting" in line for line in dev.lines)

        # the helper the tasks import changes: the workers restart with the new code
        seen = len(dev.lines)
        (tmp_path / "helper.py").write_text('GREETING = "hi again"\n')
        assert "helper.py" in dev.wait_for("restarting workers", start=seen)
        dev.wait_for("watching", start=seen)
        deadline = time.monotonic() + 30
        while True:  # the old workers finish their turn while the new ones start
            done = cli(
                "trigger", "hello", "--payload", "{}", "--db", "data/t.db", "--wait", cwd=tmp_path
            )
            assert done.returncode == 0, done.stderr
            if json.loads(done.stdout) == "hi again" or time.monotonic() > deadline:
                break
        assert json.loads(done.stdout) == "hi again"
    finally:
        dev.proc.terminate()
        dev.proc.wait(timeout=60)
    assert dev.proc.returncode == 0, "".join(dev.lines)
