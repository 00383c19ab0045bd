"""Every dashboard action over a real socket, checked through the HTTP API: trigger from a
task's test form, cancel, replay with an edited payload, bulk cancel and replay, queue
pause/resume/limit, dead-letter requeue, schedule (de)activation; the list's filters; and
bad input as a 4xx page that changes nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.dashboard.conftest import Dashboard, csrf_of
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.runs.index import RunIndexObject

RUN_LINK = re.compile(r'href="/runs/(run_\w+)"')


class Browser:
    """A signed-in client that posts forms with the session's CSRF token."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.csrf = csrf_of(client.get("/runs").text)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params) if params else self.client.get(path)

    def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]]) -> httpx.Response:
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        return self.client.post(
            path,
            content=urlencode([("csrf", self.csrf), *pairs]),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )


@pytest.fixture
def browser(dashboard: Dashboard) -> Iterator[Browser]:
    with dashboard.browser() as client:
        yield Browser(client)


def new_run(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/runs/run_"), location
    return location.removeprefix("/runs/")


def listed(page: str) -> set[str]:
    return set(RUN_LINK.findall(page))


def test_a_task_test_form_triggers_a_run(dashboard: Dashboard, browser: Browser) -> None:
    form = browser.get("/tasks/dash-work")
    assert form.status_code == 200 and "Payload schema" in form.text  # its pydantic model
    run_id = new_run(
        browser.post(
            "/tasks/dash-work/trigger",
            {"payload": '{"items": 3}', "tags": "from-form, t2", "idempotency_key": "form-1"},
        )
    )
    run = dashboard.wait_for(run_id, lambda r: r["status"] == "COMPLETED")
    assert run["payload"] == {"items": 3, "pause": 0.0} and run["output"] == {"done": 3}
    assert set(run["tags"]) == {"from-form", "t2"}
    page = browser.get(f"/runs/{run_id}").text
    for text in ("COMPLETED", "item-2", "measure", "item 2 of 3", "form-1", "from-form"):
        assert text in page, text
    # its payload is offered on the form next time
    assert "Recent payloads" in browser.get("/tasks/dash-work").text


def test_a_retried_run_shows_its_failed_attempt(dashboard: Dashboard, browser: Browser) -> None:
    run_id = dashboard.trigger("sync-data", {"source_id": "crm", "fail_times": 1})
    run = dashboard.wait_for(run_id, lambda r: r["status"] == "COMPLETED")
    assert run["attemptCount"] == 2
    page = browser.get(f"/runs/{run_id}").text
    timeline = page.split('id="timeline-h"')[1].split("</ol>")[0]
    assert "attempt 1 failed" in timeline and "crm unavailable" in timeline, timeline
    assert "[attempt 2]</span> synced" in page


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        ({"payload": "{not json"}, 400, "payload: not JSON"),
        ({"payload": '{"items": "many"}'}, 422, "items"),
        ({"payload": "{}", "delay": "soon"}, 400, "delay"),
    ],
)
def test_a_bad_test_form_is_a_4xx_page_and_triggers_nothing(
    dashboard: Dashboard, browser: Browser, data: dict[str, str], status: int, words: str
) -> None:
    before = listed(browser.get("/runs", task="dash-work").text)
    r = browser.post("/tasks/dash-work/trigger", data)
    assert r.status_code == status and words in r.text, r.text
    assert listed(browser.get("/runs", task="dash-work").text) == before


def test_an_unknown_task_or_run_is_a_404_page(browser: Browser) -> None:
    r = browser.post("/tasks/no-such-task/trigger", {"payload": "{}"})
    assert r.status_code == 404 and "no-such-task" in r.text
    assert browser.get("/runs/run_nope").status_code == 404
    assert browser.post("/runs/run_nope/cancel", {}).status_code == 404


def test_cancel_a_delayed_run(dashboard: Dashboard, browser: Browser) -> None:
    run_id = dashboard.trigger("http-echo", {"n": 1}, delay="1h")
    page = browser.get(f"/runs/{run_id}").text
    assert "DELAYED" in page and "Cancel run" in page
    r = browser.post(f"/runs/{run_id}/cancel", {})
    assert r.status_code == 303 and r.headers["location"] == f"/runs/{run_id}"
    assert dashboard.run(run_id)["status"] == "CANCELED"
    assert "Cancel run" not in browser.get(f"/runs/{run_id}").text


