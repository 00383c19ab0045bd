"""Over a real socket: every page behind a session, the login form and the one-time link,
the cookie's attributes, CSRF refusals that change nothing, escaping and the headers."""

from __future__ import annotations

import httpx
import pytest

from tests.dashboard.conftest import Dashboard, csrf_of
from trigger_do.dashboard.session import COOKIE

PAGES = ["/runs", "/tasks", "/tasks/http-echo", "/queues", "/dead-letters", "/schedules",
         "/bulk-actions"]  # fmt: skip
ACTIONS = ["/runs/bulk", "/runs/run_x/cancel", "/runs/run_x/replay", "/tasks/http-echo/trigger",
           "/queues/action", "/dead-letters/requeue", "/schedules/s/action", "/logout"]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_goes_to_the_login_form(dashboard: Dashboard, path: str) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        r = client.get(path + "?status=FAILED")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")
        assert "%3Fstatus%3DFAILED" in r.headers["location"]  # back to the same filters
        page = client.get(r.headers["location"])
        assert page.status_code == 200 and 'name="key"' in page.text


@pytest.mark.parametrize("path", ACTIONS)
def test_an_action_without_a_session_is_refused(dashboard: Dashboard, path: str) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        r = client.post(path, data={"action": "cancel", "run": "run_x"})
        assert r.status_code == 401


def test_a_live_fragment_without_a_session_sends_the_page_to_login(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        r = client.get("/runs/_rows", headers={"hx-request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"] == "/login"


def test_the_login_form_exchanges_the_key_for_a_signed_cookie(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        wrong = client.post("/login", data={"key": dashboard.key + "x", "next": "/queues"})
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        assert client.get("/queues").status_code == 303
        r = client.post("/login", data={"key": dashboard.key, "next": "/queues"})
        assert r.status_code == 303 and r.headers["location"] == "/queues"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        attributes = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "path=/" in attributes
        assert any(a.startswith("max-age=") and 0 < int(a[8:]) <= 12 * 3600 for a in attributes)
        assert dashboard.key not in cookie
        assert client.get("/queues").status_code == 200


def test_login_never_redirects_off_site(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil", "runs"):
            r = client.post("/login", data={"key": dashboard.key, "next": target})
            assert r.status_code == 303 and r.headers["location"] == "/runs", target


def test_a_one_time_login_link_works_once(dashboard: Dashboard) -> None:
    link = dashboard.login_link()
    with httpx.Client() as first:
        r = first.get(link)
        assert r.status_code == 303 and r.headers["location"] == "/runs"
        assert first.get(f"{dashboard.url}/runs").status_code == 200
    with httpx.Client() as second:
        again = second.get(link)
        assert again.status_code == 401 and "set-cookie" not in again.headers
        assert "used or has expired" in again.text


def test_a_tampered_cookie_is_no_session(dashboard: Dashboard) -> None:
    with dashboard.browser() as client:
        value = client.cookies[COOKIE]
        client.cookies.clear()
        client.cookies.set(COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        assert client.get("/runs").status_code == 303


def test_logout_ends_the_session(dashboard: Dashboard) -> None:
    with dashboard.browser() as client:
        token = csrf_of(client.get("/runs").text)
        r = client.post("/logout", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert client.get("/runs").status_code == 303


def test_a_form_without_its_csrf_token_changes_nothing(dashboard: Dashboard) -> None:
    run_id = dashboard.trigger("http-echo", {"n": 1}, delay="1h")
    with dashboard.browser() as client:
        token = csrf_of(client.get("/runs").text)
        for data, headers in [
            ({}, {}),  # no token
            ({"csrf": token[:-1] + ("y" if token.endswith("x") else "x")}, {}),  # a wrong one
            ({"csrf": token}, {"origin": "https://evil.example"}),  # another site's form
            ({"csrf": token}, {"sec-fetch-site": "cross-site"}),
        ]:
            r = client.post(f"/runs/{run_id}/cancel", data=data, headers=headers)
            assert r.status_code == 403, (data, headers, r.text)
            assert dashboard.run(run_id)["status"] == "DELAYED"
        r = client.post(f"/runs/{run_id}/cancel", data={"csrf": token})
        assert r.status_code == 303
        assert dashboard.run(run_id)["status"] == "CANCELED"


def test_a_form_that_is_not_a_form_is_a_400(dashboard: Dashboard) -> None:
    with dashboard.browser() as client:
        token = csrf_of(client.get("/runs").text)
        r = client.post("/runs/bulk", json={"csrf": token}, headers={"x-csrf-token": token})
        assert r.status_code == 400 and "x-www-form-urlencoded" in r.text


def test_a_script_in_a_payload_or_tag_is_shown_as_text(dashboard: Dashboard) -> None:
    evil = "<script>alert(1)</script>"
    run_id = dashboard.trigger("http-echo", {"x": evil, "y": '"><img src=x onerror=alert(1)>'},
                               tags=["<b>bold</b>"])  # fmt: skip
    dashboard.wait_for(run_id, lambda r: r["status"] == "COMPLETED")
    with dashboard.browser() as client:
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/_live", "/runs", "/tasks/http-echo"):
            page = client.get(path).text
            assert "<script>alert" not in page and "<img src=x" not in page, path
            assert "<b>bold" not in page, path
        detail = client.get(f"/runs/{run_id}")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.text
        csp = detail.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert detail.headers["x-frame-options"] == "DENY"


def test_static_files_are_served_with_their_type_and_version(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.url) as client:  # no session needed (the login page)
        page = client.get("/login").text
        for name, kind in (("htmx.min.js", "text/javascript"), ("dashboard.css", "text/css")):
            assert f"/static/{name}?v=" in page
            versioned = page.split(f"/static/{name}?v=")[1].split('"')[0]
            r = client.get(f"/static/{name}?v={versioned}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            assert "immutable" in r.headers["cache-control"]
        assert client.get("/static/..%2Fsession.py").status_code == 404
        assert client.get("/static/nope.js").status_code == 404
