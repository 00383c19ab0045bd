"""Events and webhooks over a real socket (uvicorn on 127.0.0.1, the API alone on its own
database, no worker: every write is a request's). Each preset signs with a real HMAC the way
its sender does; every refused delivery is proven to write nothing (a digest of every table
and the packet folder, before and after); a redelivery is deduplicated; replays make new
runs; the deliveries log and the events list page with cursors; the CLI lists both."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.events import tasks_events
from tests.http.conftest import QuietServer, ServerThread, free_port
from trigger_do.api.app import create_app
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.task import tasks_in

KEY = "tr_dev_EventsTestKey0000000000001"
GITHUB_SECRET = "gh-secret-for-tests"
ACME_SECRET = "acme-secret-for-tests"
HMAC_SECRET = "hmac-secret-for-tests"
STRIPE_SECRET = tasks_events.STRIPE_SECRET
ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuietServer]:
    names = ("GITHUB_WEBHOOK_SECRET", "ACME_WEBHOOK_SECRET", "HMAC_WEBHOOK_SECRET")
    saved = {k: os.environ.get(k) for k in names}
    os.environ["GITHUB_WEBHOOK_SECRET"] = GITHUB_SECRET
    os.environ["ACME_WEBHOOK_SECRET"] = ACME_SECRET
    os.environ["HMAC_WEBHOOK_SECRET"] = HMAC_SECRET
    db = tmp_path_factory.mktemp("events") / "e.db"
    platform, _ = open_local(db)
    engine = Engine(platform, find=tasks_in(tasks_events).get)  # whatever else is imported
    port = free_port()
    thread = ServerThread(create_app(engine, KEY), port)
    thread.start()
    try:
        yield QuietServer(f"http://127.0.0.1:{port}", KEY, db, engine, thread.loop)
    finally:
        thread.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hexmac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def github(
    body: dict[str, Any], event: str, *, secret: str = GITHUB_SECRET, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hexmac(secret, raw),
    }


def stripe(
    body: dict[str, Any], *, at: float | None = None, secret: str = STRIPE_SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    t = str(int(time.time() if at is None else at))
    sig = hexmac(secret, t.encode() + b"." + raw)
    return raw, {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={sig}"}


def post(server: QuietServer, source: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/webhooks/{source}", content=raw, headers=headers, timeout=30)


def api(server: QuietServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, headers=server.headers, timeout=30, **kwargs)


def run_tasks(server: QuietServer, run_ids: list[str]) -> dict[str, Any]:
    out = {}
    for run_id in run_ids:
        got = api(server, "GET", f"/api/v3/runs/{run_id}").json()
        out[got["taskIdentifier"]] = got
    return out


def test_a_github_push_starts_its_task(quiet: QuietServer) -> None:
    raw, headers = github({"ref": "refs/heads/main", "commits": []}, "push", delivery="d-push-1")
    resp = post(quiet, "github", raw, headers)
    assert resp.status_code == 200, resp.text
    got = resp.json()
    assert got["event"] == "push" and got["id"] == "d-push-1" and not got["duplicate"]
    runs = run_tasks(quiet, got["runs"])
    assert list(runs) == ["ev-gh-push"] and runs["ev-gh-push"]["status"] == "QUEUED"
    envelope = runs["ev-gh-push"]["payload"]
    assert envelope["event"] == "push" and envelope["delivery_id"] == "d-push-1"
    assert envelope["payload"] == {"ref": "refs/heads/main", "commits": []}
    assert envelope["headers"]["x-github-event"] == "push"
    assert runs["ev-gh-push"]["event"] == {"id": "d-push-1", "name": "push", "source": "github"}


def test_a_github_action_names_the_event_too(quiet: QuietServer) -> None:
    raw, headers = github({"action": "opened", "number": 7}, "pull_request")
    got = post(quiet, "github", raw, headers).json()
    assert got["event"] == "pull_request.opened"
    assert list(run_tasks(quiet, got["runs"])) == ["ev-gh-pr-opened"]
    raw, headers = github({"action": "closed", "number": 7}, "pull_request")
    assert post(quiet, "github", raw, headers).json()["runs"] == []  # nobody wants it


def test_a_github_redelivery_starts_nothing_new(quiet: QuietServer) -> None:
    raw, headers = github({"ref": "refs/heads/dev"}, "push", delivery="d-again")
    first = post(quiet, "github", raw, headers).json()
    before = quiet.state()
    again = post(quiet, "github", raw, headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["runs"] == first["runs"]
    assert quiet.state() == before  # nothing written


def test_stripe_signatures_and_their_tolerance(quiet: QuietServer) -> None:
    event = {"id": "evt_stripe_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}
    raw, headers = stripe(event, at=time.time() - 200)  # within 300 s
    got = post(quiet, "stripe", raw, headers)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == "evt_stripe_1" and got.json()["event"] == "invoice.paid"
    assert list(run_tasks(quiet, got.json()["runs"])) == ["ev-stripe-invoice"]
    before = quiet.state()
    for at in (time.time() - 400, time.time() + 400):  # too old, or from the future
        raw, headers = stripe({**event, "id": "evt_stripe_late"}, at=at)
        resp = post(quiet, "stripe", raw, headers)
        assert resp.status_code == 401 and "tolerance" in resp.json()["error"]
    assert quiet.state() == before


def test_a_declared_hmac_source(quiet: QuietServer) -> None:
    raw = json.dumps({"kind": "thing.happened", "n": 1}).encode()
    headers = {"X-Acme-Signature": "sha256=" + hexmac(ACME_SECRET, raw)}
    got = post(quiet, "acme", raw, headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["event"] == "thing.happened" and body["id"].startswith("sha256:")
    assert list(run_tasks(quiet, body["runs"])) == ["ev-acme"]
    again = post(quiet, "acme", raw, headers).json()  # no delivery header: a hash dedups
    assert again["duplicate"] and again["runs"] == body["runs"]


def test_every_rejection_writes_nothing(quiet: QuietServer) -> None:
    push = {"ref": "refs/heads/main"}
    raw, good = github(push, "push", delivery="d-reject")
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("github", raw, {k: v for k, v in good.items() if "Signature" not in k}, 401, "missing"),
        ("github", raw, {**good, "X-Hub-Signature-256": "sha256=" + "0" * 64}, 401, "match"),
        ("github", raw, {**good, "X-Hub-Signature-256": hexmac(GITHUB_SECRET, raw)}, 401, "match"),
        ("github", *github(push, "push", secret="wrong"), 401, "match"),
        ("github", raw + b" ", good, 401, "match"),  # the body changed after signing
        ("stripe", raw, {"Stripe-Signature": "v1=abc"}, 401, "t=<unix time>"),
        ("stripe", *stripe({"type": "invoice.paid"}, secret="wrong"), 401, "match"),
        ("nosecret", raw, {"X-Signature": hexmac("x", raw)}, 401, "NOSECRET_WEBHOOK_SECRET"),
        ("nobody", raw, good, 404, "no webhook source"),
        (
            "github",
            b"not json",
            {**good, "X-Hub-Signature-256": "sha256=" + hexmac(GITHUB_SECRET, b"not json")},
            400,
            "not JSON",
        ),
        ("github", raw, {**good, "X-GitHub-Event": ""}, 400, "names no event"),
        ("github", raw, {**good, "X-GitHub-Event": "bad name"}, 400, "event"),
    ]
    before = quiet.state()
    for source, body, headers, status, words in cases:
        resp = post(quiet, source, body, headers)
        assert resp.status_code == status, (source, headers, resp.text)
        assert words in resp.json()["error"], resp.json()
    big = b"{" + b" " * (10 * 1024 * 1024) + b"}"
    resp = post(
        quiet,
        "github",
        big,
        {**good, "X-Hub-Signature-256": "sha256=" + hexmac(GITHUB_SECRET, big)},
    )
    assert resp.status_code == 413
    assert httpx.get(f"{quiet.url}/webhooks/github", timeout=10).status_code == 405
    assert quiet.state() == before


def test_webhooks_need_no_api_key_and_the_api_still_does(quiet: QuietServer) -> None:
    raw, headers = github({"ref": "x"}, "push")
    assert (
        post(quiet, "github", raw, {**headers, "Authorization": "Bearer wrong"}).status_code == 200
    )
    assert httpx.get(f"{quiet.url}/api/v1/webhooks/deliveries", timeout=10).status_code == 401
    assert (
        httpx.post(f"{quiet.url}/api/v1/events", json={"name": "a"}, timeout=10).status_code == 401
    )


def test_events_over_http(quiet: QuietServer) -> None:
    resp = api(
        quiet,
        "POST",
        "/api/v1/events",
        json={"name": "user.created", "payload": {"user_id": "h1"}, "id": "evt-http-1"},
    )
    assert resp.status_code == 200, resp.text
    sent = resp.json()
    assert sent["id"] == "evt-http-1" and len(sent["runs"]) == 2 and sent["isCached"] is False
    again = api(
        quiet,
        "POST",
        "/api/v1/events",
        json={"name": "user.created", "payload": {}, "id": "evt-http-1"},
    ).json()
    assert again["runs"] == sent["runs"] and again["isCached"] is True
    refused = api(
        quiet,
        "POST",
        "/api/v1/events",
        json={"name": "order.placed", "payload": {"order_id": "o", "amount": "x"}},
    ).json()
    states = {t: r["status"] for t, r in run_tasks(quiet, refused["runs"]).items()}
    assert states == {"ev-order-log": "QUEUED", "ev-order-mail": "FAILED"}
    one = api(quiet, "GET", "/api/v1/events/evt-http-1").json()
    assert one["payload"] == {"user_id": "h1"} and one["runs"] == sent["runs"]
    replayed = api(quiet, "POST", "/api/v1/events/evt-http-1/replay").json()
    assert set(replayed["runs"]).isdisjoint(sent["runs"]) and replayed["id"] != "evt-http-1"
    assert api(quiet, "GET", "/api/v1/events/evt-nope").status_code == 404
    assert api(quiet, "POST", "/api/v1/events/evt-nope/replay").status_code == 404


def test_bad_event_requests_are_4xx_and_write_nothing(quiet: QuietServer) -> None:
    before = quiet.state()
    for body, field in (
        ({"payload": {}}, "name"),
        ({"name": 3}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "user.*"}, "name"),
        ({"name": "a", "id": ""}, "id"),
        ({"name": "a", "id": 5}, "id"),
    ):
        resp = api(quiet, "POST", "/api/v1/events", json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert field in json.dumps(resp.json()["errors"]), resp.json()
    assert api(quiet, "POST", "/api/v1/events", content=b"nope").status_code == 400
    assert api(quiet, "POST", "/api/v1/events", content=b"").status_code == 400
    for query in ("limit=0", "limit=x", "limit=101", "from=yesterday", "cursor=zz", "to=nan"):
        resp = api(quiet, "GET", f"/api/v1/events?{query}")
        assert resp.status_code == 400, (query, resp.text)
    assert quiet.state() == before


def test_lists_page_and_the_cli_shows_them(quiet: QuietServer) -> None:
    for i in range(3):
        api(
            quiet,
            "POST",
            "/api/v1/events",
            json={"name": "user.listed", "payload": {"i": i}, "id": f"evt-list-{i}"},
        )
    first = api(quiet, "GET", "/api/v1/events?name=user.listed&limit=2").json()
    assert [e["id"] for e in first["data"]] == ["evt-list-2", "evt-list-1"]
    rest = api(
        quiet, "GET", f"/api/v1/events?name=user.listed&limit=2&cursor={first['nextCursor']}"
    ).json()
    assert [e["id"] for e in rest["data"]] == ["evt-list-0"] and rest["nextCursor"] is None
    deliveries = api(quiet, "GET", "/api/v1/webhooks/deliveries?source=github&limit=100").json()[
        "data"
    ]
    assert deliveries and all(d["source"] == "github" for d in deliveries)
    assert {"id", "event", "status", "runs", "createdAt"} <= set(deliveries[0])
    target = ["--target", quiet.url]
    env = {**ENV, "TRIGGER_SECRET_KEY": quiet.key}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trigger_do.cli",
            "events",
            "list",
            "--name",
            "user.listed",
            *target,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "evt-list-0" in out.stdout and "user.listed" in out.stdout
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trigger_do.cli",
            "webhooks",
            "list",
            "--source",
            "github",
            "--json",
            *target,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert "d-push-1" in {d["id"] for d in listed}


def test_a_delivery_is_replayed_into_new_runs(quiet: QuietServer) -> None:
    raw, headers = github({"ref": "refs/heads/replay"}, "push", delivery="d-replay")
    first = post(quiet, "github", raw, headers).json()
    again = api(quiet, "POST", "/api/v1/webhooks/deliveries/d-replay/replay")
    assert again.status_code == 200, again.text
    assert len(again.json()["runs"]) == 1 and again.json()["runs"] != first["runs"]
    runs = run_tasks(quiet, again.json()["runs"])
    assert runs["ev-gh-push"]["payload"]["delivery_id"] == "d-replay"
    assert api(quiet, "POST", "/api/v1/webhooks/deliveries/nope/replay").status_code == 404


def test_the_sdk_over_http_raises_what_embedded_raises(quiet: QuietServer) -> None:
    """`trigger_do.events.*` remote (TRIGGER_API_URL): the same results and errors as the
    engine tests see embedded."""
    import asyncio
    from datetime import UTC, datetime

    import trigger_do
    from trigger_do import events
    from trigger_do.errors import EventNotFoundError, InvalidEventError, PayloadValidationError
    from trigger_do.sdk.client import configure

    async def scenario() -> None:
        sent = await events.send("user.created", {"user_id": "r1"}, id="evt-remote-1")
        assert sent.id == "evt-remote-1" and len(sent.runs) == 2 and not sent.cached
        again = await events.send("user.created", {"user_id": "r1"}, id="evt-remote-1")
        assert again.cached and again.runs == sent.runs
        got = await events.retrieve("evt-remote-1")
        assert got.payload == {"user_id": "r1"} and got.status == "delivered"
        since = got.created_at
        page = await events.list(name="user.created", since=since, until=datetime.now(UTC))
        assert "evt-remote-1" in [e.id for e in page]
        assert len(await events.list(name="user.created", until=since.replace(year=2000))) == 0
        status = await trigger_do.tasks.handle(sent.runs[0]).status()
        assert status.event == {"id": "evt-remote-1", "name": "user.created"}
        replayed = await events.replay("evt-remote-1")
        assert replayed.id != sent.id and set(replayed.runs).isdisjoint(sent.runs)
        with pytest.raises(InvalidEventError, match="event name"):
            await events.send("bad name", {})
        with pytest.raises(InvalidEventError):
            await events.send("ok", {}, id="")
        with pytest.raises(EventNotFoundError):
            await events.retrieve("evt-remote-nope")
        with pytest.raises(EventNotFoundError):
            await events.replay("evt-remote-nope")
        with pytest.raises(PayloadValidationError):
            await events.send("ok", {"x": float("nan")})

    configure(api_url=quiet.url, secret_key=quiet.key)
    try:
        asyncio.run(scenario())
    finally:
        configure()


def test_the_generic_hmac_preset(quiet: QuietServer) -> None:
    """`/webhooks/hmac` as the preset says: X-Signature (no prefix), the event from X-Event
    (else the body's `type`), the delivery id from X-Delivery-Id."""
    raw = json.dumps({"type": "order.paid", "total": 3}).encode()
    signed = {"X-Signature": hexmac(HMAC_SECRET, raw), "X-Delivery-Id": "h-1"}
    got = post(quiet, "hmac", raw, {**signed, "X-Event": "order.shipped"})
    assert got.status_code == 200, got.text
    assert (got.json()["event"], got.json()["id"]) == ("order.shipped", "h-1")
    assert list(run_tasks(quiet, got.json()["runs"])) == ["ev-hmac"]
    by_body = post(quiet, "hmac", raw, {**signed, "X-Delivery-Id": "h-2"}).json()
    assert by_body["event"] == "order.paid" and len(by_body["runs"]) == 1
    before = quiet.state()
    wrong = {**signed, "X-Signature": "sha256=" + hexmac(HMAC_SECRET, raw)}  # no prefix here
    assert post(quiet, "hmac", raw, wrong).status_code == 401
    assert post(quiet, "hmac", raw, signed).json()["duplicate"] is True
    assert quiet.state() == before


def test_a_stripe_retry_of_the_same_event_is_deduplicated(quiet: QuietServer) -> None:
    event = {"id": "evt_stripe_retry", "type": "invoice.payment_failed", "data": {}}
    first = post(quiet, "stripe", *stripe(event)).json()
    before = quiet.state()
    again = post(quiet, "stripe", *stripe(event, at=time.time() + 5))  # re-signed, later
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["runs"] == first["runs"] and quiet.state() == before
