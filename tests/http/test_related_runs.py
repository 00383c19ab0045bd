"""Parent and child runs over the REST API (the official client's fields): `parentRunId`
and `resumeParentOnCompletion` recorded, and shown in `relatedRuns`, `depth` and
`triggerFunction`; a parent that does not exist is a 422 naming the field."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import QuietServer, Server

pytestmark = pytest.mark.timeout(60)
NODE_CLIENT = Path(__file__).resolve().parents[1] / "node_client"  # its node_modules


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


async def test_a_parent_awaiting_its_child_through_the_server(server: Server) -> None:
    """With the server's workers: a run triggered over HTTP awaits a child inside its task;
    both show the link (`triggerAndWait`)."""
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as c:
        res = await c.post("/api/v1/tasks/http-parent/trigger", json={"payload": {"x": 1}})
        parent = res.json()["id"]
        deadline = time.monotonic() + 30
        while (got := (await c.get(f"/api/v3/runs/{parent}")).json())["status"] != "COMPLETED":
            assert time.monotonic() < deadline, got["status"]
            await asyncio.sleep(0.05)
        assert got["output"] == {"child": {"x": 1}}
        (child,) = got["relatedRuns"]["children"]
        assert child["triggerFunction"] == "triggerAndWait" and child["depth"] == 1
        back = (await c.get(f"/api/v3/runs/{child['id']}")).json()
        assert back["relatedRuns"]["parent"]["id"] == parent
        assert back["relatedRuns"]["root"]["id"] == parent


CHECK = """
const api = require("@trigger.dev/core/v3");
const runs = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(runs.map((r) => {
  const got = api.RetrieveRunResponse.safeParse(r);
  if (!got.success) return got.error.issues;
  const related = got.data.relatedRuns;
  return [Object.keys(related).sort(), (related.children || []).length];
})));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
async def test_the_official_clients_schema_accepts_related_runs(http: httpx.AsyncClient) -> None:
    """`runs.retrieve`'s zod schema (@trigger.dev/core 4.x) parses the root, parent and
    children this server sends."""
    root = await _trigger(http, "root")
    middle = await _trigger(http, "middle", parentRunId=root)
    leaf = await _trigger(http, "leaf", parentRunId=middle)
    runs = [(await http.get(f"/api/v3/runs/{r}")).json() for r in (root, middle, leaf)]
    done = subprocess.run(
        ["node", "-e", CHECK],
        input=json.dumps(runs),
        cwd=NODE_CLIENT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        [["children"], 1],
        [["children", "parent", "root"], 1],
        [["parent", "root"], 0],
    ]


async def test_the_sdk_links_a_child_to_a_parent_by_id_in_both_modes(mode: str) -> None:
    """`parent_run_id=` on a trigger, embedded or through the server: the status shows it."""
    from tests.http import tasks_http as t

    root = await t.echo.trigger("root")
    child = await t.echo.trigger("child", parent_run_id=root.id)
    status = await child.status()
    assert status.parent_run_id == root.id and status.root_run_id == root.id, mode
    assert (await root.status()).parent_run_id is None
