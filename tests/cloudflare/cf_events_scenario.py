"""Events and a signed GitHub delivery through the Worker's `fetch`, written once against a
`post(path, headers, body) -> (status, json)` and a `drain()`, run on the Cloudflare
adapters over fakes (tests/cloudflare/test_cf_events.py) and under real Pyodide through the
real Workers SDK (tests/pyodide/cf_scenario.py). The secret is a Worker var
(`GITHUB_WEBHOOK_SECRET`), read through the platform's settings; deduplication lives in the
Events Durable Object."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from trigger_do import task
from trigger_do.engine import Engine

GITHUB_SECRET = "cf-github-secret"
Post = Callable[[str, dict[str, str], bytes], Awaitable[tuple[int, Any]]]
Drain = Callable[[], Awaitable[Any]]


# GitHub's `create` (a branch or tag made): no other test module subscribes to it, so the
# runs counted here are this module's whatever else the test process imported
@task(id="cf-gh-create", source="github", event="create")
async def cf_gh_create(event: dict[str, Any]) -> str:
    return str(event["payload"]["ref"])


@task(id="cf-user-created", event="cf.user.*")
async def cf_user_created(event: dict[str, Any]) -> str:
    return str(event["user_id"])


def signed_create(
    ref: str, delivery: str, secret: str = GITHUB_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": ref, "ref_type": "branch"}).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": "create",
        "x-github-delivery": delivery,
        "x-hub-signature-256": sig,
    }
    return body, headers


async def run_webhooks(engine: Engine, post: Post, drain: Drain, key: str) -> dict[str, Any]:
    body, headers = signed_create("main", "cf-delivery-1")
    status, first = await post("/webhooks/github", headers, body)
    assert status == 200, first
    status, again = await post("/webhooks/github", headers, body)  # GitHub's redelivery
    wrong_body, wrong = signed_create("main", "cf-delivery-2", secret="wrong")
    bad_status, bad = await post("/webhooks/github", wrong, wrong_body)
    auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    event = json.dumps({"name": "cf.user.created", "payload": {"user_id": "u1"}, "id": "e1"})
    ev_status, sent = await post("/api/v1/events", auth, event.encode())
    _, sent_again = await post("/api/v1/events", auth, event.encode())
    await drain()
    rows = await engine.get_runs([*first["runs"], *sent["runs"]])
    deliveries = await engine.events.page(webhooks=True)
    return {
        "accepted": (status, first["event"], len(first["runs"])),
        "redelivery": (again["duplicate"], again["runs"] == first["runs"]),
        "bad_signature": (bad_status, "does not match" in bad["error"]),
        "event": (ev_status, len(sent["runs"]), sent_again["isCached"]),
        "outputs": sorted((r["task"], r["state"], r["output"]) for r in rows.values()),
        "deliveries": [(d["source"], d["id"], d["name"]) for d in deliveries],
    }


EXPECTED_WEBHOOKS = {
    "accepted": (200, "create", 1),
    "redelivery": (True, True),
    "bad_signature": (401, True),
    "event": (200, 1, True),
    "outputs": [
        ("cf-gh-create", "completed", "main"),
        ("cf-user-created", "completed", "u1"),
    ],
    "deliveries": [("github", "cf-delivery-1", "create")],
}
