"""Celery with a Redis broker and result backend: `python -m load.peers.celery_peer --runs N`.

Outer run: a venv with celery[redis], redis-server on 127.0.0.1 (a free port). Inner run:
`celery worker` with a prefork pool of W processes; the driver sends N noop tasks as one
`group(...)` (Celery's batch call), then waits for the group's results.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

if os.environ.get("PEER_INNER"):
    import _env
    from celery import Celery, group

    app = Celery("celery_peer", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="noop")
    def noop(t0: float) -> float:
        return time.time()

else:
    from load.peers import _env


def start(workers: int) -> list[subprocess.Popen[bytes]]:
    return [
        _env.spawn(
            "celery",
            *("-A", "celery_peer", "worker", "-c", str(workers), "-P", "prefork"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"),
        )
    ]


def ready(procs: list[subprocess.Popen[bytes]]) -> None:
    ping_deadline = time.time() + 60
    while not app.control.ping(timeout=0.5):
        if time.time() > ping_deadline or procs[0].poll() is not None:
            raise RuntimeError("the celery worker did not start")


def enqueue(t0: float, runs: int) -> Any:
    return group(noop.s(t0) for _ in range(runs)).apply_async()


def collect(result: Any) -> list[float]:
    return [float(v) for v in result.get(timeout=600)]


PEER = _env.Peer(
    label="celery+redis",
    packages=["celery[redis]>=5.4,<6"],
    environment=_env.redis_env,
    start=start,
    ready=ready,
    enqueue=enqueue,
    collect=collect,
    stop_grace=20,
)

if __name__ == "__main__":
    _env.main(__file__)
