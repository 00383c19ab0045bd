"""The dashboard in a real headless Chromium: Playwright for Python driving Debian's
`chromium` package (`executable_path`; `playwright install` downloads a browser of its
own, which cannot work here; .ci/run installs `chromium` with apt-get when it is missing).

Each test starts from the one-time login URL `trigger-do dev` prints, against the same
real server as the other dashboard tests (worker processes, SQLite, uvicorn)."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.conftest import Dashboard

CHROMIUM = os.environ.get("TRIGGER_DO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser, dashboard: Dashboard) -> Iterator[Page]:
    """A fresh browser profile, signed in with the printed one-time login URL."""
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.goto(dashboard.login_link())
    expect(page).to_have_url(f"{dashboard.url}/runs")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    yield page
    context.close()
    assert not errors, errors  # no script error, no alert()


def marked(page: Page) -> None:
    """Mark the document: still marked later means the page never reloaded."""
    page.evaluate("window.__sameDocument = true")


def still_marked(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def tag() -> str:
    return f"pw-{uuid.uuid4().hex[:8]}"


def test_trigger_from_the_test_page_and_watch_it_complete(page: Page, dashboard: Dashboard) -> None:
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Tasks").click()
    page.get_by_role("link", name="dash-work").first.click()
    expect(page.get_by_role("heading", name="Test dash-work")).to_be_visible()
    page.get_by_label("Payload (JSON)").fill(json.dumps({"items": 3, "pause": 0.5}))
    page.get_by_role("button", name="Trigger").click()
    expect(page).to_have_url(re.compile(r"/runs/run_\w+$"))
    status = page.locator("#run-status")
    expect(status).not_to_have_text("COMPLETED")  # it is running while we watch
    marked(page)
    expect(status).to_have_text("COMPLETED")  # ... until the page updates itself
    assert still_marked(page)
    expect(page.get_by_text("item 2 of 3")).to_be_visible()  # its logs
    expect(page.locator("pre.json").first).to_contain_text('"done": 3')  # its output
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


def test_a_metadata_change_and_a_new_run_show_up_without_reloading(
    page: Page, dashboard: Dashboard
) -> None:
    run_id = dashboard.trigger("http-echo", {}, delay="1h")
    page.goto(f"{dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("DELAYED")
    marked(page)
    with dashboard.api() as api:
        body = {"metadata": {"stage": "<i>shipped</i>"}}
        assert api.put(f"/api/v1/runs/{run_id}/metadata", json=body).status_code == 200
    metadata = page.get_by_role("region", name="Metadata")
    expect(metadata).to_contain_text('"stage": "<i>shipped</i>"')  # as text: escaped
    assert still_marked(page)
    dashboard.cancel(run_id)
    expect(page.locator("#run-status")).to_have_text("CANCELED")
    # the list: a new run with its tag appears in the rows while the page is open
    label = tag()
    page.goto(f"{dashboard.url}/runs?tag={label}")
    marked(page)
    fresh = dashboard.trigger("http-echo", {}, tags=[label], delay="1h")
    expect(page.get_by_role("link", name=fresh)).to_be_visible()
    assert still_marked(page)
    dashboard.cancel(fresh)


def test_filter_the_list(page: Page, dashboard: Dashboard) -> None:
    mine = tag()
    done = dashboard.trigger("http-echo", {"f": 1}, tags=[mine])
    dashboard.wait_for(done, lambda r: r["status"] == "COMPLETED")
    delayed = dashboard.trigger("http-echo", {"f": 2}, tags=[mine], delay="1h")
    page.get_by_label("Tag").fill(mine)
    page.get_by_label("Status").select_option(["DELAYED"])
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(rf"status=DELAYED.*tag={mine}"))
    rows = page.locator("#run-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(delayed)
    page.get_by_role("link", name="Clear filters").click()
    expect(page.get_by_role("link", name=done)).to_be_visible()
    dashboard.cancel(delayed)


def test_cancel_a_delayed_run(page: Page, dashboard: Dashboard) -> None:
    run_id = dashboard.trigger("http-echo", {"c": 1}, delay="1h")
    page.goto(f"{dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("DELAYED")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-status")).to_have_text("CANCELED")
    assert dashboard.run(run_id)["status"] == "CANCELED"


def test_replay_with_an_edited_payload(page: Page, dashboard: Dashboard) -> None:
    first = dashboard.trigger("dash-work", {"items": 1})
    dashboard.wait_for(first, lambda r: r["status"] == "COMPLETED")
    page.goto(f"{dashboard.url}/runs/{first}")
    page.get_by_label("Payload (JSON; edit it to replay with another)").fill('{"items": 5}')
    page.get_by_role("button", name="Replay", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/(?!{first})run_\w+$"))
    expect(page.locator("#run-status")).to_have_text("COMPLETED")
    expect(page.get_by_role("link", name=first)).to_be_visible()  # "Replay of"
    replay = page.url.rsplit("/", 1)[1]
    assert dashboard.run(replay)["payload"] == {"items": 5, "pause": 0.0}


def test_bulk_cancel_a_selection(page: Page, dashboard: Dashboard) -> None:
    mine = tag()
    runs = [dashboard.trigger("http-echo", {"b": i}, tags=[mine], delay="1h") for i in range(3)]
    page.goto(f"{dashboard.url}/runs?tag={mine}")
    expect(page.locator("#run-rows tr")).to_have_count(3)
    page.get_by_label(f"Select run {runs[0]}").check()
    marked(page)
    page.wait_for_timeout(2600)  # a poll of the list swapped the rows meanwhile
    assert still_marked(page)
    expect(page.get_by_label(f"Select run {runs[0]}")).to_be_checked()  # kept across it
    page.get_by_label(f"Select run {runs[1]}").check()
    page.get_by_role("button", name="Cancel selected").click()
    expect(page.get_by_role("status")).to_contain_text("2 of 2 done")
    assert [dashboard.run(r)["status"] for r in runs] == ["CANCELED", "CANCELED", "DELAYED"]
    row = page.locator("#run-rows tr", has_text=runs[0])
    expect(row).to_contain_text("CANCELED")
    dashboard.cancel(runs[2])


def test_pause_and_resume_a_queue(page: Page, dashboard: Dashboard) -> None:
    name = "task/http-limited"
    page.get_by_role("link", name="Queues").click()
    page.get_by_role("button", name=f"Pause {name}").click()
    expect(page.get_by_role("button", name=f"Resume {name}")).to_be_visible()
    assert dashboard.queue(name)["paused"] is True
    page.get_by_role("button", name=f"Resume {name}").click()
    expect(page.get_by_role("button", name=f"Pause {name}")).to_be_visible()
    assert dashboard.queue(name)["paused"] is False


def test_a_script_payload_is_inert(page: Page, dashboard: Dashboard) -> None:
    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    run_id = dashboard.trigger("http-echo", {"x": evil}, tags=["<b onmouseover=alert(3)>t</b>"])
    page.goto(f"{dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("COMPLETED")  # live-swapped in, too
    expect(page.get_by_text("window.__pwned = 1").first).to_be_visible()  # shown as text
    page.goto(f"{dashboard.url}/runs")
    page.get_by_text("<b onmouseover=alert(3)>t</b>").first.hover()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0


def test_usable_on_a_phone_and_by_keyboard(chromium: Browser, dashboard: Dashboard) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(dashboard.login_link())
    for path in ("/runs", "/tasks", "/queues", "/dead-letters", "/schedules"):
        page.goto(f"{dashboard.url}{path}")
        width: Any = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)  # wide tables scroll inside their box
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    context.close()
