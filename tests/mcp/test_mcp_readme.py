"""The README's "Use with an AI agent": its scripted session runs as written (the `mcp`
SDK's client driving `trigger-do mcp --tasks tasks` beside the README's `tasks.py`) and
prints what the README shows; its client configuration is valid JSON naming the command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests import readme

ROOT = Path(__file__).resolve().parents[2]


def _normal(line: str) -> str:
    line = re.sub(r"run_[0-9a-f]+(\.\.\.)?", "run_X", line)
    line = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "DATE", line)
    line = re.sub(r"\d+ ms\b", "N ms", line)
    return re.sub(r"msg-\d+", "msg-N", line).rstrip()


def _section() -> str:
    text = readme.README.read_text()
    return text.split("## Use with an AI agent", 1)[1].split("\n## ", 1)[0]


def test_the_readme_agent_session_runs_as_shown(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(readme.tasks_module())
    (tmp_path / "agent_session.py").write_text(readme.python_block("# agent_session.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "agent_session.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    shown = _section().split("prints (ids and times differ):", 1)[1]
    expected = [
        _normal(line)
        for line in shown.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
        if "..." not in line or "run_" in line  # the schema is abridged in the README
    ]
    got = [_normal(line) for line in done.stdout.splitlines()]
    at = 0
    for line in expected:  # each shown line, in order
        assert line in got[at:], f"{line!r} not printed after line {at}:\n{done.stdout}"
        at = got.index(line, at) + 1
    assert '"required": [' in done.stdout  # the schema itself, printed in full


def test_the_readme_client_config_is_valid() -> None:
    config = json.loads(_section().split("```json\n", 1)[1].split("```", 1)[0])
    stdio, http = config["mcpServers"]["trigger-do"], config["mcpServers"]["trigger-do-http"]
    assert [stdio["command"], *stdio["args"][:1]] == ["trigger-do", "mcp"]
    assert http["url"].endswith("/mcp") and http["headers"]["Authorization"].startswith("Bearer ")
