"""The dashboard inside another app: `app.mount("/ops", trigger_do.serve(...))` serves it
at `/ops/`, every link, redirect and the cookie's path under that prefix."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.http.conftest import KEY, ServerThread, free_port, quiet_engine
from trigger_do.api.app import create_app
from trigger_do.dashboard.login import login_url


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    inner = create_app(quiet_engine(tmp_path_factory.mktemp("mounted") / "m.db"), KEY)
    outer = Starlette(routes=[Mount("/ops", app=inner)])
    port = free_port()
    thread = ServerThread(outer, port)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", inner
    finally:
        thread.stop()


def test_the_dashboard_under_a_prefix(mounted: tuple[str, Any]) -> None:
    url, inner = mounted
    with httpx.Client(base_url=url) as client:
        r = client.get("/ops/queues")
        assert r.status_code == 303 and r.headers["location"] == "/ops/login?next=%2Fqueues"
        r = client.get(login_url(inner, f"{url}/ops", time.time()))
        assert r.status_code == 303 and r.headers["location"] == "/ops/runs"
        assert "path=/ops/" in r.headers["set-cookie"].lower()
        page = client.get("/ops/runs")
        assert page.status_code == 200
        links = re.findall(r'(?:href|action|src|hx-get)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/ops/") for link in links), links
        static = re.search(r'src="(/ops/static/htmx\.min\.js\?v=\w+)"', page.text)
        assert static and client.get(static.group(1)).status_code == 200
        assert client.get("/ops/api/v1/runs").status_code == 401  # the API still wants its key
