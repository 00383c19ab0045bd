"""`trigger_do.local(db=...)`: every process the runtime starts uses the database it was
given, and a task's SDK calls inside a worker go to that worker's engine: a parent that
triggers a child and waits for it completes, run from another directory, whatever
TRIGGER_DO_DB or TRIGGER_API_URL the environment holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
PATH = ENV.get("PYTHONPATH", "")

TASKS = """
from trigger_do import task


@task(id="child")
async def child(payload: dict) -> int:
    return payload["n"] * 2


@task(id="parent")
async def parent(payload: dict) -> int:
    return await child.trigger_and_wait({"n": payload["n"]}, timeout=20) + 1


@task(id="sync-parent")
def sync_parent(payload: dict) -> str:
    return child.trigger_sync({"n": payload["n"]}).id


@task(id="sync-waiter")
def sync_waiter(payload: dict) -> int:  # only async tasks can wait (a clear MisuseError)
    return child.trigger_and_wait_sync({"n": payload["n"]}, timeout=20) + 1
"""

SCRIPT = """
import asyncio
import sys

import trigger_do

import family


async def main() -> None:
    async with trigger_do.local(tasks=family, db=sys.argv[1], workers=1):
        print(await family.parent.trigger_and_wait({"n": 4}, timeout=40))
        child_id = await family.sync_parent.trigger_and_wait({"n": 5}, timeout=40)
        print(await trigger_do.tasks.handle(child_id).result(timeout=40) + 1)
        try:
            await family.sync_waiter.trigger_and_wait({"n": 6}, timeout=40, max_attempts=1)
        except trigger_do.RunFailedError as exc:
            print(exc.error["name"])


asyncio.run(main())
"""


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"TRIGGER_DO_DB": "elsewhere.db"},  # the runtime's database wins over the environment
        {"TRIGGER_API_URL": "http://127.0.0.1:9"},  # ... and so does its engine
    ],
    ids=["plain", "other-db-in-env", "api-url-in-env"],
)
def test_child_runs_use_the_runtimes_database(tmp_path: Path, env: dict[str, str]) -> None:
    app, cwd = tmp_path / "app", tmp_path / "cwd"
    app.mkdir()
    cwd.mkdir()
    (app / "family.py").write_text(TASKS)
    (app / "main.py").write_text(SCRIPT)
    db = tmp_path / "data" / "x.db"
    result = subprocess.run(
        [sys.executable, str(app / "main.py"), str(db)],
        cwd=cwd,
        env={**ENV, **env, "PYTHONPATH": os.pathsep.join(filter(None, [str(app), PATH]))},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["9", "11", "MisuseError"]
    assert db.exists()
    assert list(cwd.iterdir()) == []  # no .trigger-do/ (nor elsewhere.db) under the cwd
