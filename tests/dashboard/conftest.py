"""A trigger.do server for the dashboard's tests: real worker processes on a real SQLite
file, the app (API + dashboard) on uvicorn over a real socket (tests/http's fixtures)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.dashboard.tasks_dash  # noqa: F401  (the app validates payloads against these)
from tests.http.conftest import KEY, TASKS, ServerThread, free_port
from trigger_do.api.app import create_app
from trigger_do.dashboard.login import login_url
from trigger_do.platform.local.runtime import LocalRuntime

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Dashboard:
    url: str
    key: str
    db: Path
    app: Any
    runtime: LocalRuntime

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def login_link(self) -> str:
        """A one-time login URL, as `trigger-do dev` prints one."""
        return login_url(self.app, self.url, time.time())

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    @contextmanager
    def browser(self) -> Iterator[httpx.Client]:
        """A signed-in client (its session cookie set by the one-time link)."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            response = client.get(self.login_link())
            assert response.status_code == 303, response.text
            yield client

    def trigger(self, task: str, payload: Any = None, **options: Any) -> str:
        with self.api() as api:
            r = api.post(
                f"/api/v1/tasks/{task}/trigger", json={"payload": payload, "options": options}
            )
            assert r.status_code == 200, r.text
            run_id: str = r.json()["id"]
            return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/api/v3/runs/{run_id}")
            assert r.status_code == 200, r.text
            found: dict[str, Any] = r.json()
            return found

    def cancel(self, run_id: str) -> None:
        with self.api() as api:
            api.post(f"/api/v2/runs/{run_id}/cancel")

    def queue(self, name: str) -> dict[str, Any]:
        with self.api() as api:
            r = api.get(f"/api/v1/queues/{name}")
            assert r.status_code == 200, r.text
            found: dict[str, Any] = r.json()
            return found

    def wait_for(self, run_id: str, ok: Callable[[dict[str, Any]], bool], seconds: float = 30):
        deadline = time.monotonic() + seconds
        while True:
            run = self.run(run_id)
            if ok(run):
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.05)


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, page[:2000]
    return found.group(1)


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    db = tmp_path_factory.mktemp("dashboard") / "d.db"
    runtime = LocalRuntime(
        [*TASKS, "tests.dashboard.tasks_dash"], db, workers=2, lease_seconds=5.0, poll_interval=0.01
    )
    app = create_app(runtime.engine, KEY)
    port = free_port()
    thread = ServerThread(app, port, runtime)
    thread.start()
    try:
        yield Dashboard(f"http://127.0.0.1:{port}", KEY, db, app, runtime)
    finally:
        thread.stop()
