"""A run's page over a real socket: its waits in the timeline (kind, key, due time, state),
its parent, root and children, and the event that started it."""

from __future__ import annotations

import re

from tests.dashboard.conftest import Dashboard


def test_a_waiting_run_shows_its_wait(dashboard: Dashboard) -> None:
    run_id = dashboard.trigger("dash-parent", {"wait": "1h"})
    dashboard.wait_for(run_id, lambda r: r["status"] == "WAITING")
    with dashboard.browser() as client:
        page = client.get(f"/runs/{run_id}").text
    item = re.search(r"<li>[^\n]*waits \(timer\)[^\n]*</li>", page)
    assert item, page
    assert "<strong>cooling-off</strong>" in item.group(0)
    assert " until <time datetime=" in item.group(0)
    assert ">waiting</span>" in item.group(0)
    dashboard.cancel(run_id)


def test_parent_and_child_link_to_each_other(dashboard: Dashboard) -> None:
    parent = dashboard.trigger("dash-parent", {"wait": "1s"})
    dashboard.wait_for(parent, lambda r: r["status"] == "COMPLETED")
    with dashboard.browser() as client:
        page = client.get(f"/runs/{parent}").text
        assert "Related runs" in page and "<caption>Child runs</caption>" in page
        children = re.findall(r'<td><a href="/runs/(run_\w+)">', page)
        assert len(children) == 1, page
        child = children[0]
        # the child wait in the timeline names the child and is done
        assert re.search(rf'waits \(run\)[^\n]*href="/runs/{child}"[^\n]*>done<', page), page
        child_page = client.get(f"/runs/{child}").text
    assert f'<a href="/runs/{parent}" id="run-parent">{parent}</a>' in child_page
    assert 'id="run-root"' not in child_page  # its parent is its root: said once


def test_a_run_an_event_started_says_so(dashboard: Dashboard) -> None:
    with dashboard.api() as api:
        sent = api.post("/api/v1/events", json={"name": "dash.ping", "payload": {"n": 1}})
        assert sent.status_code == 200, sent.text
        body = sent.json()
    (run_id,) = body["runs"]
    with dashboard.browser() as client:
        page = client.get(f"/runs/{run_id}").text
    assert "Started by" in page
    assert f'event <a href="/events?name=dash.ping">{body["id"]}</a>' in page
