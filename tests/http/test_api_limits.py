"""Every bad request is a clear 4xx that writes nothing (Reliability II), on the API alone
(`quiet_server`: no worker changes the database, so `state()` before and after a refused
request must be equal). One test per reported input family."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.http.conftest import QuietServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api(quiet_server: QuietServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=quiet_server.url, headers=quiet_server.headers, timeout=30) as c:
        yield c


def refused(
    quiet: QuietServer, api: httpx.Client, method: str, path: str, status: int, **kw: Any
) -> dict[str, Any]:
    """Send a request that must be refused with `status`, and prove it wrote nothing."""
    before = quiet.state()
    r = api.request(method, path, **kw)
    assert r.status_code == status, (method, path, r.status_code, r.text[:300])
    body: dict[str, Any] = r.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert r.headers.get("x-should-retry") == "false"
    assert quiet.state() == before, f"{method} {path} wrote something"
    return body


def names(body: dict[str, Any], field: str) -> bool:
    """Whether a 422 names `field` in its message and its `errors`."""
    locs = [str(e.get("loc")) for e in body.get("errors") or []]
    return field in body["error"] and any(loc.endswith(field) for loc in locs)


def delayed_run(api: httpx.Client, **options: Any) -> str:
    opts = {"delay": "1h", **options}
    r = api.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 2}, "options": opts})
    assert r.status_code == 200, r.text
    run_id: str = r.json()["id"]
    return run_id


def deep(n: int) -> str:
    return "[" * n + "]" * n


def nest(template: str, depth: int) -> str:
    """`template` with `@` replaced by arrays nested `depth` deep."""
    return template.replace("@", deep(depth))


# --- durations: 422 naming the field, at trigger and at reschedule ------------------------

TOO_LONG = "100000000d"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delay", TOO_LONG),
        ("delay", 1e308),
        ("delay", "9999-01-01T00:00:00Z"),
        ("ttl", TOO_LONG),
        ("idempotencyKeyTTL", TOO_LONG),
        ("maxDuration", 1e308),
    ],
)
def test_durations_past_ten_years_are_422_naming_the_field(
    quiet_server: QuietServer, api: httpx.Client, field: str, value: Any
) -> None:
    body = {"payload": {"a": 1, "b": 2}, "options": {field: value}}
    out = refused(quiet_server, api, "POST", "/api/v1/tasks/add/trigger", 422, json=body)
    assert names(out, f"options.{field}"), out
    item = {"task": "add", **body}
    out = refused(quiet_server, api, "POST", "/api/v2/tasks/batch", 422, json={"items": [item]})
    assert names(out, f"items.0.options.{field}"), out
    batch = api.post("/api/v3/batches", json={"runCount": 1}).json()["id"]
    line = json.dumps({"index": 0, **item})
    path = f"/api/v3/batches/{batch}/items"
    out = refused(quiet_server, api, "POST", path, 422, content=line)
    assert names(out, f"options.{field}") and "line 1" in out["error"], out


@pytest.mark.parametrize("delay", [TOO_LONG, 1e308, "9999-01-01T00:00:00Z", True, [1]])
def test_reschedule_past_ten_years_is_422_naming_delay(
    quiet_server: QuietServer, api: httpx.Client, delay: Any
) -> None:
    run = delayed_run(api)
    path = f"/api/v1/runs/{run}/reschedule"
    out = refused(quiet_server, api, "POST", path, 422, json={"delay": delay})
    assert names(out, "delay"), out
    assert api.post(path, json={"delay": "2h"}).json()["status"] == "DELAYED"


def test_a_stored_date_no_calendar_holds_is_still_served(
    quiet_server: QuietServer, api: httpx.Client
) -> None:
    """A run written before delays were bounded (due in 1e308 seconds) is read, not a 500."""
    run = delayed_run(api, tags=["far-future"])
    with sqlite3.connect(quiet_server.db) as conn:
        conn.execute("UPDATE runs SET delay_until = 1e308, expires_at = 1e308 WHERE id = ?", (run,))
    got = api.get(f"/api/v3/runs/{run}")
    assert got.status_code == 200 and got.json()["delayedUntil"].startswith("9999-12-31")
    page = api.get("/api/v1/runs", params={"filter[tag]": "far-future"})
    assert page.status_code == 200 and [r["id"] for r in page.json()["data"]] == [run]


# --- nesting: refused (400) before anything parses it deeply ---------------------------------


@pytest.mark.parametrize("depth", [300, 100_000])
def test_deep_nesting_is_400_wherever_it_hides(
    quiet_server: QuietServer, api: httpx.Client, depth: int
) -> None:
    run = delayed_run(api)
    trigger = "/api/v1/tasks/http-echo/trigger"
    sj = "application/super+json"
    cases: list[tuple[str, str, str | bytes]] = [
        ("POST", trigger, nest('{"payload": @}', depth)),
        ("POST", trigger, nest('{"payload": 1, "options": {"metadata": {"x": @}}}', depth)),
        ("PUT", f"/api/v1/runs/{run}/metadata", nest('{"metadata": {"x": @}}', depth)),
        (
            "POST",
            "/api/v2/tasks/batch",
            nest('{"items": [{"task": "add", "payload": @}]}', depth),
        ),
    ]
    for text_field, type_field in (("payload", "payloadType"), ("metadata", "metadataType")):
        embedded = {"json": None, "x": None}
        text = json.dumps(embedded).replace("null", deep(depth), 1)
        body: dict[str, Any] = {"payload": 1, "options": {type_field: sj}}
        if text_field == "payload":
            body["payload"] = text
        else:
            body["options"]["metadata"] = text
        cases.append(("POST", trigger, json.dumps(body)))
    for method, path, content in cases:
        out = refused(quiet_server, api, method, path, 400, content=content)
        assert "nested" in out["error"] and "64" in out["error"], out
    # 60 levels is fine
    ok = api.post(trigger, content=nest('{"payload": @}', 60))
    assert ok.status_code == 200, ok.text


# --- numbers in query strings and headers: ASCII digits, bounded -----------------------------


@pytest.mark.parametrize("bad", ["²", "١٢", "1" * 30, str(2**63), "-1", "1e3", "0x10"])
def test_query_and_header_numbers_take_bounded_ascii_digits(
    quiet_server: QuietServer, api: httpx.Client, bad: str
) -> None:
    run = delayed_run(api)
    for path, params, headers in [
        ("/api/v1/runs", {"page[size]": bad}, {}),
        ("/api/v1/bulk-actions", {"page[size]": bad}, {}),
        (f"/api/v1/runs/{run}/logs", {"after": bad}, {}),
        (f"/api/v1/runs/{run}/logs", {"limit": bad}, {}),
        (f"/api/v1/runs/{run}/logs", {}, {"last-event-id": bad.encode()}),
        ("/api/v1/queues", {"page": bad}, {}),
        ("/api/v1/queues", {"perPage": bad}, {}),
    ]:
        refused(quiet_server, api, "GET", path, 400, params=params, headers=headers)


async def test_websocket_after_with_unicode_digits_is_refused(
    quiet_server: QuietServer,
) -> None:
    with httpx.Client(base_url=quiet_server.url, headers=quiet_server.headers) as api:
        run = delayed_run(api)
    url = quiet_server.url.replace("http", "ws") + f"/api/v1/runs/{run}/logs/ws"
    async with connect(f"{url}?token={quiet_server.key}&after=%C2%B2") as ws:
        message = json.loads(await ws.recv())
        assert message["type"] == "error" and "ASCII digits" in message["error"]
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


@pytest.mark.parametrize("big", [10**30, 2**63, 10**12])
def test_counts_and_limits_are_bounded_integers(
    quiet_server: QuietServer, api: httpx.Client, big: int
) -> None:
    out = refused(quiet_server, api, "POST", "/api/v3/batches", 422, json={"runCount": big})
    assert names(out, "runCount")
    path = "/api/v1/queues/http-limited/concurrency/override"
    body = {"type": "task", "concurrencyLimit": big}
    out = refused(quiet_server, api, "POST", path, 422, json=body)
    assert names(out, "concurrencyLimit")


# --- strict strings: an idempotency key is a string of 1 to 512 characters --------------------


@pytest.mark.parametrize("key", [["a"], {"a": 1}, 123, True, "", "x" * 513])
def test_batch_idempotency_keys_are_strings(
    quiet_server: QuietServer, api: httpx.Client, key: Any
) -> None:
    item = {"task": "add", "payload": {"a": 1, "b": 1}}
    v2 = {"items": [item], "idempotencyKey": key}
    assert names(
        refused(quiet_server, api, "POST", "/api/v2/tasks/batch", 422, json=v2), "idempotencyKey"
    )
    v3 = {"runCount": 1, "idempotencyKey": key}
    assert names(
        refused(quiet_server, api, "POST", "/api/v3/batches", 422, json=v3), "idempotencyKey"
    )


def test_a_number_key_does_not_find_the_string_keys_batch(api: httpx.Client) -> None:
    made = api.post(
        "/api/v2/tasks/batch",
        json={"items": [{"task": "add", "payload": {"a": 1, "b": 1}}], "idempotencyKey": "4567"},
    )
    assert made.status_code == 200
    again = api.post("/api/v3/batches", json={"runCount": 1, "idempotencyKey": 4567})
    assert again.status_code == 422 and "isCached" not in again.json()


# --- metadata and tags: the bounds a trigger has hold after it ------------------------------


@pytest.mark.parametrize(
    "ops",
    [
        [{"type": "increment", "key": "n", "value": "x"}],
        [{"type": "increment", "key": "n", "value": [1]}],
        [{"type": "increment", "key": "n", "value": True}],
        [{"type": "increment", "key": "n", "value": 1e308}],
        [
            {"type": "set", "key": "n", "value": 2**64 - 1},
            {"type": "increment", "key": "n", "value": 1},
        ],
        [{"type": "set", "key": "n", "value": 1e308}, {"type": "update", "value": []}],
        [{"type": "explode", "key": "n"}],
        [{"type": "set", "value": 1}],
    ],
)
def test_metadata_operations_are_validated_before_writing(
    quiet_server: QuietServer, api: httpx.Client, ops: list[dict[str, Any]]
) -> None:
    run = delayed_run(api, metadata={"n": 1})
    path = f"/api/v1/runs/{run}/metadata"
    out = refused(quiet_server, api, "PUT", path, 422, json={"operations": ops})
    assert "operations" in out["error"] or "metadata" in out["error"], out
    assert api.get(path).json() == {"metadata": {"n": 1}}


def test_metadata_documents_are_bounded(quiet_server: QuietServer, api: httpx.Client) -> None:
    run = delayed_run(api)
    path = f"/api/v1/runs/{run}/metadata"
    big = {"metadata": {"x": "y" * (300 * 1024)}}
    refused(quiet_server, api, "PUT", path, 422, json=big)
    append = [{"type": "append", "key": "x", "value": "z" * 100_000}] * 3
    refused(quiet_server, api, "PUT", path, 422, json={"operations": append})


def test_tags_after_trigger_keep_the_trigger_bounds(
    quiet_server: QuietServer, api: httpx.Client
) -> None:
    run = delayed_run(api, tags=[f"t{i}" for i in range(8)])
    path = f"/api/v1/runs/{run}/tags"
    out = refused(quiet_server, api, "POST", path, 422, json={"tags": [f"n{i}" for i in range(50)]})
    assert names(out, "tags") and "at most 10" in out["error"]
    out = refused(quiet_server, api, "POST", path, 422, json={"tags": ["x" * 10_000]})
    assert names(out, "tags") and "128" in out["error"]
    out = refused(quiet_server, api, "POST", path, 422, json={"tags": ["a", "b", "c"]})
    assert "11" in out["error"]
    refused(quiet_server, api, "POST", path, 422, json={"tags": [1]})
    assert api.post(path, json={"tags": ["t0", "a", "b"]}).status_code == 200  # t0: had it
    assert len(api.get(f"/api/v3/runs/{run}").json()["tags"]) == 10


# --- bodies: JSON objects, whatever the Content-Type; a trigger's is never empty --------------


def test_an_empty_or_non_json_body_is_refused(quiet_server: QuietServer, api: httpx.Client) -> None:
    trigger = "/api/v1/tasks/http-echo/trigger"
    for content, kind in [
        (b"", "application/json"),
        (b"", "text/plain"),
        (b"   ", None),
        (b"hello", "text/plain"),
        (b"[1, 2]", "application/json"),
        (b'"payload"', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'{"payload": NaN}', "application/json"),
    ]:
        headers = {"content-type": kind} if kind else {}
        out = refused(quiet_server, api, "POST", trigger, 400, content=content, headers=headers)
        assert "JSON" in out["error"] or "empty" in out["error"], out
    # the body is JSON whatever its Content-Type says (curl -d sends a form type)
    r = api.post(trigger, content=b'{"payload": 5}', headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json()["id"].startswith("run_")
    # `{}` is an explicit trigger without a payload; cancel takes an empty body
    run = api.post(trigger, json={}).json()["id"]
    r = api.post(
        f"/api/v2/runs/{run}/cancel", content=b"", headers={"content-type": "application/json"}
    )
    assert r.status_code == 200
