"""A quiet trigger.do API server for the fuzz tests (no worker: only requests change its
database), seeded with a few real runs, a pending batch and an uploaded packet, so that
generated requests reach real objects as well as missing ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.http.conftest import KEY, QuietServer, ServerThread, free_port, quiet_engine
from trigger_do.api.app import create_app


@dataclass
class Fuzzed:
    server: QuietServer
    client: httpx.Client
    runs: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    db = tmp_path_factory.mktemp("fuzz") / "f.db"
    engine = quiet_engine(db)
    port = free_port()
    thread = ServerThread(create_app(engine, KEY), port)
    thread.start()
    server = QuietServer(f"http://127.0.0.1:{port}", KEY, db, engine, thread.loop)
    # one connection per request: a server error that drops its connection is seen as such
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    client = httpx.Client(base_url=server.url, headers=server.headers, timeout=60, limits=no_reuse)
    try:
        out = Fuzzed(server, client)
        for tags in (["fuzz"], ["fuzz", "b"], []):
            body = {"payload": {"a": 1, "b": 2}, "options": {"delay": "1h", "tags": tags}}
            out.runs.append(client.post("/api/v1/tasks/add/trigger", json=body).json()["id"])
        out.batches.append(client.post("/api/v3/batches", json={"runCount": 3}).json()["id"])
        made = client.put("/api/v2/packets/fuzz/payload.json").json()
        httpx.put(made["presignedUrl"], content=b'{"json": {"a": 1, "b": 2}}')
        out.uploads.append(made["storagePath"])
        yield out
    finally:
        client.close()
        thread.stop()
