"""Property: whatever a signed-in browser sends to the dashboard (filters in the URL, form
fields, raw bodies, ids), the answer is never a 5xx, and a refused request (4xx) writes
nothing. Same quiet server and bounds as test_api_fuzz.py."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Fuzzed
from tests.fuzz.test_api_fuzz import FUZZ, RAW, TYPES, query, query_strings, segment

pytestmark = [pytest.mark.timeout(300)]
FILTERS = ["status", "task", "tag", "period", "from", "to", "batch", "schedule", "key", "bulk",
           "after", "before", "done", "page", "name", "source", "cursor"]  # fmt: skip
FIELDS = ["action", "run", "payload", "delay", "tags", "idempotency_key", "name", "limit",
          "all", "back", "next", "key"]  # fmt: skip
ACTIONS = ["/runs/bulk", "/runs/{id}/cancel", "/runs/{id}/replay", "/tasks/{id}/trigger",
           "/queues/action", "/dead-letters/requeue", "/schedules/{id}/action",
           "/login", "/events/{id}/replay", "/webhooks/{id}/{id}/replay"]  # fmt: skip
PAGES = ["/runs", "/runs/_rows", "/runs/{id}", "/runs/{id}/_live", "/tasks", "/tasks/{id}",
         "/queues", "/dead-letters", "/schedules", "/bulk-actions", "/events",
         "/webhooks"]  # fmt: skip
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def browser(fuzzed: Fuzzed) -> httpx.Client:
    client = httpx.Client(
        base_url=fuzzed.server.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    )
    r = client.post("/login", data={"key": fuzzed.server.key})
    assert r.status_code == 303, r.text
    return client


def token(client: httpx.Client) -> str:
    found = _CSRF.search(client.get("/runs").text)
    assert found
    return found.group(1)


ident = st.one_of(st.sampled_from(["run_x", "add", "http-echo", "sched_x"]), query_strings)


@FUZZ
@given(data=st.data())
def test_pages_never_fail(fuzzed: Fuzzed, browser: httpx.Client, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(PAGES))
    path = path.replace("{id}", segment(data.draw(st.one_of(st.sampled_from(fuzzed.runs), ident))))
    params = data.draw(query(FILTERS))
    r = browser.get(path, params=params)
    assert r.status_code < 500, (path, params, r.text[:500])
    if r.status_code in (200, 400):  # a page, or the page naming a bad filter
        assert r.headers["content-type"].startswith("text/html"), r.headers


@FUZZ
@given(data=st.data())
def test_actions_never_fail_and_a_refusal_writes_nothing(
    fuzzed: Fuzzed, browser: httpx.Client, data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(ACTIONS))
    path = path.replace("{id}", segment(data.draw(st.one_of(st.sampled_from(fuzzed.runs), ident))))
    fields = data.draw(st.lists(st.tuples(st.sampled_from(FIELDS), query_strings), max_size=5))
    if data.draw(st.booleans()):
        fields.append(("csrf", token(browser)))
    raw = data.draw(st.one_of(st.none(), st.sampled_from(RAW)))
    kind = data.draw(st.sampled_from([*TYPES, "application/x-www-form-urlencoded"]))
    body = raw if raw is not None else urlencode(fields).encode()
    headers = {"content-type": kind} if kind else {}
    before = fuzzed.server.state()
    r = browser.post(path, content=body, headers=headers)
    assert r.status_code < 500, (path, fields, raw, kind, r.text[:500])
    if r.status_code >= 400:
        assert fuzzed.server.state() == before, (path, fields, r.status_code)
