"""What the peer scripts share: a venv per peer, redis-server on loopback, free ports,
worker processes that are always stopped, the figures every peer reports, and the run
itself (`main`): each peer script only says how its workers start, when they are ready,
how it enqueues N noop tasks in one batch call and how it reads every result.

Imported as `load.peers._env` by a peer's outer run, and as `_env` inside its venv."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CACHE = Path(os.environ.get("TRIGGER_DO_LOAD_CACHE", Path.home() / ".cache" / "trigger-do-load"))
PEERS_DIR = Path(__file__).resolve().parent


def venv_python(name: str, packages: Sequence[str]) -> Path:
    """A venv under the cache with `packages` installed (once; reinstalled if they change)."""
    root = CACHE / "venvs" / name
    python = root / "bin" / "python"
    stamp = root / "installed.json"
    want = sorted(packages)
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == want:
        return python
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"[peers] creating a venv for {name}: {' '.join(want)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *want],
        check=True,
    )
    stamp.write_text(json.dumps(want))
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def ensure_redis_binary() -> str:
    """redis-server's path; installs Debian's package when it is missing. A server the
    package's install script starts by itself is stopped again (we only want the binary)."""
    found = shutil.which("redis-server")
    if found:
        return found
    before = _redis_pids()
    print("[peers] installing redis-server (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "redis-server"],
        check=False,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    if not shutil.which("redis-server"):
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    for pid in _redis_pids() - before:  # started by the package's install script: ours to stop
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server is not installed and apt-get could not install it")
    return found


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server bound to 127.0.0.1 on a free port, no persistence.
    Yields its URL; stops it on exit."""
    binary = ensure_redis_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="peer-redis-") as tmp:
        proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--dir",
                tmp,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop([proc])


def stop(procs: Sequence[subprocess.Popen[Any]], grace: float = 10.0) -> None:
    """SIGTERM each process (its group, when it leads one), then SIGKILL what is left."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL) if _leads_group(p) else p.kill()
            p.wait()


def _leads_group(p: subprocess.Popen[Any]) -> bool:
    try:
        return os.getpgid(p.pid) == p.pid
    except ProcessLookupError:
        return False


def run_inner(
    python: Path, script: Path, args: Sequence[str], env: dict[str, str]
) -> dict[str, Any]:
    """Run `script` in the peer's venv; its last stdout line is its JSON result."""
    out = subprocess.run(
        [str(python), str(script), "--inner", *args],
        env={**os.environ, **env, "PEER_INNER": "1"},
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(PEERS_DIR),
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{script.name} failed with exit code {out.returncode}")
    return dict(json.loads(lines[-1]))


def figures(
    name: str,
    runs: int,
    workers: int,
    t0: float,
    enqueued: float,
    done: float,
    ran_at: Sequence[float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures every peer reports. `ran_at`: when each task body ran (its own clock);
    latency is measured from the start of the enqueue call `t0`, for every peer alike."""
    lat = sorted(t - t0 for t in ran_at)

    def pct(q: float) -> float | None:
        if not lat:
            return None
        rank = max(1, math.ceil(q / 100 * len(lat)))  # nearest rank, as load.measure
        return round(lat[min(rank, len(lat)) - 1] * 1000, 2)

    last = max(ran_at) if ran_at else done
    return {
        "peer": name,
        "runs": runs,
        "workers": workers,
        "completed": len(ran_at),
        "enqueue_s": round(enqueued - t0, 4),
        "enqueue_per_s": round(runs / max(enqueued - t0, 1e-9), 1),
        "e2e_s": round(last - t0, 4),
        "e2e_per_s": round(len(ran_at) / max(last - t0, 1e-9), 1),
        "results_s": round(done - t0, 4),
        "latency_ms": {"p50": pct(50), "p99": pct(99)},
        **(extra or {}),
    }


def python_path_env() -> dict[str, str]:
    return {"PYTHONPATH": str(PEERS_DIR)}


@contextlib.contextmanager
def redis_env() -> Iterator[dict[str, str]]:
    """The outer environment of the Redis peers: `REDIS_URL` of a throwaway redis-server."""
    with redis_server() as url:
        yield {"REDIS_URL": url}


def spawn(tool: str, *args: str) -> subprocess.Popen[bytes]:
    """Start `tool` of the peer's venv (next to its python) in a session of its own."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / tool), *args], start_new_session=True
    )


PENDING: Any = object()
"""What a `poll_results` reader returns for a result that is not there yet."""


def poll_results(
    pending: list[T],
    read: Callable[[list[T]], Iterable[Any]],
    *,
    interval: float,
    timeout: float,
    chunk: int = 1000,
) -> list[float]:
    """Read the results of `pending` handles, `chunk` at a time, until every one is there
    (or `timeout` passes); `read` returns one value or `PENDING` per handle, in order."""
    ran: list[float] = []
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        still: list[T] = []
        for i in range(0, len(pending), chunk):
            part = pending[i : i + chunk]
            for handle, value in zip(part, read(part), strict=True):
                if value is PENDING:
                    still.append(handle)
                else:
                    ran.append(float(value))
        pending = still
        if pending:
            time.sleep(interval)
    return ran


@dataclass(frozen=True)
class Peer:
    """What differs between peers. The inner hooks run in the peer's venv."""

    label: str  # the "peer" of its figures
    packages: list[str]  # installed in its venv
    environment: Callable[[], AbstractContextManager[dict[str, str]]]  # outer: env for inner
    start: Callable[[int], list[subprocess.Popen[bytes]]]  # W workers -> their processes
    ready: Callable[[list[subprocess.Popen[bytes]]], None]  # returns once they take work
    enqueue: Callable[[float, int], Any]  # (t0, N) -> a handle on the N results
    collect: Callable[[Any], list[float]]  # handle -> when each task body ran
    stop_grace: float = 10.0


def drive(peer: Peer, runs: int, workers: int) -> dict[str, Any]:
    """The inner run: start the workers, enqueue N, wait for every result, measure, and
    stop the workers whatever happens."""
    procs = peer.start(workers)
    try:
        peer.ready(procs)
        t0 = time.time()
        handle = peer.enqueue(t0, runs)
        enqueued = time.time()
        ran = peer.collect(handle)
        done = time.time()
    finally:
        stop(procs, grace=peer.stop_grace)
    return figures(peer.label, runs, workers, t0, enqueued, done, ran)


def run(peer: Peer, script: Path, runs: int, workers: int) -> dict[str, Any]:
    """The outer run: prepare the venv and the environment, then run `script` inside."""
    python = venv_python(script.stem.removesuffix("_peer"), peer.packages)
    with peer.environment() as env:
        return run_inner(
            python,
            script,
            ["--runs", str(runs), "--workers", str(workers)],
            {**python_path_env(), **env},
        )


def main(script: str) -> None:
    """A peer script's command line: `--runs N --workers W`, prints one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--inner", action="store_true")
    args = p.parse_args()
    path = Path(script).resolve()
    if args.inner:
        # the peer by its importable name, as its workers know its tasks (not as __main__)
        peer: Peer = importlib.import_module(path.stem).PEER
        result = drive(peer, args.runs, args.workers)
    else:
        peer = importlib.import_module(f"load.peers.{path.stem}").PEER
        result = run(peer, path, args.runs, args.workers)
    print(json.dumps(result))
