"""Dramatiq on Redis (broker and results): `python -m load.peers.dramatiq_peer --runs N`.

Outer run: a venv with dramatiq[redis], redis-server on 127.0.0.1 (a free port). Inner run:
`dramatiq` with W worker processes (one thread each, like the other peers' W workers;
`DRAMATIQ_THREADS=8` gives each 8, its best setting for noop work on 2 cores);
the driver sends N noop messages as one `group(...)` (Dramatiq's batch call) and waits
for every result through the Results middleware.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

if os.environ.get("PEER_INNER"):
    import _env
    import dramatiq
    from dramatiq import group
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.results import Results
    from dramatiq.results.backends import RedisBackend

    broker = RedisBroker(url=os.environ["REDIS_URL"])
    broker.add_middleware(Results(backend=RedisBackend(url=os.environ["REDIS_URL"])))
    dramatiq.set_broker(broker)

    @dramatiq.actor(store_results=True, max_retries=0)
    def noop(t0: float) -> float:
        return time.time()

else:
    from load.peers import _env


def start(workers: int) -> list[subprocess.Popen[bytes]]:
    threads = os.environ.get("DRAMATIQ_THREADS", "1")  # 8: its best-tuned setting here
    return [_env.spawn("dramatiq", "dramatiq_peer", "-p", str(workers), "-t", threads)]


def ready(procs: list[subprocess.Popen[bytes]]) -> None:
    # the first result proves the workers are up; it is not counted
    noop.send(0.0).get_result(block=True, timeout=60_000)


def enqueue(t0: float, runs: int) -> Any:
    return group(noop.message(t0) for _ in range(runs)).run()


def collect(g: Any) -> list[float]:
    return [float(v) for v in g.get_results(block=True, timeout=600_000)]


PEER = _env.Peer(
    label="dramatiq+redis",
    packages=["dramatiq[redis]>=1.17,<3"],
    environment=_env.redis_env,
    start=start,
    ready=ready,
    enqueue=enqueue,
    collect=collect,
    stop_grace=20,
)

if __name__ == "__main__":
    _env.main(__file__)
