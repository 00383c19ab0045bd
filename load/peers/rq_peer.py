"""RQ on Redis: `python -m load.peers.rq_peer --runs N`.

Outer run: a venv with rq, redis-server on 127.0.0.1 (a free port). Inner run: W `rq worker`
processes (RQ's default worker, which forks a work horse per job); the driver enqueues N
noop jobs with `Queue.enqueue_many` (RQ's batch call, one pipeline), then polls the jobs
until every one has finished and reads each return value.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["rq>=2.0,<4"]


def noop(t0: float) -> float:
    return time.time()


def inner(runs: int, workers: int) -> dict[str, object]:
    import _env
    import rq_peer
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    url = os.environ["REDIS_URL"]
    redis = Redis.from_url(url)
    queue = Queue("peer", connection=redis)
    procs = [
        subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rq"),
                "worker",
                "-u",
                url,
                "-q",
                "peer",
                "--logging_level",
                "WARNING",
            ],
            start_new_session=True,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.time() + 60
        while len(rq_peer_workers(redis)) < workers:
            if time.time() > deadline:
                raise RuntimeError("the rq workers did not start")
            time.sleep(0.05)
        t0 = time.time()
        jobs = queue.enqueue_many(
            [Queue.prepare_data(rq_peer.noop, (t0,), result_ttl=3600) for _ in range(runs)]
        )
        enqueued = time.time()
        pending = [j.id for j in jobs]
        ran: list[float] = []
        deadline = time.time() + 900
        while pending and time.time() < deadline:
            still = []
            for i in range(0, len(pending), 1000):
                for jid, job in zip(
                    pending[i : i + 1000],
                    Job.fetch_many(pending[i : i + 1000], connection=redis),
                    strict=True,
                ):
                    if job is not None and job.get_status(refresh=False) == "finished":
                        ran.append(float(job.return_value()))
                    else:
                        still.append(jid)
            pending = still
            if pending:
                time.sleep(0.02)
        done = time.time()
    finally:
        _env.stop(procs, grace=20)
    out: dict[str, object] = _env.figures("rq+redis", runs, workers, t0, enqueued, done, ran)
    return out


def rq_peer_workers(redis: object) -> list[object]:
    from rq import Worker

    return list(Worker.all(connection=redis))


def run(runs: int, workers: int) -> dict[str, object]:
    from load.peers import _env

    python = _env.venv_python("rq", PACKAGES)
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
