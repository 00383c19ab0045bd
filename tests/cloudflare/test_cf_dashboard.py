"""The dashboard through the Worker's `fetch` (the same app as `trigger-do dev`), over the
Cloudflare bindings: sign in, see a run, cancel it with a form, load a static file."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from cf_fakes import FakeRequest, make_cloud

import examples.tasks  # noqa: F401  (registers the example tasks)

KEY = "tr_test_secret"
BASE = "https://trigger-do.example.workers.dev"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def header(res: Any, name: str) -> str:
    found: str = next(v for k, v in res.headers if k.lower() == name)
    return found


async def test_sign_in_see_and_cancel_a_run_on_the_worker() -> None:
    cloud = make_cloud(shards=4)
    api = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    body = json.dumps({"payload": {"a": 1, "b": 2}, "options": {"delay": "1h"}}).encode()
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/api/v1/tasks/add/trigger", api, body)
    )
    run_id = res.json()["id"]

    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/runs", {}))
    assert res.status == 303 and header(res, "location").startswith("/login")
    wrong = urlencode({"key": "nope"}).encode()
    res = await cloud.worker.fetch(FakeRequest("POST", f"{BASE}/login", FORM, wrong))
    assert res.status == 401
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/login", FORM, urlencode({"key": KEY}).encode())
    )
    assert res.status == 303
    cookie = header(res, "set-cookie")
    assert "Secure" in cookie and "HttpOnly" in cookie and KEY not in cookie  # https
    session = {"cookie": cookie.split(";")[0]}

    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/runs/{run_id}", session))
    assert res.status == 200 and b"DELAYED" in res.body, res.body[:500]
    page = res.body
    csrf = re.search(rb'name="csrf" value="([^"]+)"', res.body)
    assert csrf
    form = urlencode({"csrf": csrf.group(1).decode()}).encode()
    res = await cloud.worker.fetch(
        FakeRequest("POST", f"{BASE}/runs/{run_id}/cancel", {**session, **FORM}, form)
    )
    assert res.status == 303, res.body
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/api/v3/runs/{run_id}", api))
    assert res.json()["status"] == "CANCELED"
    # the live fragment, asked from the offset the page was drawn at, answers the change
    seen = re.search(rb'_live\?seen=([^"]+)"', page)
    assert seen
    live = f"{BASE}/runs/{run_id}/_live?seen={seen.group(1).decode()}"
    res = await cloud.worker.fetch(FakeRequest("GET", live, session))
    assert res.status == 200 and b">CANCELED<" in res.body, res.body[:500]
    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/events", session))
    assert res.status == 200 and b"<h1>Events</h1>" in res.body

    res = await cloud.worker.fetch(FakeRequest("GET", f"{BASE}/static/htmx.min.js", {}))
    assert res.status == 200 and header(res, "content-type").startswith("text/javascript")
