"""The README's Webhooks examples, run as a user would: `trigger-do dev --tasks tasks` in a
fresh folder holding the README's tasks module, with `GITHUB_WEBHOOK_SECRET` and
`STRIPE_WEBHOOK_SECRET` in its environment, then `python send_github.py` and
`python send_stripe.py` as written (real HMACs over a real socket); their runs complete.
(The Events section's `# app.py` block runs in tests/test_readme.py with the others.)"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests import readme
from tests.test_readme import ENV, _free_port, _registered


def _block(first_line: str) -> str:
    return readme.python_block(first_line)


def test_the_github_and_stripe_examples(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(readme.tasks_module())
    (tmp_path / "send_github.py").write_text(_block("# send_github.py"))
    (tmp_path / "send_stripe.py").write_text(_block("# send_stripe.py"))
    port = _free_port()
    key = "tr_dev_readmeWebhooksTest0000001"
    secrets = {"GITHUB_WEBHOOK_SECRET": "s3cret", "STRIPE_WEBHOOK_SECRET": "whsec_test"}
    env = {**ENV, **secrets, "TRIGGER_SECRET_KEY": key}
    dev = readme.shell_commands()[0]
    server = subprocess.Popen(
        [*shlex.split(dev), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        db = tmp_path / ".trigger-do" / "trigger.db"
        deadline = time.monotonic() + 60
        while not (db.exists() and _registered(db) and _up(url)):
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.2)
        sender_env = {**ENV, **secrets, "TRIGGER_API_URL": url}
        runs: list[str] = []
        for script, event in (("send_github.py", "push"), ("send_stripe.py", "invoice.paid")):
            done = subprocess.run(
                [sys.executable, script],
                cwd=tmp_path,
                env=sender_env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            line = done.stdout.strip().splitlines()[0]
            assert f"'event': '{event}'" in line and "'ok': True" in line, line
            runs += [r for r in line.split("'") if r.startswith("run_")]
        assert len(runs) == 2
        auth = {"Authorization": f"Bearer {key}"}
        outputs = {}
        for run_id in runs:
            for _ in range(300):
                got = httpx.get(f"{url}/api/v3/runs/{run_id}", headers=auth, timeout=10).json()
                if got["status"] == "COMPLETED":
                    break
                time.sleep(0.1)
            outputs[got["taskIdentifier"]] = got["output"]
        assert outputs == {"github-push": "refs/heads/main", "invoice-paid": "in_1"}
        log = httpx.get(f"{url}/api/v1/webhooks/deliveries", headers=auth, timeout=10).json()
        assert sorted(d["source"] for d in log["data"]) == ["github", "stripe"]
        listed = subprocess.run(
            ["trigger-do", "webhooks", "list", "--json"],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert {d["event"] for d in json.loads(listed.stdout)} == {"push", "invoice.paid"}
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
