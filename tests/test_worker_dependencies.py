"""A Python Worker that depends on trigger-do must build: every runtime dependency needs a
wheel for Pyodide 314 (CPython 3.14 on wasm32-emscripten) or a marker that leaves it out there.

pywrangler (PyPI `workers-py`, `pywrangler/resolve.py::_compile_lockfile`) resolves a Worker's
dependencies with

    uv pip compile pyproject.toml <tmp reqs> --python cpython-3.14.2-emscripten-wasm32-musl
        --extra-index-url https://index.pyodide.org/314.0.7 --index-strategy unsafe-best-match
        --no-header -o pylock.toml --no-build

`cpython-3.14.2-emscripten-wasm32-musl` is a uv-managed Pyodide interpreter (downloaded from
GitHub, run with Node); uv takes the markers and wheel tags (`cp314-cp314-
pyemscripten_2026_0_wasm32`, `...-pyodide_2026_0_wasm32`, abi3, py3-none-any) from it.
`--python-platform` has no Pyodide 2026 target (only wasm32-pyodide2024/2025, whose tags
no cp314 Pyodide wheel carries), so here the interpreter is a stand-in: a script that runs
this Python for uv's interpreter query and reports what real Pyodide 314.0.7 reports (values
read under tests/pyodide/'s Node harness). Only PyPI is used: the Pyodide index is not
reachable, so a package whose only Pyodide wheel is there fails here though pywrangler would
find it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]

# What Pyodide 314.0.7 (the Workers runtime) reports: platform.system(), sys.platform, ...
PYODIDE_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.14.2",
    "os_name": "posix",
    "platform_machine": "wasm32",
    "platform_python_implementation": "CPython",
    "platform_release": "5.0.3",
    "platform_system": "Emscripten",
    "platform_version": "#1",
    "python_full_version": "3.14.2",
    "python_version": "3.14",
    "sys_platform": "emscripten",
}
# sysconfig PYEMSCRIPTEN_PLATFORM_VERSION "2026_0": wheel tag pyemscripten_2026_0_wasm32.
PYODIDE_OS = {"name": "pyemscripten", "major": 2026, "minor": 0}
PYODIDE_WHEEL_TAGS = ("-pyemscripten_2026_0_wasm32.whl", "-pyodide_2026_0_wasm32.whl")
WORKER_MARKER = 'platform_system != "Emscripten"'  # as packaging prints it
WORKER_MARKER_TOML = "platform_system != 'Emscripten'"  # as pyproject.toml spells it

# Runs the host Python for uv's interpreter query and rewrites the answer into Pyodide's.
# uv's JSON has the platform either as "platform": {"os", "arch"} or as top-level "os"/"arch"
# (and "cpu_info"), depending on the uv version.
_SHIM = """\
import json, subprocess, sys
proc = subprocess.run([{host!r}, *sys.argv[1:]], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
out = proc.stdout
try:
    info = json.loads(out)
except ValueError:
    info = None
if isinstance(info, dict) and info.get("result") == "success" and "markers" in info:
    info["markers"].update({markers!r})
    if "platform" in info:
        info["platform"] = {{"os": {os!r}, "arch": "wasm32"}}
    if "os" in info:
        info["os"] = {os!r}
        info["arch"] = "wasm32"
    if "cpu_info" in info:
        info["cpu_info"] = {{"unsupported_architecture": "wasm32"}}
    info["pointer_size"] = "32"
    info["manylinux_compatible"] = False
    out = json.dumps(info)
sys.stdout.write(out)
sys.exit(proc.returncode)
"""

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the interpreter stand-in is a sh script")


def _dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def _uv() -> str:
    try:
        import uv
    except ImportError:
        pytest.fail("uv is not installed: pip install -e '.[dev]'")
    return str(uv.find_uv_bin())


@dataclass
class Compiled:
    command: list[str]
    returncode: int
    stderr: str
    lock: Path  # pylock.toml (PEP 751) written by uv, as pywrangler has it write one

    @property
    def packages(self) -> dict[str, list[str]]:
        """Canonical name -> the file names of its wheels usable on Pyodide 314."""
        with open(self.lock, "rb") as f:
            lock = tomllib.load(f)
        return {
            canonicalize_name(pkg["name"]): [
                w["url"].rsplit("/", 1)[-1] for w in pkg.get("wheels", [])
            ]
            for pkg in lock.get("packages", [])
        }


class PyodideResolver:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        shim = workdir / "pyodide_interpreter.py"
        shim.write_text(_SHIM.format(host=sys.executable, markers=PYODIDE_MARKERS, os=PYODIDE_OS))
        self.python = workdir / "python3.14"
        self.python.write_text(
            f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(shim))} "$@"\n'
        )
        self.python.chmod(0o755)
        self.uv = _uv()
        self.runs = 0
        # As pywrangler's sync.py does, drop what could point uv at another environment.
        drop = {"VIRTUAL_ENV", "CONDA_PREFIX", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME"}
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"})

    def compile(self, requirements: list[str]) -> Compiled:
        self.runs += 1
        reqs = self.workdir / f"requirements-{self.runs}.in"
        reqs.write_text("\n".join(requirements) + "\n")
        lock = self.workdir / f"pylock.run{self.runs}.toml"
        command = [
            self.uv, "pip", "compile", str(reqs),
            "--python", str(self.python),
            "--no-build", "--no-header", "--color", "never",
            "--format", "pylock.toml", "-o", str(lock),
        ]  # fmt: skip
        proc = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        return Compiled(command, proc.returncode, proc.stderr, lock)


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> PyodideResolver:
    return PyodideResolver(tmp_path_factory.mktemp("pyodide_resolve"))


@pytest.fixture(scope="module")
def worker_resolution(resolver: PyodideResolver) -> Compiled:
    return resolver.compile(_dependencies())


def test_runtime_dependencies_resolve_for_pyodide_314(
    resolver: PyodideResolver, worker_resolution: Compiled
) -> None:
    if worker_resolution.returncode != 0:
        # Name the culprits: resolve each dependency on its own.
        unbuildable = [dep for dep in _dependencies() if resolver.compile([dep]).returncode != 0]
        pytest.fail(
            "trigger-do's dependencies do not resolve for Pyodide 314 (wasm32-emscripten, "
            "cp314, pyemscripten_2026_0_wasm32) with --no-build; no Pyodide or pure-Python "
            f"wheel on PyPI for: {', '.join(unbuildable) or '(none alone: a conflict)'}.\n"
            f"Give each the marker `; {WORKER_MARKER_TOML}` in pyproject.toml if the Worker can do "
            "without it.\n"
            f"$ {shlex.join(worker_resolution.command)}\n"
            f"{worker_resolution.stderr}",
            pytrace=False,
        )
    packages = worker_resolution.packages
    # Only Pyodide 314 wheels or pure-Python ones, never a host (manylinux) wheel.
    for name, wheels in packages.items():
        assert wheels, f"{name}: no wheel in {worker_resolution.lock}"
        for wheel in wheels:
            assert wheel.endswith(("-none-any.whl", *PYODIDE_WHEEL_TAGS)), (name, wheel)
    # pydantic-core is compiled: its wheel for the Worker is cp314 pyemscripten_2026_0_wasm32.
    assert "pydantic-core" in packages, packages
    assert any(w.endswith(PYODIDE_WHEEL_TAGS) for w in packages["pydantic-core"]), packages


def test_dependencies_left_out_of_the_worker_carry_the_emscripten_marker(
    worker_resolution: Compiled,
) -> None:
    assert worker_resolution.returncode == 0, (
        "resolution failed: see test_runtime_dependencies_resolve_for_pyodide_314"
    )
    resolved = worker_resolution.packages
    wrong = []
    for dep in _dependencies():
        req = Requirement(dep)
        if canonicalize_name(req.name) in resolved:
            continue
        marker = req.marker
        if (
            marker is None
            or WORKER_MARKER not in str(marker)
            or marker.evaluate(dict(PYODIDE_MARKERS))  # would be wanted in the Worker
            or not marker.evaluate()  # would no longer install on this CPython
        ):
            wrong.append(dep)
    assert not wrong, (
        f"left out of the Pyodide resolution without the marker `; {WORKER_MARKER_TOML}` "
        f"(true on CPython, false on Pyodide): {wrong}"
    )


def test_uv_sees_the_pyodide_314_interpreter(resolver: PyodideResolver) -> None:
    """The stand-in gives uv Pyodide's markers, as pywrangler's interpreter does."""
    on_pyodide = " and ".join(f'{k} == "{v}"' for k, v in PYODIDE_MARKERS.items())
    compiled = resolver.compile(
        [
            f"iniconfig ; {on_pyodide}",
            f"pluggy ; {WORKER_MARKER}",
            "packaging ; sys_platform != 'emscripten'",
        ]
    )
    assert compiled.returncode == 0, compiled.stderr
    assert set(compiled.packages) == {"iniconfig"}, compiled.packages


# Extras the Worker never installs (a Python Worker depends on plain `trigger-do`): each
# requirement carries the marker, so even `trigger-do[extra]` in a Worker adds nothing there.
WORKER_FREE_EXTRAS = ("mcp", "otel")


def test_extras_stay_off_the_worker() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    core = {canonicalize_name(Requirement(d).name) for d in project["dependencies"]}
    for extra in WORKER_FREE_EXTRAS:
        reqs = [Requirement(r) for r in project["optional-dependencies"][extra]]
        assert reqs, extra
        for req in reqs:
            assert canonicalize_name(req.name) not in core, (extra, req.name)
            assert req.marker is not None and WORKER_MARKER in str(req.marker), (extra, str(req))
            assert not req.marker.evaluate(dict(PYODIDE_MARKERS)), (extra, str(req))
            assert any(s.operator == ">=" for s in req.specifier), (extra, str(req))
    mcp = Requirement(project["optional-dependencies"]["mcp"][0])
    assert {(s.operator, s.version) for s in mcp.specifier} >= {("<", "3")}  # the major pinned
