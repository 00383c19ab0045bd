"""The Events and Webhooks pages over a real socket: in the navigation, listed newest first,
filtered, escaped, and replayed with a CSRF-checked POST."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from tests.dashboard.conftest import Dashboard, csrf_of


def send_event(dashboard: Dashboard, name: str, payload: object) -> dict:
    with dashboard.api() as api:
        r = api.post("/api/v1/events", json={"name": name, "payload": payload})
        assert r.status_code == 200, r.text
        found: dict = r.json()
        return found


def test_events_are_listed_filtered_and_replayed(dashboard: Dashboard) -> None:
    sent = send_event(dashboard, "dash.ping", {"n": 1})
    other = send_event(dashboard, "dash.other", {})
    with dashboard.browser() as client:
        page = client.get("/events").text
        assert '<a href="/events"' in page and '<a href="/webhooks"' in page  # in the nav
        assert sent["id"] in page and other["id"] in page
        odd = client.get("/events", params={"name": '"><b>odd</b>'}).text  # echoed, escaped
        assert "&#34;&gt;&lt;b&gt;odd&lt;/b&gt;" in odd and "<b>odd</b>" not in odd
        assert f'href="/runs/{sent["runs"][0]}"' in page
        filtered = client.get("/events", params={"name": "dash.ping"}).text
        assert sent["id"] in filtered and other["id"] not in filtered
        assert client.get("/events", params={"name": "x" * 201}).status_code == 400
        assert client.get("/events", params={"cursor": "nope"}).status_code == 400
        # replay: refused without the session's token, accepted with it
        action = f"/events/{sent['id']}/replay"
        assert client.post(action, data={"csrf": "wrong"}).status_code == 403
        r = client.post(action, data={"csrf": csrf_of(page)})
        assert r.status_code == 303, r.text
        after = client.get("/events", params={"name": "dash.ping"}).text
        assert f"(replay of {sent['id']})" in after
        missing = client.post("/events/evt_nope/replay", data={"csrf": csrf_of(page)})
        assert missing.status_code == 404


def test_webhook_deliveries_are_listed_and_replayed(dashboard: Dashboard) -> None:
    delivery = f"d-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"hello": "<script>x</script>"}).encode()
    signature = hmac.new(b"dash-secret", body, hashlib.sha256).hexdigest()
    headers = {"X-Signature": signature, "X-Event": "dash.hook", "X-Delivery-Id": delivery}
    with dashboard.api() as api:
        r = api.post("/webhooks/hmac", content=body, headers=headers)
        assert r.status_code == 200, r.text
        (run_id,) = r.json()["runs"]
    with dashboard.browser() as client:
        page = client.get("/webhooks", params={"source": "hmac"}).text
        assert delivery in page and f'href="/runs/{run_id}"' in page
        assert client.get("/webhooks", params={"source": "github"}).text.count(delivery) == 0
        run_page = client.get(f"/runs/{run_id}").text
        assert "webhook delivery" in run_page and '<a href="/webhooks?source=hmac">' in run_page
        action = f"/webhooks/hmac/{delivery}/replay"
        assert client.post(action, data={"csrf": "wrong"}).status_code == 403
        r = client.post(action, data={"csrf": csrf_of(page)})
        assert r.status_code == 303, r.text
        after = client.get("/webhooks", params={"source": "hmac"}).text
        assert after.count(f'href="/runs/{run_id}"') == 1
        assert after.count("(replay of ") >= 1
