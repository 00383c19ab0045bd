"""Huey with its SQLite storage (the embedded peer): `python -m load.peers.huey_peer --runs N`.

Outer run (this project's Python): a venv with huey, then this file runs inside it.
Inner run: `huey_consumer` with W worker processes on a fresh SQLite file; the driver
enqueues N noop tasks with `task.map` (Huey's batch call), then reads every result.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGES = ["huey>=2.5,<4"]

if os.environ.get("PEER_INNER"):
    from huey import SqliteHuey

    huey = SqliteHuey("peer", filename=os.environ["HUEY_DB"], results=True)

    @huey.task()
    def noop(t0: float) -> float:
        return time.time()


def inner(runs: int, workers: int) -> dict[str, object]:
    import _env
    import huey_peer  # the tasks by their importable name, as the consumer knows them
    from huey.constants import EmptyData

    consumer = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "huey_consumer"),
            "huey_peer.huey",
            "-w",
            str(workers),
            "-k",
            "process",
            "-d",
            "0.001",
            "-m",
            "0.01",
            "-b",
            "1.1",
            "-C",
            "-q",
            "-g",
            "TERM",
        ],
        start_new_session=True,
    )
    try:
        time.sleep(1.0)  # let the consumer start its workers
        t0 = time.time()
        group = huey_peer.noop.map([t0] * runs)
        enqueued = time.time()
        pending = list(group)
        ran: list[float] = []
        deadline = time.time() + 600
        while pending and time.time() < deadline:
            still = []
            for r in pending:
                value = r._get()
                if value is EmptyData:
                    still.append(r)
                else:
                    ran.append(float(value))
            pending = still
            if pending:
                time.sleep(0.002)
        done = time.time()
    finally:
        _env.stop([consumer])
    out: dict[str, object] = _env.figures("huey+sqlite", runs, workers, t0, enqueued, done, ran)
    return out


def run(runs: int, workers: int) -> dict[str, object]:
    """Prepare the venv, then run the inner driver there; returns its figures."""
    from load.peers import _env

    python = _env.venv_python("huey", PACKAGES)
    with tempfile.TemporaryDirectory(prefix="peer-huey-") as tmp:
        env = {**_env.python_path_env(), "HUEY_DB": str(Path(tmp) / "huey.db")}
        return _env.run_inner(
            python, Path(__file__), ["--runs", str(runs), "--workers", str(workers)], env
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--inner", action="store_true")
    args = p.parse_args()
    result = inner(args.runs, args.workers) if args.inner else run(args.runs, args.workers)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
