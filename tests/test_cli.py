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


def make_db(path: Path) -> Path:
    """An empty trigger.do database, as a server would have created it."""
    from trigger_do.platform.local.platform import open_local

    open_local(path)[1].close()
    return path


def registered(db: Path, task_id: str, module: str) -> None:
    """Record `task_id` as served from `module`, as a worker does when it starts."""
    from trigger_do.platform.local.platform import open_local
    from trigger_do.runs.registry import RegistryObject

    _, sql = open_local(db)
    RegistryObject(sql, "registry").register(
        [{"id": task_id, "module": module, "queue": f"task/{task_id}"}], 0.0
    )
    sql.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once it is closed


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["trigger", "nope", "--payload", "{}"], ["unknown task 'nope'"]),
        (["trigger", "nope", "--payload", "{bad"], ["not valid JSON"]),
        (["trigger", "nope", "{bad"], ["not valid JSON"]),
        (["trigger", "nope", "{}", "--payload", "{}"], ["payload once"]),
        (["trigger", "mail", "{}", "--delay", "soon"], ["invalid duration 'soon'"]),
        (["trigger", "mail", "{}", "--timeout", "-1"], ["--timeout", "-1"]),
        (["runs", "show", "run_missing"], ["run_missing"]),
        (["runs", "logs", "run_missing", "--follow"], ["run_missing"]),
        (["runs", "cancel", "run_missing"], ["run_missing"]),
        (["runs", "list", "--status", "SLEEPING"], ["SLEEPING"]),
        (["runs", "list", "--limit", "0"], ["--limit", "'0'"]),
        (["runs", "list", "--no-such-flag"], ["--no-such-flag"]),
        (["runs", "frobnicate"], ["frobnicate"]),
        (["dlq", "requeue"], ["run id or --all"]),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], words: list[str]) -> None:
    db = make_db(tmp_path / "t.db")
    registered(db, "mail", "mailtasks")
    (tmp_path / "mailtasks.py").write_text(
        "from trigger_do import task\n\n@task(id='mail')\nasync def mail(p: dict) -> None: ...\n"
    )
    one_line_error(cli(*args, "--db", str(db), cwd=tmp_path), *words)


@pytest.mark.parametrize(
    "args",
    [
        ["trigger", "mail", "{}"],
        ["runs", "list"],
        ["runs", "list", "--json"],
        ["runs", "show", "run_x"],
        ["runs", "logs", "run_x"],
        ["runs", "cancel", "run_x"],
        ["dlq", "list"],
        ["dlq", "requeue", "--all"],
    ],
)
def test_no_database_here_is_an_error_that_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    result = cli(*args, cwd=tmp_path)
    one_line_error(result, "no trigger.do database", str(tmp_path), "--db", "TRIGGER_DO_DB")
    if args[0] != "dlq":  # the dead-letter commands work on a database only
        assert "--target" in result.stderr and "TRIGGER_API_URL" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no .trigger-do/, no database
    missing = tmp_path / "data" / "t.db"  # the same for a --db that does not exist
    one_line_error(cli(*args, "--db", str(missing), cwd=tmp_path), str(missing), "--db")
    assert list(tmp_path.iterdir()) == []


def test_not_a_database_and_unreachable_server(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    one_line_error(
        cli("runs", "list", "--db", str(tmp_path / "notes.txt"), cwd=tmp_path),
        "notes.txt",
        "not a trigger.do database",
    )
    url = f"http://127.0.0.1:{closed_port()}"
    for args in (["runs", "list"], ["runs", "show", "run_x"], ["trigger", "x", "{}"]):
        one_line_error(cli(*args, "--target", url, cwd=tmp_path), "cannot reach", url)
    one_line_error(cli("runs", "list", "--target", "ftp://x", cwd=tmp_path), "http(s) URL")
    assert list(tmp_path.iterdir()) == [tmp_path / "notes.txt"]


def test_init_twice_and_deploy_without_config(tmp_path: Path) -> None:
    first = cli("init", cwd=tmp_path)
    assert first.returncode == 0 and "wrangler.toml" in first.stdout, first.stderr
    one_line_error(cli("init", cwd=tmp_path), "wrangler.toml", "exists")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(cli("deploy", "--dry-run", cwd=empty), "no wrangler.toml", "init")
    (tmp_path / "wrangler.toml").write_text('name = "x"\n')
    one_line_error(cli("deploy", "--dry-run", cwd=tmp_path), "python_workers", "PACKETS")


def test_every_flag_and_subcommand_has_help(tmp_path: Path) -> None:
    import argparse

    from trigger_do.cli.parser import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing.extend(
                    f"{parser.prog} {name}" for name in action.choices if name not in helped
                )
                for child in action.choices.values():
                    walk(child)
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser())
    assert missing == []
    shown = cli("runs", "--help", cwd=tmp_path)
    assert shown.returncode == 0
    for name in ("list", "show", "logs", "cancel"):
        line = next(ln for ln in shown.stdout.splitlines() if ln.strip().startswith(name))
        assert len(line.split()) > 1, shown.stdout  # the subcommand, then its help


def test_unregistered_task_and_empty_dead_letters(tmp_path: Path) -> None:
    db = str(make_db(tmp_path / "t.db"))
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
