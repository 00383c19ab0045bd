"""Live fragments are held in the realtime watcher (live.py): over a real socket, a request
with the offset the page was drawn at waits while nothing changes and answers as soon as
the run does (its metadata, its status); without `seen` it answers at once."""

from __future__ import annotations

import html
import re
import threading
import time
from typing import Any

import httpx

from tests.dashboard.conftest import Dashboard

LIVE = re.compile(r'hx-get="([^"]*seen=[^"]*)"')


def live_url(page: str) -> str:
    found = LIVE.search(page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def held(client: httpx.Client, url: str) -> tuple[threading.Thread, dict[str, Any]]:
    answer: dict[str, Any] = {}

    def ask() -> None:
        answer["response"] = client.get(url)
        answer["at"] = time.monotonic()

    thread = threading.Thread(target=ask)
    thread.start()
    return thread, answer


def test_a_run_page_is_held_until_the_run_changes(dashboard: Dashboard) -> None:
    run_id = dashboard.trigger("http-echo", {}, delay="1h")
    with dashboard.browser() as client, dashboard.api() as api:
        url = live_url(client.get(f"/runs/{run_id}").text)
        assert url.startswith(f"/runs/{run_id}/_live?seen=")
        thread, answer = held(client, url)
        thread.join(1.0)
        assert thread.is_alive()  # nothing changed: the request is held
        r = api.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": {"stage": "<b>two</b>"}})
        assert r.status_code == 200, r.text
        changed = time.monotonic()
        thread.join(10.0)
        assert not thread.is_alive()
        assert answer["at"] - changed < 5.0
        fragment = answer["response"].text
        assert answer["response"].status_code == 200
        assert "&lt;b&gt;two&lt;/b&gt;" in fragment and "<b>two</b>" not in fragment  # escaped
        # the answer asks again from its own, newer offset; then a cancel wakes it
        again = live_url(fragment)
        assert again != url
        thread, answer = held(client, again)
        thread.join(0.5)
        assert thread.is_alive()
        dashboard.cancel(run_id)
        thread.join(10.0)
        assert not thread.is_alive()
        assert 'id="run-status">CANCELED<' in answer["response"].text
        assert "hx-get" not in answer["response"].text  # final: nothing left to watch


def test_without_an_offset_a_fragment_answers_at_once(dashboard: Dashboard) -> None:
    run_id = dashboard.trigger("http-echo", {}, delay="1h")
    with dashboard.browser() as client:
        started = time.monotonic()
        r = client.get(f"/runs/{run_id}/_live")
        assert r.status_code == 200 and time.monotonic() - started < 5.0
        assert live_url(r.text).startswith(f"/runs/{run_id}/_live?seen=")
        rows = client.get("/runs/_rows", params={"tag": "nothing-here"})
        assert rows.status_code == 200 and "seen=" in rows.text
    dashboard.cancel(run_id)


def test_the_runs_list_is_held_until_a_run_appears(dashboard: Dashboard) -> None:
    tag = f"live-{time.monotonic_ns()}"
    with dashboard.browser() as client:
        url = live_url(client.get("/runs", params={"tag": tag}).text)
        assert f"tag={tag}" in url
        thread, answer = held(client, url)
        thread.join(1.0)
        assert thread.is_alive()
        run_id = dashboard.trigger("http-echo", {}, tags=[tag], delay="1h")
        thread.join(10.0)
        assert not thread.is_alive()
        assert run_id in answer["response"].text
        # it now watches from its oldest row: a change to a shown run wakes it too
        again = live_url(answer["response"].text)
        assert "&since=" in again and again != url
        thread, answer = held(client, again)
        thread.join(0.5)
        assert thread.is_alive()
        dashboard.cancel(run_id)
        thread.join(10.0)
        assert not thread.is_alive()
        assert "CANCELED" in answer["response"].text
