"""The dashboard's templates and static files reach the Worker: wrangler uploads only the
module types its rules name, so a `.js`, `.css` or `.html` file under the module root is
left out unless wrangler.toml has a rule for it (the default `**/*.html` Text rule is
dropped by the repository's own Text rule, `fallthrough = false`; `.js` and `.css` have no
default rule for a Python Worker). Under `python_modules/` (a user's project, which
pywrangler fills) wrangler uploads every file as Data. Both bundles are checked with the
real wrangler (`deploy --dry-run`, offline; see test_cf_wrangler.py), byte for byte.

The app reads them beside `dashboard/assets.py`; setuptools ships them as package data."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from tests.cloudflare.test_cf_wrangler import ROOT, dry_run, user_project, wrangler
from trigger_do.dashboard import assets

__all__ = ["wrangler"]  # the fixture, shared with test_cf_wrangler.py

DASHBOARD = ROOT / "trigger_do" / "dashboard"


def shipped() -> list[Path]:
    """Every file the dashboard reads at run time."""
    files = [*assets.TEMPLATES.glob("*.html"), *assets.STATIC.iterdir()]
    assert {p.suffix for p in files} >= {".html", ".js", ".css"}, files
    return sorted(p for p in files if p.is_file())


def test_the_repository_worker_bundle_carries_the_dashboard_files(
    wrangler: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, output = dry_run(wrangler, ROOT, out)
    assert code == 0, output
    for path in shipped():
        name = path.relative_to(ROOT).as_posix()
        uploaded = out / name
        assert uploaded.is_file(), f"{name} is not in the Worker bundle:\n{output}"
        assert uploaded.read_bytes() == path.read_bytes(), name
        # uploaded as a Text module (a file in the Worker's file system), not as JS to run
        line = next(line for line in output.splitlines() if f" {name} " in line)
        assert "│ text " in line, line


def test_a_user_projects_worker_bundle_carries_them_under_python_modules(
    wrangler: list[str], tmp_path: Path
) -> None:
    project = user_project(tmp_path)
    out = tmp_path / "out"
    code, output = dry_run(wrangler, project, out)
    assert code == 0, output
    for path in shipped():
        name = "python_modules/" + path.relative_to(ROOT).as_posix()
        assert (out / name).is_file(), f"{name} is not in the Worker bundle:\n{output}"
        assert (out / name).read_bytes() == path.read_bytes(), name


def test_the_package_data_globs_cover_every_dashboard_file() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["trigger_do.dashboard"]
    for path in shipped():
        name = path.relative_to(DASHBOARD).as_posix()
        assert any(fnmatch.fnmatch(name, g) for g in globs), (name, globs)