def test_replay_with_an_edited_payload(dashboard: Dashboard, browser: Browser) -> None:
    first = dashboard.trigger("dash-work", {"items": 1})
    dashboard.wait_for(first, lambda r: r["status"] == "COMPLETED")
    again = new_run(browser.post(f"/runs/{first}/replay", {"payload": '{"items": 4}'}))
    run = dashboard.wait_for(again, lambda r: r["status"] == "COMPLETED")
    assert run["payload"] == {"items": 4, "pause": 0.0} and run["output"] == {"done": 4}
    assert f'href="/runs/{first}"' in browser.get(f"/runs/{again}").text  # "replay of"
    # validated as a trigger is: nothing made from a payload the task refuses
    bad = browser.post(f"/runs/{first}/replay", {"payload": '{"items": "x"}'})
    assert bad.status_code == 422 and "items" in bad.text


def test_bulk_cancel_and_replay_a_selection(dashboard: Dashboard, browser: Browser) -> None:
    delayed = [dashboard.trigger("http-echo", {"i": i}, delay="1h") for i in range(3)]
    back = "/runs?status=DELAYED"
    r = browser.post(
        "/runs/bulk", [("action", "cancel"), ("back", back), *(("run", d) for d in delayed[:2])]
    )
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith(back + "&done=bulk_"), location
    assert [dashboard.run(d)["status"] for d in delayed] == ["CANCELED", "CANCELED", "DELAYED"]
    notice = browser.get(location).text
    assert "Bulk cancel" in notice and "2 of 2 done" in notice
    bulk_id = location.split("done=")[1]
    assert listed(browser.get("/runs", bulk=bulk_id).text) == set(delayed[:2])

    r = browser.post("/runs/bulk", [("action", "replay"), ("run", delayed[2])])
    bulk_id = r.headers["location"].split("done=")[1]
    with dashboard.api() as api:
        action = api.get(f"/api/v1/bulk-actions/{bulk_id}").json()
    assert action["status"] == "COMPLETED", action
    assert "replay" in browser.get("/bulk-actions").text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([("action", "cancel")], "select at least one run"),
        ([("action", "delete"), ("run", "run_x")], "action: choose cancel or replay"),
    ],
)
def test_a_bad_bulk_form_is_a_400(
    browser: Browser, data: list[tuple[str, str]], words: str
) -> None:
    r = browser.post("/runs/bulk", data)
    assert r.status_code == 400 and words in r.text


def test_the_list_filters_live_in_the_url(dashboard: Dashboard, browser: Browser) -> None:
    done = dashboard.trigger("http-echo", {"f": 1}, tags=["filter-me"], idempotencyKey="fk-1")
    dashboard.wait_for(done, lambda r: r["status"] == "COMPLETED")
    waiting = dashboard.trigger("http-echo", {"f": 2}, tags=["filter-me"], delay="1h")
    other = dashboard.trigger("dash-work", {"items": 0}, tags=["filter-me"])
    dashboard.wait_for(other, lambda r: r["status"] == "COMPLETED")

    def ids(**query: Any) -> set[str]:
        r = browser.get("/runs", **query)
        assert r.status_code == 200, r.text
        return listed(r.text) & {done, waiting, other}

    assert ids(tag="filter-me") == {done, waiting, other}
    assert ids(tag="filter-me", status="DELAYED") == {waiting}
    assert ids(tag="filter-me", status="COMPLETED", task="http-echo") == {done}
    assert ids(key="fk-1") == {done}
    assert ids(tag="filter-me", period="1h") == {done, waiting, other}
    assert ids(tag="filter-me", to="2000-01-01T00:00") == set()
    # the live fragment keeps the filters
    rows = browser.get("/runs/_rows", tag="filter-me", status="DELAYED")
    assert rows.text.lstrip().startswith("<tbody") and listed(rows.text) == {waiting}
    assert 'hx-get="/runs/_rows?status=DELAYED&amp;tag=filter-me&amp;seen=' in rows.text
    dashboard.trigger("http-echo", {}, tags=["filter-me"], delay="1h")  # tidy: cancel them
    with dashboard.api() as api:
        for run in api.get("/api/v1/runs", params={"filter[tag]": "filter-me"}).json()["data"]:
            api.post(f"/api/v2/runs/{run['id']}/cancel")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"status": "SLEEPY"}, "status: unknown status"),
        ({"period": "forever"}, "period"),
        ({"from": "yesterday"}, "from: not a date"),
        ({"after": "nope"}, "after: not a page cursor"),
    ],
)
def test_a_bad_filter_is_named_on_a_400_page(
    browser: Browser, query: dict[str, str], words: str
) -> None:
    r = browser.get("/runs", **query)
    assert r.status_code == 400 and words in r.text, r.text


