"""The official Trigger.dev client's wait tokens (`wait.createToken`, `wait.completeToken`,
`wait.retrieveToken`, `wait.listTokens`, npm `@trigger.dev/sdk@4`), called from Node as a
backend would, against `trigger-do dev` on a real socket: tests/node_client/tokens.mjs makes
the calls and asserts on what the client returns (it validates each response with its own
schemas), the callback URL and a public access token included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.schedules.test_node_client import ENV, FIXTURE, ROOT, _npm_install, dev_server

CALLS = {"wait.createToken", "wait.completeToken", "wait.retrieveToken", "wait.listTokens"}

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("node") is None, reason="needs Node 20 and npm"),
]
__all__ = ["dev_server"]  # the fixture: `trigger-do dev` in a fresh directory


def test_official_client_wait_tokens(dev_server: tuple[str, str, Path]) -> None:
    _npm_install()
    url, key, _ = dev_server
    env = {**ENV, "TRIGGER_API_URL": url, "TRIGGER_SECRET_KEY": key}
    done = subprocess.run(
        ["node", "tokens.mjs"], cwd=FIXTURE, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert set(report["calls"]) == CALLS


def test_readme_lists_the_token_calls() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Wait tokens and events", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"`(wait\.\w+)`", section)) >= CALLS
