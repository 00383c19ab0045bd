"""Bulk actions over a real socket (`/api/v1/bulk-actions`, what `runs.bulk.*` calls): create
by filter or by ids, retrieve as Trigger.dev's BulkActionObject, polls that drive an action
to its end, list pages, abort, a retried create, and every bad request as a 4xx."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import trigger_do.api.bulk as bulk_api
from tests.http.conftest import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=60) as c:
        yield c


async def delayed(http: httpx.AsyncClient, n: int, tag: str) -> list[str]:
    """`n` runs of `http-echo` an hour away (nothing starts them), tagged `tag`."""
    ids: list[str] = []
    for start in range(0, n, 500):
        items = [
            {"task": "http-echo", "payload": {"i": i}, "options": {"delay": "1h", "tags": [tag]}}
            for i in range(start, min(n, start + 500))
        ]
        r = await http.post("/api/v2/tasks/batch", json={"items": items})
        assert r.status_code == 200, r.text
        batch = (await http.get(f"/api/v2/batches/{r.json()['id']}")).json()
        ids += batch["runs"]
    return ids


async def status_of(http: httpx.AsyncClient, run_id: str) -> str:
    return str((await http.get(f"/api/v3/runs/{run_id}")).json()["status"])


async def poll(http: httpx.AsyncClient, bulk_id: str) -> dict[str, Any]:
    for _ in range(200):
        got: dict[str, Any] = (await http.get(f"/api/v1/bulk-actions/{bulk_id}")).json()
        if got["status"] != "PENDING":
            return got
    raise AssertionError(f"bulk action {bulk_id} still PENDING")


async def test_cancel_by_filter(http: httpx.AsyncClient) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    ids = await delayed(http, 1500, tag)
    r = await http.post(
        "/api/v1/bulk-actions",
        json={"action": "cancel", "filter": {"tag": tag, "status": ["DELAYED"]}, "name": "tidy"},
    )
    assert r.status_code == 200, r.text
    bulk_id = r.json()["id"]
    assert bulk_id.startswith("bulk_")
    got = (await http.get(f"/api/v1/bulk-actions/{bulk_id}")).json()
    assert got["type"] == "CANCEL" and got["status"] == "COMPLETED" and got["name"] == "tidy"
    assert got["counts"] == {"total": 1500, "success": 1500, "failure": 0}
    assert got["createdAt"].endswith("Z") and got["completedAt"] >= got["createdAt"]
    assert {await status_of(http, i) for i in (ids[0], ids[777], ids[-1])} == {"CANCELED"}
    page = await http.get(
        "/api/v1/runs", params={"filter[bulkAction]": bulk_id, "page[size]": "100"}
    )
    assert {r["id"] for r in page.json()["data"]} <= set(ids) and page.json()["pagination"]["next"]


async def test_replay_by_ids_counts_failures(http: httpx.AsyncClient) -> None:
    ids = await delayed(http, 5, f"bulk-{uuid.uuid4().hex[:8]}")
    r = await http.post(
        "/api/v1/bulk-actions", json={"action": "replay", "runIds": [*ids, "run_nosuchrun"]}
    )
    assert r.status_code == 200, r.text
    got = await poll(http, r.json()["id"])
    assert got["type"] == "REPLAY" and got["status"] == "COMPLETED"
    assert got["counts"] == {"total": 6, "success": 5, "failure": 1}
    assert "name" not in got  # optional keys are omitted, never null
    assert {await status_of(http, i) for i in ids} == {"DELAYED"}  # the originals stay
    # runs.list's filter[bulkAction]: the runs a replay made carry it
    listed = (await http.get("/api/v1/runs", params={"filter[bulkAction]": got["id"]})).json()[
        "data"
    ]
    assert len(listed) == 5 and not {r["id"] for r in listed} & set(ids)


async def test_polling_drives_an_action_to_its_end(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_api, "CREATE_BUDGET", 0.0)  # the create only records it
    monkeypatch.setattr(bulk_api, "POLL_BUDGET", 0.001)  # each poll: about one chunk
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    await delayed(http, 1500, tag)
    r = await http.post("/api/v1/bulk-actions", json={"action": "cancel", "filter": {"tag": tag}})
    bulk_id = r.json()["id"]
    assert r.json()["status"] == "PENDING" and r.json()["counts"]["success"] == 0
    first = (await http.get(f"/api/v1/bulk-actions/{bulk_id}")).json()
    assert first["status"] == "PENDING" and 0 < first["counts"]["success"] < 1500
    done = await poll(http, bulk_id)
    assert done["status"] == "COMPLETED"
    assert done["counts"] == {"total": 1500, "success": 1500, "failure": 0}


async def test_list_pages_abort_and_not_found(http: httpx.AsyncClient) -> None:
    ids = await delayed(http, 2, f"bulk-{uuid.uuid4().hex[:8]}")
    made = [
        (await http.post("/api/v1/bulk-actions", json={"action": "cancel", "runIds": ids})).json()[
            "id"
        ]
        for _ in range(3)
    ]
    page = (await http.get("/api/v1/bulk-actions", params={"page[size]": "2"})).json()
    assert len(page["data"]) == 2 and page["pagination"]["next"]
    assert {a["id"] for a in page["data"]} <= set(made)
    older = (
        await http.get(
            "/api/v1/bulk-actions",
            params={"page[size]": "2", "page[after]": page["pagination"]["next"]},
        )
    ).json()
    assert older["pagination"]["previous"] == older["data"][0]["id"]
    assert not {a["id"] for a in older["data"]} & {a["id"] for a in page["data"]}
    r = await http.post(f"/api/v1/bulk-actions/{made[0]}/abort")
    assert r.status_code == 400 and "already COMPLETED" in r.json()["error"]
    assert r.headers["x-should-retry"] == "false"
    for path in ("/api/v1/bulk-actions/bulk_nope", "/api/v1/bulk-actions/bulk_nope/abort"):
        method = "POST" if path.endswith("abort") else "GET"
        r = await http.request(method, path)
        assert r.status_code == 404 and "bulk_nope" in r.json()["error"]


async def test_abort_an_open_action(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_api, "CREATE_BUDGET", 0.0)
    ids = await delayed(http, 3, f"bulk-{uuid.uuid4().hex[:8]}")
    bulk_id = (
        await http.post("/api/v1/bulk-actions", json={"action": "cancel", "runIds": ids})
    ).json()["id"]
    r = await http.post(f"/api/v1/bulk-actions/{bulk_id}/abort")
    assert r.status_code == 200 and r.json()["id"] == bulk_id
    got = (await http.get(f"/api/v1/bulk-actions/{bulk_id}")).json()
    assert got["status"] == "ABORTED" and got["counts"]["success"] == 0 and got["completedAt"]
    assert {await status_of(http, i) for i in ids} == {"DELAYED"}


async def test_a_retried_create_is_one_action(http: httpx.AsyncClient) -> None:
    ids = await delayed(http, 2, f"bulk-{uuid.uuid4().hex[:8]}")
    headers = {"x-trigger-request-idempotency-key": str(uuid.uuid4())}
    body = {"action": "cancel", "runIds": ids}
    first = await http.post("/api/v1/bulk-actions", json=body, headers=headers)
    second = await http.post("/api/v1/bulk-actions", json=body, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["counts"] == {"total": 2, "success": 2, "failure": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "delete", "runIds": ["run_1"]}, "unknown bulk action 'delete'"),
        ({"runIds": ["run_1"]}, "unknown bulk action None"),
        ({"action": "cancel"}, "Exactly one of filter or runIds"),
        ({"action": "cancel", "runIds": ["run_1"], "filter": {"tag": "a"}}, "Exactly one"),
        ({"action": "cancel", "runIds": []}, "non-empty array"),
        ({"action": "cancel", "runIds": "run_1"}, "non-empty array"),
        ({"action": "cancel", "filter": {}}, "At least one filter"),
        ({"action": "cancel", "filter": {"tag": ["", " "]}}, "At least one filter"),
        ({"action": "cancel", "filter": "everything"}, "filter must be an object"),
        ({"action": "cancel", "filter": {"tags": "a"}}, "unknown filter 'tags'"),
        ({"action": "cancel", "filter": {"queue": {"type": "task", "name": "x"}}}, "'queue' is"),
        ({"action": "cancel", "filter": {"version": "20250101.1"}}, "not supported"),
        ({"action": "cancel", "filter": {"status": "DONE"}}, "unknown status 'DONE'"),
        ({"action": "cancel", "filter": {"status": "PENDING_VERSION"}}, "selects no run"),
        ({"action": "cancel", "filter": {"isTest": True}}, "no test runs"),
        ({"action": "cancel", "filter": {"isTest": "no"}}, "true or false"),
        ({"action": "cancel", "filter": {"from": "yesterday"}}, "ISO-8601"),
        ({"action": "cancel", "filter": {"period": "soon"}}, "invalid duration"),
        ({"action": "cancel", "filter": {"period": "1d", "from": 1}}, "not both"),
        ({"action": "cancel", "filter": {"from": 2000, "to": 1000}}, "after created_to"),
        ({"action": "cancel", "filter": {"batch": 7}}, "must be a string"),
        ({"action": "cancel", "filter": {"tag": 7}}, "string or an array of strings"),
        ({"action": "cancel", "runIds": ["run_1"], "name": "x" * 256}, "at most 255"),
        ({"action": "cancel", "runIds": ["run_1"], "targetRegion": "eu"}, "only for a replay"),
    ],
)
async def test_bad_requests_are_422_with_the_reason(
    http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    before = (await http.get("/api/v1/bulk-actions", params={"page[size]": "1"})).json()
    r = await http.post("/api/v1/bulk-actions", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"] and r.json()["code"] == "validation"
    assert r.headers["x-should-retry"] == "false"
    after = (await http.get("/api/v1/bulk-actions", params={"page[size]": "1"})).json()
    assert after["data"] == before["data"]  # nothing recorded


async def test_malformed_bodies_and_pages_are_400(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/api/v1/bulk-actions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = await http.get("/api/v1/bulk-actions", params={"page[size]": "0"})
    assert r.status_code == 400


async def test_a_replay_by_filter_with_a_period_and_iso_dates(http: httpx.AsyncClient) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    await delayed(http, 4, tag)
    for window in ({"period": "1h"}, {"from": "2020-01-01T00:00:00Z"}):
        r = await http.post(
            "/api/v1/bulk-actions",
            json={"action": "replay", "filter": {"tag": [tag], "status": "DELAYED", **window}},
        )
        assert r.status_code == 200, r.text
        got = await poll(http, r.json()["id"])
        assert got["counts"] == {"total": 4, "success": 4, "failure": 0}
