"""Huey with its SQLite storage (the embedded peer): `python -m load.peers.huey_peer --runs N`.

Outer run (this project's Python): a venv with huey, then this file runs inside it.
Inner run: `huey_consumer` with W worker processes on a fresh SQLite file; the driver
enqueues N noop tasks with `task.map` (Huey's batch call), then reads every result.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if os.environ.get("PEER_INNER"):
    import _env
    from huey import SqliteHuey
    from huey.constants import EmptyData

    huey = SqliteHuey("peer", filename=os.environ["HUEY_DB"], results=True)

    @huey.task()
    def noop(t0: float) -> float:
        return time.time()

else:
    from load.peers import _env


@contextlib.contextmanager
def environment() -> Iterator[dict[str, str]]:
    """A fresh SQLite file for Huey's storage."""
    with tempfile.TemporaryDirectory(prefix="peer-huey-") as tmp:
        yield {"HUEY_DB": str(Path(tmp) / "huey.db")}


def start(workers: int) -> list[subprocess.Popen[bytes]]:
    return [
        _env.spawn(
            "huey_consumer",
            *("huey_peer.huey", "-w", str(workers), "-k", "process"),
            *("-d", "0.001", "-m", "0.01", "-b", "1.1", "-C", "-q", "-g", "TERM"),
        )
    ]


def ready(procs: list[subprocess.Popen[bytes]]) -> None:
    time.sleep(1.0)  # let the consumer start its workers


def enqueue(t0: float, runs: int) -> Any:
    return noop.map([t0] * runs)


def collect(group: Any) -> list[float]:
    def read(results: list[Any]) -> list[Any]:
        return [_env.PENDING if (v := r._get()) is EmptyData else v for r in results]

    return _env.poll_results(list(group), read, interval=0.002, timeout=600)


PEER = _env.Peer(
    label="huey+sqlite",
    packages=["huey>=2.5,<4"],
    environment=environment,
    start=start,
    ready=ready,
    enqueue=enqueue,
    collect=collect,
)

if __name__ == "__main__":
    _env.main(__file__)
