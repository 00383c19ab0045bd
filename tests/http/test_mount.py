"""`trigger_do.serve(tasks=module)` mounted under a prefix of the user's own Starlette app
(FastAPI's `app.mount` is the same call), with worker processes on the same database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import examples.tasks
import trigger_do
from tests.http.conftest import ServerThread, free_port
from trigger_do.api.mount import serve
from trigger_do.platform.local.runtime import LocalRuntime

pytestmark = pytest.mark.timeout(180)
KEY = "tr_dev_MountedKeyForTheTests0001"


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "app.db"
    runtime = LocalRuntime("examples.tasks", db, workers=1, poll_interval=0.01)

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("my app")

    app = Starlette(
        routes=[
            Route("/", home),
            Mount("/api/trigger", serve(tasks=examples.tasks, db=db, secret_key=KEY)),
        ]
    )
    port = free_port()
    thread = ServerThread(app, port, runtime)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        thread.stop()


async def test_trigger_through_the_mounted_app(mounted: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=mounted, timeout=30) as http:
        assert (await http.get("/")).text == "my app"
        r = await http.post(
            "/api/trigger/api/v1/tasks/add/trigger", json={"payload": {"a": 2, "b": 3}}
        )
        assert r.status_code == 401
        r = await http.post(
            "/api/trigger/api/v1/tasks/add/trigger",
            json={"payload": {"a": 2, "b": 3}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        run_id = r.json()["id"]
        for _ in range(600):
            run = (await http.get(f"/api/trigger/api/v3/runs/{run_id}", headers=auth)).json()
            if run["isCompleted"]:
                break
            await asyncio.sleep(0.05)
        assert run["status"] == "COMPLETED" and run["output"] == {"sum": 5}
        bad = await http.post(
            "/api/trigger/api/v1/tasks/send-email/trigger", json={"payload": {}}, headers=auth
        )
        assert bad.status_code == 422 and "subject" in bad.json()["error"]
        presign = (await http.put("/api/trigger/api/v2/packets/p.json", headers=auth)).json()
        assert presign["presignedUrl"].startswith(f"{mounted}/api/trigger/packets/uploads/")


async def test_python_sdk_against_the_mount(mounted: str) -> None:
    trigger_do.configure(api_url=f"{mounted}/api/trigger", secret_key=KEY)
    try:
        handle = await examples.tasks.add.trigger({"a": 40, "b": 2})
        assert await handle.result(timeout=60) == {"sum": 42}
        assert (await handle.status()).api_status == "COMPLETED"
    finally:
        trigger_do.configure()
