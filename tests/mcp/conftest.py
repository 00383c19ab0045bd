"""A trigger.do server (real workers, uvicorn on a real socket) serving the MCP tests' tasks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.mcp.mcp_tasks  # noqa: F401  (the server validates payloads against these)
from tests.http.conftest import ServerThread, free_port
from trigger_do.api.app import create_app
from trigger_do.platform.local.runtime import LocalRuntime

KEY = "tr_dev_TestKeyForTheMcpTools000001WithSomeMore"


@dataclass
class HttpServer:
    url: str
    key: str
    db: Path
    runtime: LocalRuntime


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    db = tmp_path_factory.mktemp("mcp") / "t.db"
    runtime = LocalRuntime(["tests.mcp.mcp_tasks"], db, workers=1, poll_interval=0.01)
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{port}", KEY, db, runtime)
    finally:
        thread.stop()