def test_pages_of_runs(dashboard: Dashboard, browser: Browser) -> None:
    from trigger_do.dashboard.filters import PAGE_SIZE

    with dashboard.api() as api:
        r = api.post(
            "/api/v2/tasks/batch",
            json={"items": [{"task": "http-echo", "payload": {"p": i},
                             "options": {"tags": ["paged"]}} for i in range(PAGE_SIZE + 5)]},
        )  # fmt: skip
        assert r.status_code == 200, r.text
    first = browser.get("/runs", tag="paged").text
    older = re.search(r'href="(/runs\?[^"]*after=[^"]+)" rel="next"', first)
    assert older, first
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    assert len(listed(first)) == PAGE_SIZE and len(listed(second)) == 5
    assert not listed(first) & listed(second)
    assert 'rel="prev"' in second


def test_pause_resume_and_limit_a_queue(dashboard: Dashboard, browser: Browser) -> None:
    name = "task/http-limited"
    assert name in browser.get("/queues").text

    def queue() -> dict[str, Any]:
        with dashboard.api() as api:
            found: dict[str, Any] = api.get(f"/api/v1/queues/{name}").json()
            return found

    assert browser.post("/queues/action", {"name": name, "action": "pause"}).status_code == 303
    assert queue()["paused"] is True
    assert f'aria-label="Resume {name}"' in browser.get("/queues").text
    assert browser.post("/queues/action", {"name": name, "action": "resume"}).status_code == 303
    assert queue()["paused"] is False
    r = browser.post("/queues/action", {"name": name, "action": "limit", "limit": "7"})
    assert r.status_code == 303 and queue()["concurrencyLimit"] == 7
    browser.post("/queues/action", {"name": name, "action": "limit", "limit": ""})
    assert queue()["concurrencyLimit"] == 2  # the declared limit again
    for data, words in [
        ({"name": name, "action": "limit", "limit": "lots"}, "limit: not a whole number"),
        ({"name": name, "action": "explode"}, "action: choose"),
    ]:
        r = browser.post("/queues/action", data)
        assert r.status_code == 400 and words in r.text
    r = browser.post("/queues/action", {"name": "task/nope", "action": "pause"})
    assert r.status_code == 404


def test_requeue_a_dead_letter(dashboard: Dashboard, browser: Browser) -> None:
    run_id = dashboard.trigger("http-echo", {"dead": 1}, delay="1h")

    async def bury() -> None:  # as the dead-letter queue's consumer records one
        platform, _ = open_local(dashboard.db)
        engine = Engine(platform)
        letter = {"run_id": run_id, "task": "http-echo", "dispatch": 1, "body": "{}",
                  "deliveries": 4, "reason": "max deliveries exceeded"}  # fmt: skip
        await engine.index.on(run_id)(RunIndexObject.dead_letter, [letter], engine.now())

    asyncio.run(bury())
    assert dashboard.run(run_id)["status"] == "CRASHED"
    page = browser.get("/dead-letters").text
    assert run_id in page and "max deliveries exceeded" in page
    assert browser.post("/dead-letters/requeue", {}).status_code == 400
    assert browser.post("/dead-letters/requeue", {"run": run_id}).status_code == 303
    dashboard.wait_for(run_id, lambda r: r["status"] == "COMPLETED")
    assert run_id not in browser.get("/dead-letters").text


def test_activate_and_deactivate_a_schedule(dashboard: Dashboard, browser: Browser) -> None:
    with dashboard.api() as api:
        made = api.post(
            "/api/v1/schedules",
            json={"task": "dash-report", "cron": "0 9 * * 1", "deduplicationKey": "dash-1",
                  "externalId": "<i>acme</i>"},
        )  # fmt: skip
        assert made.status_code == 200, made.text
        schedule_id = made.json()["id"]

        def active() -> bool:
            found: bool = api.get(f"/api/v1/schedules/{schedule_id}").json()["active"]
            return found

        page = browser.get("/schedules").text
        assert schedule_id in page and "0 9 * * 1" in page and "&lt;i&gt;acme" in page
        r = browser.post(f"/schedules/{schedule_id}/action", {"action": "deactivate"})
        assert r.status_code == 303 and active() is False
        browser.post(f"/schedules/{schedule_id}/action", {"action": "activate"})
        assert active() is True
        r = browser.post("/schedules/sched_nope/action", {"action": "activate"})
        assert r.status_code == 404
