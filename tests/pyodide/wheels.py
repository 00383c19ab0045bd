"""Download the pinned wheels that run.mjs installs into Pyodide.

    python tests/pyodide/wheels.py

Cache folder: $TRIGGER_DO_PYODIDE_WHEELS, default tests/pyodide/.wheels/.
Wheels already present (with the pinned sha256) are not downloaded again;
*.whl files in the folder that are not pinned here are removed, because
run.mjs installs every wheel it finds there.

Stdlib only, plus pip through a subprocess. To bump a pin: change the file
name, delete the hash (""), run this script, paste the printed sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON_VERSION = "3.14"  # Pyodide 314.0.x = CPython 3.14
PYODIDE_PLATFORM = "pyemscripten_2026_0_wasm32"  # ABI of Pyodide 314

# (wheel file name, sha256). Resolved with:
#   pip download --only-binary=:all: --python-version 3.14 --implementation cp \
#     --platform pyemscripten_2026_0_wasm32 --platform any pydantic croniter limits tzdata \
#     cron-descriptor workers-runtime-sdk starlette pyjwt
PINNED: list[tuple[str, str]] = [
    (
        "pydantic-2.14.4-py3-none-any.whl",
        "653a2ad9f6d8858529c77c72717d0ea991d6c6837fe683246b2f4b2bbfc3fadc",
    ),
    (
        "pydantic_core-2.50.5-cp314-cp314-pyemscripten_2026_0_wasm32.whl",
        "b2910ec0fa5aeb9bef70156f2b79f4783978fdcfaa7b2f1b5d1814458d2e79a1",
    ),
    (
        "typing_extensions-4.16.0-py3-none-any.whl",
        "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8",
    ),
    (
        "annotated_types-0.8.0-py3-none-any.whl",
        "f072f4d804ea359e4eaf198b1af7a8b0943881a87f31bb764f8bf219bb9419e0",
    ),
    (
        "typing_inspection-0.4.5-py3-none-any.whl",
        "bc210535442b39e1bf2805e0c7a17dfd6a4ace760c84c7f7d16245d23a6b1c39",
    ),
    (
        "croniter-7.0.0-py3-none-any.whl",
        "92090bce3cef195a037a46b78430c4cdd6250e90671d9d7dcd9e486147daaca4",
    ),
    (
        "python_dateutil-4.0.0-py3-none-any.whl",
        "a5e246f79eb80475e691bf93862cead98decd8a498cf53ba0516fcdc0f50dc1c",
    ),
    (
        "limits-5.8.0-py3-none-any.whl",
        "ae1b008a43eb43073c3c579398bd4eb4c795de60952532dc24720ab45e1ac6b8",
    ),
    (
        "deprecated-3.0.1-py3-none-any.whl",
        "eda314c115e8bc0fe52b90a6869e19240ac3cedb7449adfdba5981cf9ef693e1",
    ),
    # Pure-python wrapt: its C extension is optional, the fallback is used under Pyodide.
    (
        "wrapt-2.5.2-py3-none-any.whl",
        "61eb54e9540ea522c2c4752a57549a83d3c67e6704ed708403d28e067aaf90f0",
    ),
    (
        "packaging-26.4-py3-none-any.whl",
        "81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2",
    ),
    (
        "tzdata-2026.6-py2.py3-none-any.whl",
        "0a10eec6e13ef16b627fabed9a5f2ba61a62b1c67f327305f4e7e412a70b4aec",
    ),
    # schedules: a cron expression's description (`generator.description`)
    (
        "cron_descriptor-2.2.1-py3-none-any.whl",
        "23b42aca983841333aaf28095024e0457f005621d03e658edbd7316a5f2bbd42",
    ),
    # The Python Workers SDK (`workers`, `asgi`) that pywrangler vendors into every Worker: the
    # Cloudflare scenarios reach the adapters through its binding wrappers (sdk_cloud.py).
    (
        "workers_runtime_sdk-1.9.5-py3-none-any.whl",
        "f2b912660a3ab60d2a24920106422f9eaf4cd7a794e42b022237ad2444287fef",
    ),
    # The HTTP API (the Worker's `fetch`): Starlette and what it needs.
    (
        "starlette-1.10.0-py3-none-any.whl",
        "478c0ab3b4ced6e82719849c118fa406f0278a3499c1a898cd15cd31bdc38ce4",
    ),
    (
        "anyio-4.16.0-py3-none-any.whl",
        "c66ae634e0b8228396b801741beb3294326d4b6102f7bba4041c0dfb58c29026",
    ),
    (
        "idna-3.20-py3-none-any.whl",
        "ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c",
    ),
    # public access tokens (HS256 JWTs) on the HTTP API
    (
        "pyjwt-2.15.1-py3-none-any.whl",
        "42d59d631f7768a1028a64c7ff581a9bf7519804daf91fc5b6c56e30eec5e193",
    ),
]
# Deliberately absent: orjson (no Pyodide wheel); six (python-dateutil 4 dropped it);
# pytz (croniter only imports it for pytz-aware datetimes).


def wheels_dir() -> Path:
    env = os.environ.get("TRIGGER_DO_PYODIDE_WHEELS")
    return Path(env).resolve() if env else Path(__file__).resolve().parent / ".wheels"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _requirement(filename: str) -> str:
    name, version = filename.split("-")[:2]
    return f"{name}=={version}"


def ensure_wheels(dest: Path | None = None) -> Path:
    dest = dest or wheels_dir()
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {name for name, _ in PINNED}
    for stale in dest.glob("*.whl"):
        if stale.name not in wanted:
            print(f"removing unpinned wheel {stale.name}")
            stale.unlink()

    missing = [
        (name, sha)
        for name, sha in PINNED
        if not ((dest / name).is_file() and (not sha or _sha256(dest / name) == sha))
    ]
    if not missing:
        return dest

    with tempfile.TemporaryDirectory(prefix="pyodide-wheels-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--platform", PYODIDE_PLATFORM, "--platform", "any",
            "--dest", tmp, *(_requirement(name) for name, _ in missing),
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        for name, sha in missing:
            got = Path(tmp) / name
            if not got.is_file():
                raise SystemExit(f"pip did not produce {name}; got {sorted(os.listdir(tmp))}")
            actual = _sha256(got)
            if not sha:
                print(f"{name}: sha256 {actual} (not pinned)")
            elif actual != sha:
                raise SystemExit(f"{name}: sha256 mismatch: expected {sha}, got {actual}")
            shutil.move(str(got), dest / name)
    return dest


if __name__ == "__main__":
    print(f"pyodide wheels ready in {ensure_wheels()}")
