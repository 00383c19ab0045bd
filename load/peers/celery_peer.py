"""Celery with a Redis broker and result backend: `python -m load.peers.celery_peer --runs N`.

Outer run: a venv with celery[redis], redis-server on 127.0.0.1 (a free port). Inner run:
`celery worker` with a prefork pool of W processes; the driver sends N noop tasks as one
`group(...)` (Celery's batch call), then waits for the group's results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["celery[redis]>=5.4,<6"]

if os.environ.get("PEER_INNER"):
    from celery import Celery

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


def inner(runs: int, workers: int) -> dict[str, object]:
    import _env
    import celery_peer
    from celery import group

    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "celery_peer",
            "worker",
            "-c",
            str(workers),
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        start_new_session=True,
    )
    try:
        ping_deadline = time.time() + 60
        while not celery_peer.app.control.ping(timeout=0.5):
            if time.time() > ping_deadline or worker.poll() is not None:
                raise RuntimeError("the celery worker did not start")
        t0 = time.time()
        result = group(celery_peer.noop.s(t0) for _ in range(runs)).apply_async()
        enqueued = time.time()
        ran = [float(v) for v in result.get(timeout=600)]
        done = time.time()
    finally:
        _env.stop([worker], grace=20)
    out: dict[str, object] = _env.figures("celery+redis", runs, workers, t0, enqueued, done, ran)
    return out


def run(runs: int, workers: int) -> dict[str, object]:
    from load.peers import _env

    python = _env.venv_python("celery", PACKAGES)
    with _env.redis_server() as url:
        env = {**_env.python_path_env(), "REDIS_URL": url}
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
