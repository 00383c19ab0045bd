"""`trigger-do init` / `trigger-do deploy --dry-run`: the generated config passes the
checks, and each check catches what it is for."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from trigger_do.platform.cloudflare import deploy

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_a_config_that_passes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = deploy.init_project(tmp_path / "My App")
    assert target == tmp_path / "My App" / "wrangler.toml"
    config = tomllib.loads(target.read_text())
    assert config["name"] == "my-app"
    assert config["compatibility_flags"] == ["python_workers"]
    assert (tmp_path / "My App" / "src" / "worker.py").read_text().startswith('"""The Cloud')
    assert deploy.check_config(target) == []
    with pytest.raises(FileExistsError):
        deploy.init_project(tmp_path / "My App")


def test_the_repository_wrangler_toml_passes() -> None:
    assert deploy.check_config(ROOT / "wrangler.toml") == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            ('compatibility_flags = ["python_workers"]', "compatibility_flags = []"),
            "python_workers",
        ),
        (('dead_letter_queue = "trigger-do-runs-dlq"', ""), "dead_letter_queue"),
        (('"Run", "Registry"', '"Registry"'), "Run must be in a migration"),
        (('new_sqlite_classes = ["Scheduler"]', "new_sqlite_classes = []"), "Scheduler must be"),
        (('name = "SCHEDULER"', 'name = "SCHEDULES"'), "binding SCHEDULER"),
        (('tag = "v2"', 'tag = "v1"'), "its own tag"),
        (('binding = "PACKETS"', 'binding = "BLOBS"'), "PACKETS"),
        (('crons = ["* * * * *"]', "crons = []"), "cron"),
        (("max_batch_size = 100        #", "max_batch_size = 500 #"), "at most 100"),
        (('compatibility_date = "2026-11-01"', 'compatibility_date = "2026-09-07"'), "Pyodide 314"),
        (
            ('["python_workers"]', '["python_workers", "no_python_workers_314"]'),
            "Pyodide 314",
        ),
    ],
)
def test_each_check_catches_its_mistake(
    tmp_path: Path, edit: tuple[str, str], problem: str
) -> None:
    target = deploy.init_project(tmp_path)
    text = target.read_text()
    assert edit[0] in text
    target.write_text(text.replace(edit[0], edit[1], 1))
    assert any(problem in p for p in deploy.check_config(target)), deploy.check_config(target)


def test_deploy_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert deploy.deploy(dry_run=True) == 2  # no wrangler.toml yet
        deploy.init_project(tmp_path)
        assert deploy.deploy(dry_run=True) == 0
        (tmp_path / "src" / "worker.py").write_text("import tasks\n")
        assert deploy.deploy(dry_run=True) == 1
    finally:
        os.chdir(cwd)
    assert "does not export Default" in capsys.readouterr().err
