"""`trigger-do dev` prints a one-time login URL: it opens a session once, over the real
server the command starts."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx

from tests.test_cli_dev import Dev

TASKS = """
from trigger_do import task


@task(id="hello")
async def hello(payload: dict) -> str:
    return "hi"
"""


def test_dev_prints_a_one_time_login_url(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    dev = Dev(tmp_path)
    try:
        line = dev.wait_for("dashboard on")
        found = re.search(r"(http://127\.0\.0\.1:\d+/login/once\?token=[\w-]+)", line)
        assert found, line
        key = dev.wait_for("API on").split("secret key: ")[1].rstrip(")\n")
        assert key not in found.group(1)
        base = found.group(1).split("/login")[0]
        deadline = time.monotonic() + 30
        while True:  # the URL is printed as the server starts listening
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(dev.lines)
                time.sleep(0.05)
        with httpx.Client() as browser:
            r = browser.get(found.group(1))
            assert r.status_code == 303 and r.headers["location"] == "/runs"
            page = browser.get(f"{base}/runs")
            assert page.status_code == 200 and "<h1>Runs</h1>" in page.text
        with httpx.Client() as other:
            assert other.get(found.group(1)).status_code == 401  # spent
    finally:
        dev.proc.send_signal(signal.SIGINT)
        dev.proc.wait(60)


def test_the_readme_shows_what_dev_prints_and_every_screenshot() -> None:
    from tests.readme import README, blocks

    text = README.read_text()
    shown = next(b for b in blocks("text") if "dashboard on" in b)
    line = next(x for x in shown.splitlines() if "dashboard on" in x)
    # the same words as the command prints (tested above), with the token elided
    assert re.fullmatch(
        r"trigger\.do: dashboard on http://127\.0\.0\.1:8787/login/once\?token=\.\.\. "
        r"\(a one-time login link\)",
        line,
    ), line
    pictures = set(re.findall(r"\(docs/dashboard/([\w-]+\.png)\)", text))
    folder = README.parent / "docs" / "dashboard"
    assert pictures == {p.name for p in folder.glob("*.png")}, pictures
