"""One trigger.do server for the HTTP tests: a `LocalRuntime` (real worker processes, a
real SQLite file) plus the HTTP API on uvicorn on a free port of 127.0.0.1, running in a
thread of its own (its own event loop), so that every test, whatever its loop, talks to
it over a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A small payload limit keeps the 413 tests quick; set before any engine reads it.
os.environ["TRIGGER_DO_PAYLOAD_LIMIT"] = str(256 * 1024)

import examples.tasks  # noqa: F401  (the server validates payloads against these)
import tests.http.tasks_http  # noqa: F401
from trigger_do.api.app import create_app
from trigger_do.api.server import make_server
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.sdk.client import configure
from trigger_do.task import tasks_in

TASKS = ["examples.tasks", "tests.http.tasks_http"]
KEY = "tr_dev_TestKeyForTheHttpApi0001WithSomeMore"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    key: str
    db: Path
    runtime: LocalRuntime

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class ServerThread:
    """Runs `app` (and, optionally, a runtime) on a loop in a background thread."""

    def __init__(self, app: Any, port: int, runtime: LocalRuntime | None = None) -> None:
        self.app, self.port, self.runtime = app, port, runtime
        self.loop = asyncio.new_event_loop()
        self.server = make_server(app, "127.0.0.1", port, handle_signals=False)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.served: Any = None

    def start(self) -> None:
        self.thread.start()
        if self.runtime is not None:
            asyncio.run_coroutine_threadsafe(self.runtime.start(), self.loop).result(120)
        self.served = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
        for _ in range(1000):
            if self.server.started:
                return
            if self.served.done():
                self.served.result()
            threading.Event().wait(0.01)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        if self.served is not None:
            self.served.result(30)
        if self.runtime is not None:
            asyncio.run_coroutine_threadsafe(self.runtime.stop(grace=2), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("http") / "t.db"
    runtime = LocalRuntime(TASKS, db, workers=2, lease_seconds=5.0, poll_interval=0.01)
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", KEY, db, runtime)
    finally:
        thread.stop()


@pytest.fixture(params=["embedded", "remote"])
def mode(request: pytest.FixtureRequest, server: Server) -> Iterator[str]:
    """SDK calls go straight into the database (embedded) or over HTTP (remote)."""
    if request.param == "embedded":
        configure(db=str(server.db))
    else:
        configure(api_url=server.url, secret_key=server.key)
    try:
        yield str(request.param)
    finally:
        configure()


# --- a quiet server: the API alone (no workers), so that every write is a request's -------


@dataclass
class QuietServer:
    """The HTTP API on its own database with no worker: nothing changes it but requests.
    `state()` digests every table's rows and the packet folder, so a test can prove that a
    refused request wrote nothing."""

    url: str
    key: str
    db: Path
    engine: Engine
    loop: asyncio.AbstractEventLoop

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def tasks(self) -> int:
        """How many tasks the server's event loop runs now."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(10)

    @property
    def packets(self) -> Path:
        return self.db.parent / "packets"

    def state(self) -> tuple[dict[str, str], list[tuple[str, int, int]]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            tables = [
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            rows = {
                t: hashlib.sha256(
                    repr(sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"')))).encode()
                ).hexdigest()
                for t in tables
            }
        finally:
            conn.close()
        found = self.packets.rglob("*") if self.packets.exists() else iter(())
        files = sorted(
            (str(p.relative_to(self.packets)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in found
        )
        return rows, files


def quiet_engine(db: Path) -> Engine:
    """An engine on `db` that knows the test tasks (as `trigger_do.serve(tasks=...)`)."""
    known: dict[str, Any] = {}
    for name in TASKS:
        known.update(tasks_in(importlib.import_module(name)))
    platform, _ = open_local(db)
    return Engine(platform, find=known.get)


@pytest.fixture(scope="session")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuietServer]:
    db = tmp_path_factory.mktemp("quiet") / "q.db"
    engine = quiet_engine(db)
    port = free_port()
    thread = ServerThread(create_app(engine, KEY), port)
    thread.start()
    try:
        yield QuietServer(f"http://127.0.0.1:{port}", KEY, db, engine, thread.loop)
    finally:
        thread.stop()
