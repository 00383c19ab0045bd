"""The CLI's clear errors: one line, exit code 2; and its run commands."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["trigger-do", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trigger-do: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_bad_tasks_module(tmp_path: Path) -> None:
    one_line_error(cli("dev", "--tasks", "no.such.module", cwd=tmp_path), "no.such.module")


def test_port_in_use(tmp_path: Path) -> None:
    (tmp_path / "mytasks.py").write_text("from trigger_do import task\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        one_line_error(cli("serve", "--tasks", "mytasks", "--port", port, cwd=tmp_path), port)


def test_database_from_a_newer_schema(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    one_line_error(cli("runs", "list", "--db", str(db), cwd=tmp_path), "newer")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["trigger", "nope", "--payload", "{}"], ["unknown task 'nope'"]),
        (["trigger", "nope", "--payload", "{bad"], ["not valid JSON"]),
        (["runs", "show", "run_missing"], ["run_missing"]),
        (["runs", "list", "--status", "SLEEPING"], ["SLEEPING"]),
        (["dlq", "requeue"], ["run id or --all"]),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], words: list[str]) -> None:
    one_line_error(cli(*args, "--db", str(tmp_path / "t.db"), cwd=tmp_path), *words)


def test_unregistered_task_and_empty_dead_letters(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    trig = subprocess.run(
        ["trigger-do", "trigger", "send", "--payload", "{}", "--db", db],
        cwd=tmp_path,
        env={**ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert trig.returncode == 2 and "unknown task" in trig.stderr  # no worker registered it
    assert "no dead letters" in cli("dlq", "list", "--db", db, cwd=tmp_path).stdout
