"""RQ on Redis: `python -m load.peers.rq_peer --runs N`.

Outer run: a venv with rq, redis-server on 127.0.0.1 (a free port). Inner run: W `rq worker`
processes (RQ's default worker, which forks a work horse per job); the driver enqueues N
noop jobs with `Queue.enqueue_many` (RQ's batch call, one pipeline), then polls the jobs
until every one has finished and reads each return value.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

if os.environ.get("PEER_INNER"):
    import _env
    from redis import Redis
    from rq import Queue, Worker
    from rq.job import Job

    url = os.environ["REDIS_URL"]
    redis = Redis.from_url(url)
    queue = Queue("peer", connection=redis)

else:
    from load.peers import _env


def noop(t0: float) -> float:
    return time.time()


def start(workers: int) -> list[subprocess.Popen[bytes]]:
    return [
        _env.spawn("rq", "worker", "-u", url, "-q", "peer", "--logging_level", "WARNING")
        for _ in range(workers)
    ]


def ready(procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.time() + 60
    while len(Worker.all(connection=redis)) < len(procs):
        if time.time() > deadline:
            raise RuntimeError("the rq workers did not start")
        time.sleep(0.05)


def enqueue(t0: float, runs: int) -> Any:
    return queue.enqueue_many(
        [Queue.prepare_data(noop, (t0,), result_ttl=3600) for _ in range(runs)]
    )


def collect(jobs: Any) -> list[float]:
    def read(ids: list[str]) -> list[Any]:
        return [
            float(job.return_value())
            if job is not None and job.get_status(refresh=False) == "finished"
            else _env.PENDING
            for job in Job.fetch_many(ids, connection=redis)
        ]

    return _env.poll_results([j.id for j in jobs], read, interval=0.02, timeout=900)


PEER = _env.Peer(
    label="rq+redis",
    packages=["rq>=2.0,<4"],
    environment=_env.redis_env,
    start=start,
    ready=ready,
    enqueue=enqueue,
    collect=collect,
    stop_grace=20,
)

if __name__ == "__main__":
    _env.main(__file__)
