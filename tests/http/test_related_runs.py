"""Parent and child runs over the REST API (the official client's fields): `parentRunId`
and `resumeParentOnCompletion` recorded, and shown in `relatedRuns`, `depth` and
`triggerFunction`; a parent that does not exist is a 422 naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.http.conftest import QuietServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def http(quiet_server: QuietServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=quiet_server.url, headers=quiet_server.headers, timeout=30
    ) as c:
        yield c


async def _trigger(http: httpx.AsyncClient, payload: object, **options: object) -> str:
    res = await http.post(
        "/api/v1/tasks/http-echo/trigger", json={"payload": payload, "options": options}
    )
    assert res.status_code == 200, res.text
    return str(res.json()["id"])


async def test_children_by_trigger_and_by_batch_show_in_related_runs(
    http: httpx.AsyncClient, quiet_server: QuietServer
) -> None:
    root = await _trigger(http, "root")
    parent = await _trigger(http, "parent", parentRunId=root, resumeParentOnCompletion=True)
    made = await http.post(
        "/api/v3/batches",
        json={"runCount": 2, "taskIdentifiers": ["http-echo"], "parentRunId": parent},
    )
    assert made.status_code == 200, made.text
    lines = "\n".join(json.dumps({"index": i, "task": "http-echo", "payload": i}) for i in (0, 1))
    items = await http.post(
        f"/api/v3/batches/{made.json()['id']}/items",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert items.json()["sealed"] is True

    got = (await http.get(f"/api/v3/runs/{parent}")).json()
    related = got["relatedRuns"]
    assert related["parent"]["id"] == root and related["root"]["id"] == root
    assert len(related["children"]) == 2
    assert {c["triggerFunction"] for c in related["children"]} == {"batchTrigger"}
    assert {c["depth"] for c in related["children"]} == {2}
    assert got["depth"] == 1 and got["triggerDo"]["parentRunId"] == root
    for child in related["children"]:  # the required fields of a run, minus relatedRuns
        assert child["status"] == "QUEUED" and "relatedRuns" not in child
        assert "payload" not in child and "env" not in child

    top = (await http.get(f"/api/v3/runs/{root}")).json()
    assert [c["id"] for c in top["relatedRuns"]["children"]] == [parent]
    assert "parent" not in top["relatedRuns"] and top["depth"] == 0
    row = await quiet_server.engine.get_run(parent)
    assert row["options"]["resume_parent"] is True


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/tasks/http-echo/trigger",
            {"options": {"parentRunId": "run_nope"}},
            "options.parentRunId",
        ),
        ("/api/v1/tasks/http-echo/trigger", {"options": {"parentRunId": 7}}, "options.parentRunId"),
        (
            "/api/v1/tasks/http-echo/trigger",
            {"options": {"resumeParentOnCompletion": "yes"}},
            "options.resumeParentOnCompletion",
        ),
        ("/api/v3/batches", {"runCount": 1, "parentRunId": "run_nope"}, "parentRunId"),
        (
            "/api/v2/tasks/batch",
            {"items": [{"task": "http-echo"}], "parentRunId": "run_nope"},
            "parentRunId",
        ),
    ],
)
async def test_a_bad_parent_is_refused_naming_the_field_and_writes_nothing(
    http: httpx.AsyncClient, quiet_server: QuietServer, path: str, body: dict, field: str
) -> None:
    before = quiet_server.state()
    res = await http.post(path, json=body)
    assert res.status_code == 422, res.text
    assert field in res.json()["error"]
    assert quiet_server.state() == before
