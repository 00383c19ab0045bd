"""The embedded runtime: worker processes over one database file, a supervisor that
restarts a dead worker, fires due timers (5 times a second) and runs housekeeping, and
`local()` for tests and scripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

from ...engine import Engine
from ...errors import TriggerDoError
from ...sdk.client import EmbeddedClient, pop_client, push_client
from ...shared.config import EngineConfig
from . import processes
from .platform import EnvSettings, default_db_path, open_local
from .worker import SUPERVISOR_ENV, WORKER_OPTIONS

log = logging.getLogger("trigger_do.runtime")


def module_names(tasks: str | ModuleType | list[str | ModuleType]) -> list[str]:
    """Dotted module paths, from modules, names, or comma-separated names."""
    items = tasks if isinstance(tasks, list) else [tasks]
    names: list[str] = []
    for t in items:
        names += [t.__name__] if isinstance(t, ModuleType) else str(t).split(",")
    return [n.strip() for n in names if n.strip()]


class LocalRuntime:
    """Worker processes serving the tasks modules from the database file `db`."""

    def __init__(
        self,
        tasks: str | ModuleType | list[str | ModuleType],
        db: str | os.PathLike[str] | None = None,
        *,
        workers: int = 2,
        housekeeping_interval: float = 30.0,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        self.modules = module_names(tasks)
        self.db_path = Path(db) if db is not None else default_db_path()
        self.workers = workers
        self.housekeeping_interval = housekeeping_interval
        self.env = env or {}
        self.worker_options = {k: options.pop(k) for k in WORKER_OPTIONS if k in options}
        self.config = EngineConfig.from_settings(EnvSettings(), **options)
        self.platform, self.sql = open_local(self.db_path)
        self.engine = Engine(self.platform, self.config)
        self.client = EmbeddedClient(self.engine)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.storage_lost: str | None = None  # why the database can no longer be trusted
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False

    # --- processes -------------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        config = {**asdict(self.config), **self.worker_options}
        # -P: no implicit cwd first on the path; the parent's path (and its cwd, last)
        # comes through PYTHONPATH, so the worker imports exactly what the parent would
        cmd = [
            sys.executable,
            "-P",
            "-m",
            "trigger_do.platform.local.worker",
            "--tasks",
            ",".join(self.modules),
            "--db",
            str(self.db_path.resolve()),
            "--config",
            json.dumps(config),
        ]
        path = [p for p in (*sys.path, os.getcwd()) if p]
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
        # the worker's own SDK calls (a task triggering a child) and any process it starts
        # use this runtime's database, never the default under the cwd
        env["TRIGGER_DO_DB"] = str(self.db_path.resolve())
        env[SUPERVISOR_ENV] = str(os.getpid())  # the worker stops when this process dies
        return subprocess.Popen(cmd, env=env)

    async def start(self, timeout: float = 60.0) -> None:
        for mod in self.modules:  # fail fast, in this process, on a bad module path
            check_importable(mod)
        started = self.engine.now()
        # a supervisor that died left its workers: stop them before ours start, and release
        # what they (and any worker that died with it) held; then resend what was lost
        orphans = await processes.stop_orphans(self.engine, self.sql, self.config.shutdown_grace)
        if orphans:
            log.warning("stopped %d workers of a supervisor that died", len(orphans))
        resent = await processes.resend_lost(self.engine, self.sql, started)
        if resent:
            log.warning("sent again the messages of %d runs that had lost theirs", resent)
        self.procs = [self._spawn() for _ in range(self.workers)]
        try:
            await self._wait_ready(timeout)
        except BaseException:  # leave no worker behind
            await self.stop(0)
            raise
        self._monitor = asyncio.ensure_future(self._supervise())

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pids = {p.pid for p in self.procs}
            ready = {r[0] for r in self.sql.exec("SELECT pid FROM workers")} & pids
            if len(ready) == len(pids):
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise TriggerDoError(
                    f"a worker exited with code {dead[0].returncode} while starting "
                    "(see its error above)"
                )
            if time.monotonic() > deadline:
                raise TriggerDoError(f"workers not ready after {timeout}s")
            await asyncio.sleep(0.02)

    async def _supervise(self) -> None:
        last_housekeeping = 0.0
        while not self._stopping:
            await asyncio.sleep(0.2)
            if self._storage_check():
                return
            if self.storage_lost is not None:
                continue  # waiting for the workers to exit (poll() reaps them)
            try:  # nothing may end the supervision: it restarts workers, it purges
                for i, proc in enumerate(self.procs):
                    if proc.poll() is not None and not self._stopping:
                        # at once, not when its leases lapse: its runs go to another worker
                        held = await processes.release(self.engine, self.sql, proc.pid)
                        log.warning(
                            "worker %s exited (%s) holding %d runs; they were handed on, and "
                            "another worker starts",
                            proc.pid,
                            proc.returncode,
                            held,
                        )
                        self.sql.exec("DELETE FROM workers WHERE pid = ?", proc.pid)
                        self.procs[i] = self._spawn()
                await self.engine.fire_due_timers()  # ttl expiry and every other timer
                if time.monotonic() - last_housekeeping >= self.housekeeping_interval:
                    last_housekeeping = time.monotonic()
                    await self.engine.housekeeping()
            except Exception:
                log.exception("supervision step failed; trying again")

    def _storage_check(self) -> bool:
        """The database's write-ahead log deleted under us (an operator's mistake): every
        write from now on goes into a file nobody will read. Stop the workers and say so
        (the HTTP API answers 503 from then on); only a restart recovers. True if so."""
        wal = Path(f"{self.db_path}-wal")
        if self.storage_lost is None and wal.exists():
            return False
        if self.storage_lost is None:
            self.storage_lost = (
                f"the database's write-ahead log {wal} vanished while trigger.do was running: "
                "writes no longer reach the database, so nothing more is accepted; restart it "
                "(runs written since the last checkpoint of the log may be lost)"
            )
            log.error("%s", self.storage_lost)
            for proc in self.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        return all(proc.poll() is not None for proc in self.procs)  # reaped: done

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM every worker (graceful: running attempts get `grace` seconds), then wait."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        limit = (self.config.shutdown_grace if grace is None else grace) + 15
        deadline = time.monotonic() + limit
        for proc in self.procs:
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    async def restart_workers(self) -> None:
        """Replace every worker with a fresh process (new task code), one at a time: each
        old one stops gracefully, continuing what it could not finish."""
        for i, proc in enumerate(list(self.procs)):
            self.procs[i] = self._spawn()
            proc.send_signal(signal.SIGTERM)
            while proc.poll() is None:
                await asyncio.sleep(0.05)

    def kill_worker(self, index: int = 0, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to one worker (tests of crash safety). Returns its pid."""
        proc = self.procs[index]
        proc.send_signal(sig)
        return proc.pid


def check_importable(module: str) -> None:
    import importlib.util

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise TriggerDoError(
            f"cannot import tasks module {module!r} (a dotted module path, resolved from "
            f"{cwd} and sys.path)"
        )


@contextlib.asynccontextmanager
async def local(
    tasks: str | ModuleType | list[str | ModuleType],
    db: str | os.PathLike[str] | None = None,
    *,
    workers: int = 2,
    **options: Any,
) -> AsyncIterator[LocalRuntime]:
    """Run the whole engine (its worker processes included) for the block; SDK calls made
    inside it go to this engine. Stops cleanly on exit."""
    runtime = LocalRuntime(tasks, db, workers=workers, **options)
    await runtime.start()
    push_client(runtime.client)
    try:
        yield runtime
    finally:
        pop_client(runtime.client)
        await runtime.stop()
