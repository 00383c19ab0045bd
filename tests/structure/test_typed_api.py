"""The package's type hints are part of its API (PEP 561: `py.typed`): a user's own
`mypy --strict` sees what a task returns, through `@task` and `task(run=...)` alike, and
what `trigger_do.local` is, though it is imported only when first used."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mypy import api

USER_CODE = '''
from typing import Any

import trigger_do
from trigger_do import RunContext, schedules, task


@task(id="typed-async")
async def add(p: dict[str, int]) -> int:
    return p["a"] + p["b"]


@task(id="typed-sync", retry={"max_attempts": 2})
def shout(p: str, ctx: RunContext) -> str:
    return p.upper()


async def _items(p: Any) -> list[int]:
    return [1]


items = task(id="typed-run", run=_items)


@schedules.task(id="typed-cron", cron="0 * * * *")
async def tick(e: schedules.ScheduledEvent) -> None:
    return None


reveal_type(add)
reveal_type(shout)
reveal_type(items)
reveal_type(tick)


async def main() -> None:
    async with trigger_do.local("user", workers=1):  # (imported when first used)
        total: int = await add.trigger_and_wait({"a": 1, "b": 2})
        wrong: str = await add.trigger_and_wait({"a": 1, "b": 2})
'''


def test_the_package_ships_its_type_hints() -> None:
    assert resources.files("trigger_do").joinpath("py.typed").is_file()


def test_a_users_strict_mypy_sees_each_tasks_output_type(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(USER_CODE)
    out, err, _ = api.run(
        [
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(tmp_path / "user.py"),
        ]
    )
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if ": " in line]
    assert 'note: Revealed type is "trigger_do.task.Task[int]"' in lines, out + err
    assert 'note: Revealed type is "trigger_do.task.Task[str]"' in lines, out
    assert 'note: Revealed type is "trigger_do.task.Task[list[int]]"' in lines, out
    assert 'note: Revealed type is "trigger_do.schedules.declare.ScheduledTask[None]"' in lines, out
    errors = [line for line in lines if line.startswith("error:")]
    # the one mistake, and nothing else (no "untyped decorator", no Any leaking through)
    assert len(errors) == 1 and "Incompatible types in assignment" in errors[0], out
