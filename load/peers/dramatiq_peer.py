"""Dramatiq on Redis (broker and results): `python -m load.peers.dramatiq_peer --runs N`.

Outer run: a venv with dramatiq[redis], redis-server on 127.0.0.1 (a free port). Inner run:
`dramatiq` with W worker processes (one thread each, like the other peers' W workers);
the driver sends N noop messages as one `group(...)` (Dramatiq's batch call) and waits
for every result through the Results middleware.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["dramatiq[redis]>=1.17,<3"]

if os.environ.get("PEER_INNER"):
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.results import Results
    from dramatiq.results.backends import RedisBackend

    broker = RedisBroker(url=os.environ["REDIS_URL"])
    broker.add_middleware(Results(backend=RedisBackend(url=os.environ["REDIS_URL"])))
    dramatiq.set_broker(broker)

    @dramatiq.actor(store_results=True, max_retries=0)
    def noop(t0: float) -> float:
        return time.time()


def inner(runs: int, workers: int) -> dict[str, object]:
    import _env
    import dramatiq_peer
    from dramatiq import group

    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dramatiq"),
            "dramatiq_peer",
            "-p",
            str(workers),
            "-t",
            "1",
        ],
        start_new_session=True,
    )
    try:
        # the first result proves the workers are up; it is not counted
        dramatiq_peer.noop.send(0.0).get_result(block=True, timeout=60_000)
        t0 = time.time()
        g = group(dramatiq_peer.noop.message(t0) for _ in range(runs)).run()
        enqueued = time.time()
        ran = [float(v) for v in g.get_results(block=True, timeout=600_000)]
        done = time.time()
    finally:
        _env.stop([proc], grace=20)
    out: dict[str, object] = _env.figures("dramatiq+redis", runs, workers, t0, enqueued, done, ran)
    return out


def run(runs: int, workers: int) -> dict[str, object]:
    from load.peers import _env

    python = _env.venv_python("dramatiq", PACKAGES)
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
