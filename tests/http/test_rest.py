"""The REST API over a real socket: every error status, payload encodings, v4's two-phase
batch, metadata and tags, packet uploads, and the curl examples of the README."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import Server

pytestmark = pytest.mark.timeout(120)
DOCS = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c


async def _count(http: httpx.AsyncClient, **filters: str) -> int:
    params = {"page[size]": "100", **{f"filter[{k}]": v for k, v in filters.items()}}
    n, after = 0, None
    while True:
        page = (
            await http.get(
                "/api/v1/runs", params={**params, **({"page[after]": after} if after else {})}
            )
        ).json()
        n += len(page["data"])
        after = page["pagination"].get("next")
        if not after:
            return n


async def _wait(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        run: dict[str, Any] = (await http.get(f"/api/v3/runs/{run_id}")).json()
        if run["isCompleted"]:
            return run
        await __import__("asyncio").sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tr_dev_wrong"}, {"Authorization": "Basic abc"}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_401_without_the_key(server: Server, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as anon:
        for method, path in [
            ("POST", "/api/v1/tasks/add/trigger"),
            ("GET", "/api/v1/runs"),
            ("GET", "/api/v3/runs/run_x"),
            ("GET", "/api/v9/not-a-route"),
        ]:
            r = await anon.request(method, path, json={"payload": {"a": 1, "b": 2}})
            assert r.status_code == 401, (path, r.text)
            assert "secret key" in r.json()["error"]
        assert (await anon.get("/healthz")).json() == {"ok": True}


# --- errors --------------------------------------------------------------------------------


async def test_400_malformed_json_writes_nothing(http: httpx.AsyncClient) -> None:
    before = await _count(http, taskIdentifier="http-echo")
    r = await http.post(
        "/api/v1/tasks/http-echo/trigger",
        content=b'{"payload": {"a": 1,',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    made = (await http.post("/api/v3/batches", json={"runCount": 2})).json()
    r = await http.post(f"/api/v3/batches/{made['id']}/items", content=b"{not json}\n")
    assert r.status_code == 400 and "line 1" in r.json()["error"]
    r = await http.post("/api/v3/batches/batch_x/items", content=b"{not json}\n")
    assert r.status_code == 404  # no such batch: said before the body is read
    assert await _count(http, taskIdentifier="http-echo") == before


async def test_404_unknown_task_and_run(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/tasks/no-such-task/trigger", json={"payload": {}})
    assert r.status_code == 404 and "no-such-task" in r.json()["error"]
    for method, path in [
        ("GET", "/api/v3/runs/run_missing"),
        ("POST", "/api/v2/runs/run_missing/cancel"),
        ("POST", "/api/v1/runs/run_missing/replay"),
        ("GET", "/api/v1/runs/run_missing/logs"),
        ("GET", "/api/v2/batches/batch_missing"),
    ]:
        r = await http.request(method, path)
        assert r.status_code == 404, path
        assert "missing" in r.json()["error"]


async def test_413_payload_over_the_limit_writes_nothing(http: httpx.AsyncClient) -> None:
    before = await _count(http, taskIdentifier="http-echo")
    big = {"payload": {"blob": "x" * (300 * 1024)}}
    r = await http.post("/api/v1/tasks/http-echo/trigger", json=big)
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    huge = b'{"payload": "' + b"y" * (600 * 1024) + b'"}'  # refused before it is parsed
    r = await http.post("/api/v1/tasks/http-echo/trigger", content=huge)
    assert r.status_code == 413
    assert await _count(http, taskIdentifier="http-echo") == before


async def test_422_schema_failure_names_the_field(http: httpx.AsyncClient) -> None:
    before = await _count(http, taskIdentifier="send-email")
    r = await http.post("/api/v1/tasks/send-email/trigger", json={"payload": {"to": "a@x"}})
    assert r.status_code == 422
    assert "subject" in r.json()["error"] and "body" in r.json()["error"]
    items = [
        {"task": "send-email", "payload": {"to": "a@x", "subject": "s", "body": "b"}},
        {"task": "send-email", "payload": {"to": "a@x", "subject": "s"}},
    ]
    r = await http.post("/api/v2/tasks/batch", json={"items": items})
    assert r.status_code == 422 and "[1] body" in r.json()["error"]
    r = await http.post(
        "/api/v1/tasks/add/trigger",
        json={"payload": {"a": 1, "b": 2}, "options": {"delay": "soon"}},
    )
    assert r.status_code == 422 and "soon" in r.json()["error"]
    assert await _count(http, taskIdentifier="send-email") == before


# --- payload encodings -----------------------------------------------------------------------


async def test_superjson_text_and_plain_payloads(http: httpx.AsyncClient) -> None:
    sj = json.dumps({"json": {"a": 4, "b": 5}})
    r = await http.post(
        "/api/v1/tasks/add/trigger",
        json={"payload": sj, "options": {"payloadType": "application/super+json"}},
    )
    assert (await _wait(http, r.json()["id"]))["output"] == {"sum": 9}
    r = await http.post(
        "/api/v1/tasks/http-echo/trigger",
        json={"payload": "hello", "options": {"payloadType": "text/plain"}},
    )
    assert (await _wait(http, r.json()["id"]))["output"] == "hello"
    r = await http.post(
        "/api/v1/tasks/http-echo/trigger",
        json={"payload": "[1, 2]", "options": {"payloadType": "application/json"}},
    )
    done = await _wait(http, r.json()["id"])
    assert done["output"] == [1, 2] and done["payload"] == [1, 2]
    assert done["isSuccess"] and done["attemptCount"] == 1 and done["durationMs"] >= 0


async def test_packet_upload_then_trigger(http: httpx.AsyncClient, server: Server) -> None:
    presign = (await http.put("/api/v2/packets/trigger/packet_abc/payload.json")).json()
    url, path = presign["presignedUrl"], presign["storagePath"]
    data = json.dumps({"json": {"big": "z" * 150_000}})
    async with httpx.AsyncClient() as anon:  # the signed URL needs no key
        forged = re.sub(r"signature=\w+", "signature=00", url)
        assert (await anon.put(forged, content=data)).status_code == 403
        up = await anon.put(url, content=data, headers={"content-type": "application/super+json"})
        assert up.status_code == 200
    r = await http.post(
        "/api/v1/tasks/http-echo/trigger",
        json={"payload": path, "options": {"payloadType": "application/store"}},
    )
    assert r.status_code == 200, r.text
    done = await _wait(http, r.json()["id"])
    assert len(done["output"]["big"]) == 150_000


# --- batches ---------------------------------------------------------------------------------


async def test_two_phase_batch_resend_is_deduplicated(http: httpx.AsyncClient) -> None:
    created = (
        await http.post("/api/v3/batches", json={"runCount": 3, "idempotencyKey": "tp-1"})
    ).json()
    assert created["runCount"] == 3 and created["isCached"] is False
    again = (
        await http.post("/api/v3/batches", json={"runCount": 3, "idempotencyKey": "tp-1"})
    ).json()
    assert again["id"] == created["id"] and again["isCached"] is True
    lines = [
        json.dumps(
            {
                "index": i,
                "task": "add",
                "payload": json.dumps({"json": {"a": i, "b": 1}}),
                "options": {"payloadType": "application/super+json"},
            }
        )
        for i in range(3)
    ]
    path = f"/api/v3/batches/{created['id']}/items"
    part = (await http.post(path, content="\n".join(lines[:2]) + "\n")).json()
    assert part == {
        "id": created["id"],
        "itemsAccepted": 2,
        "itemsDeduplicated": 0,
        "sealed": False,
        "enqueuedCount": 2,
        "expectedCount": 3,
    }
    pending = (await http.get(f"/api/v2/batches/{created['id']}")).json()
    assert pending["status"] == "PENDING" and len(pending["runs"]) == 2
    full = (await http.post(path, content="\n".join(lines))).json()
    assert full["itemsAccepted"] == 1 and full["itemsDeduplicated"] == 2 and full["sealed"]
    got = (await http.get(f"/api/v2/batches/{created['id']}")).json()
    assert got["status"] == "COMPLETED" and got["runCount"] == 3
    outputs = [(await _wait(http, rid))["output"] for rid in got["runs"]]
    assert outputs == [{"sum": 1}, {"sum": 2}, {"sum": 3}]
    bad = await http.post(path, content=json.dumps({"index": 7, "task": "add", "payload": None}))
    assert bad.status_code == 422
    assert (await http.post("/api/v3/batches", json={"runCount": 0})).status_code == 422


# --- control ---------------------------------------------------------------------------------


async def test_metadata_tags_reschedule_replay(http: httpx.AsyncClient) -> None:
    rid = (
        await http.post(
            "/api/v1/tasks/add/trigger",
            json={"payload": {"a": 1, "b": 1}, "options": {"delay": "1h", "metadata": {"n": 1}}},
        )
    ).json()["id"]
    r = await http.put(
        f"/api/v1/runs/{rid}/metadata",
        json={
            "operations": [
                {"type": "increment", "key": "n", "value": 2},
                {"type": "set", "key": "who", "value": "me"},
            ]
        },
    )
    assert r.json() == {"metadata": {"n": 3, "who": "me"}}
    assert (await http.get(f"/api/v1/runs/{rid}/metadata")).json()["metadata"]["n"] == 3
    assert (
        await http.post(f"/api/v1/runs/{rid}/tags", json={"tags": ["t1", "t2"]})
    ).status_code == 200
    run = (await http.get(f"/api/v3/runs/{rid}")).json()
    assert run["tags"] == ["t1", "t2"] and run["metadata"] == {"n": 3, "who": "me"}
    moved = (await http.post(f"/api/v1/runs/{rid}/reschedule", json={"delay": "1s"})).json()
    assert moved["status"] == "DELAYED"
    done = await _wait(http, rid)
    assert done["output"] == {"sum": 2}
    assert (
        await http.post(f"/api/v1/runs/{rid}/reschedule", json={"delay": "1h"})
    ).status_code == 400
    replayed = (await http.post(f"/api/v1/runs/{rid}/replay")).json()["id"]
    assert replayed != rid and (await _wait(http, replayed))["output"] == {"sum": 2}
    canceled = await http.post(f"/api/v2/runs/{rid}/cancel")
    assert canceled.json() == {"id": rid, "canceled": False}  # already final


# --- the README's curl examples ---------------------------------------------------------


def curl_blocks() -> list[str]:
    return re.findall(r"^```bash curl\n(.*?)^```", DOCS.read_text(), re.S | re.M)


def test_curl_examples_of_the_docs(server: Server) -> None:
    blocks = curl_blocks()
    assert len(blocks) == 4
    script = "set -euo pipefail\n" + "\necho ----\n".join(blocks)
    env = {
        "TRIGGER_API_URL": server.url,
        "TRIGGER_SECRET_KEY": server.key,
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    retrieved, logs, listed, batch = done.stdout.split("----\n")
    assert json.loads(retrieved)["taskIdentifier"] == "add"
    first, end = json.JSONDecoder().raw_decode(logs)
    assert set(first) == {"data", "isCompleted"}
    sse = logs[end:]
    assert sse.startswith(": trigger.do logs")
    assert sse.rstrip().endswith('data: {"event":"end","status":"COMPLETED"}')
    page = json.loads(listed)
    assert page["data"] and all(
        r["status"] == "COMPLETED" and "curl" in r["tags"] for r in page["data"]
    )
    made, end = json.JSONDecoder().raw_decode(batch)
    assert made["runCount"] == 2 and len(made["runs"]) == 2
    assert json.loads(batch[end:])["canceled"] is True
