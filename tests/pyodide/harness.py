"""Run Python scripts under real Pyodide 314 (Cloudflare Python Workers runtime) in Node.

    from harness import run_in_pyodide
    proc = run_in_pyodide("tests/pyodide/smoke.py", ["trigger_do"])
    assert proc.returncode == 0, proc.stdout + proc.stderr

The first call in a process installs node_modules (npm ci) and the pinned
wheels (wheels.py) if they are missing; later runs need no network.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
RUN_MJS = HERE / "run.mjs"
WHEELS_PY = HERE / "wheels.py"

_prepared = False


def node_available() -> bool:
    """True if both `node` and `npm` are on PATH."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _node_modules_current() -> bool:
    """Every dependency of package.json installed at its pinned version."""
    wanted = json.loads((HERE / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        installed = HERE / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text())["version"] != version:
            return False
    return True


def prepare() -> None:
    """Install node_modules (npm ci) if missing and download missing wheels. Idempotent."""
    global _prepared
    if _prepared:
        return
    with open(HERE / ".prepare.lock", "w") as lock:  # serialise parallel test workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _node_modules_current():
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
        subprocess.run([sys.executable, str(WHEELS_PY)], check=True, stdout=subprocess.DEVNULL)
    _prepared = True


def run_in_pyodide(
    script_path: str | os.PathLike[str],
    src_dirs: Iterable[str | os.PathLike[str]] = (),
    *,
    timeout: float | None = 300,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `script_path` under Pyodide with each of `src_dirs` importable.

    Relative paths are resolved against the repository root. Each src dir (a
    package directory such as "trigger_do") is copied to /home/pyodide/src/<name>,
    which is on sys.path. Returns the finished `node run.mjs` process with text
    stdout/stderr captured; returncode is 0 on success, 1 on an uncaught Python
    exception (traceback in stderr), or the sys.exit() code. Does not raise on failure.
    `env` is added to the environment of the node process (e.g.
    TRIGGER_DO_PYODIDE_WHEELS); Python inside Pyodide does not see host env vars.
    """
    prepare()
    cmd = ["node", str(RUN_MJS), str(REPO_ROOT / script_path)]
    for src in src_dirs:
        cmd += ["--src", str(REPO_ROOT / src)]
    return subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
