"""The Realtime shape routes over a real socket (`/realtime/v1/...`): Electric's long-polling
as the official client speaks it. The server here has no workers, so nothing changes a run
but the test; live requests are held `HOLD` seconds (20 in production)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import KEY, TASKS, ServerThread, free_port
from tests.http.test_public_tokens import token
from trigger_do.api.app import create_app
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import EnvSettings, open_local
from trigger_do.task import tasks_in

pytestmark = pytest.mark.timeout(120)
HOLD = 3.0


@dataclass
class Realtime:
    url: str
    db: Path
    app: Any


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Realtime]:
    import importlib

    known: dict[str, Any] = {}
    for name in TASKS:
        known.update(tasks_in(importlib.import_module(name)))
    db = tmp_path_factory.mktemp("realtime") / "r.db"
    platform, _ = open_local(db, settings=EnvSettings({"TRIGGER_DO_REALTIME_HOLD": str(HOLD)}))
    app = create_app(Engine(platform, find=known.get), KEY)
    thread = ServerThread(app, free_port())
    thread.start()
    try:
        yield Realtime(f"http://127.0.0.1:{thread.port}", db, app)
    finally:
        thread.stop()


@pytest.fixture
async def http(rt: Realtime) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=rt.url, headers=headers, timeout=30) as c:
        yield c


async def trigger(http: httpx.AsyncClient, payload: Any = None, **options: Any) -> str:
    r = await http.post(
        "/api/v1/tasks/http-echo/trigger", json={"payload": payload, "options": options}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def set_metadata(http: httpx.AsyncClient, run_id: str, metadata: dict[str, Any]) -> None:
    r = await http.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": metadata})
    assert r.status_code == 200, r.text


def changes(r: httpx.Response) -> list[dict[str, Any]]:
    """The change messages of a shape response (which must end `up-to-date`)."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert body[-1] == {"headers": {"control": "up-to-date"}}
    return list(body[:-1])


def follow(r: httpx.Response, **params: str) -> dict[str, str]:
    """The query of the request after `r`, as the client builds it."""
    return {
        "offset": r.headers["electric-offset"],
        "handle": r.headers["electric-handle"],
        **params,
    }


async def test_a_snapshot_is_the_run_as_the_client_parses_it(http: httpx.AsyncClient) -> None:
    run_id = await trigger(http, {"to": "ada"}, tags=["rt-a", 'quote"d'], metadata={"n": 1})
    r = await http.get(f"/realtime/v1/runs/{run_id}", params={"offset": "-1"})
    [msg] = changes(r)
    assert r.headers["electric-handle"] == f"run-{run_id}"
    assert r.headers["electric-offset"].split("_")[0].isdigit()
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["access-control-allow-origin"] == "*"
    schema = json.loads(r.headers["electric-schema"])
    assert schema["runTags"] == {"type": "text", "dims": 1} and schema["isTest"]["type"] == "bool"
    assert msg["headers"] == {"operation": "insert"}
    assert msg["key"] == f'"public"."TaskRun"/"{run_id}"'
    value = msg["value"]
    assert value["id"] == value["friendlyId"] == run_id
    assert value["taskIdentifier"] == "http-echo"
    assert value["status"] == "PENDING"  # the client reads it as QUEUED
    assert not value["createdAt"].endswith("Z") and value["createdAt"][10] == "T"
    assert json.loads(value["payload"]) == {"to": "ada"}
    assert value["payloadType"] == "application/json"
    assert json.loads(value["metadata"]) == {"n": 1}
    assert value["runTags"] == '{"rt-a","quote\\"d"}'
    assert value["completedAt"] is None and value["output"] is None
    assert all(v is None or isinstance(v, str) for v in value.values())


async def test_a_live_request_is_answered_when_the_run_changes(http: httpx.AsyncClient) -> None:
    run_id = await trigger(http, 1)
    first = await http.get(f"/realtime/v1/runs/{run_id}", params={"offset": "-1"})
    import asyncio

    live = asyncio.ensure_future(
        http.get(f"/realtime/v1/runs/{run_id}", params=follow(first, live="true", cursor="1"))
    )
    await asyncio.sleep(0.3)
    assert not live.done()  # held: nothing changed yet
    started = time.monotonic()
    await set_metadata(http, run_id, {"progress": 50})
    r = await live
    assert time.monotonic() - started < HOLD * 0.8  # answered by the change, not the timeout
    [msg] = changes(r)
    assert msg["headers"] == {"operation": "update"}
    assert json.loads(msg["value"]["metadata"]) == {"progress": 50}
    assert r.headers["electric-cursor"]
    assert r.headers["electric-offset"] != first.headers["electric-offset"]
    assert r.headers["electric-handle"] == first.headers["electric-handle"]

    # cancel: a final status with its completion time, which closes the official client
    live = asyncio.ensure_future(
        http.get(f"/realtime/v1/runs/{run_id}", params=follow(r, live="true"))
    )
    await asyncio.sleep(0.2)
    assert (await http.post(f"/api/v2/runs/{run_id}/cancel")).status_code == 200
    [msg] = changes(await live)
    assert msg["value"]["status"] == "CANCELED" and msg["value"]["completedAt"]


async def test_a_held_request_times_out_with_a_bare_up_to_date(http: httpx.AsyncClient) -> None:
    run_id = await trigger(http)
    first = await http.get(f"/realtime/v1/runs/{run_id}")
    started = time.monotonic()
    r = await http.get(f"/realtime/v1/runs/{run_id}", params=follow(first, live="true"))
    waited = time.monotonic() - started
    assert changes(r) == []
    assert HOLD * 0.8 <= waited < HOLD * 1.5
    assert r.headers["electric-offset"] == first.headers["electric-offset"]
    assert r.headers["electric-cursor"]


async def test_a_client_resumes_from_its_offset(http: httpx.AsyncClient) -> None:
    """A client away while the run changed gets the change at once on its next live
    request; a non-live request with a handle catches up with the whole row."""
    run_id = await trigger(http)
    first = await http.get(f"/realtime/v1/runs/{run_id}")
    await set_metadata(http, run_id, {"step": 2})
    started = time.monotonic()
    r = await http.get(f"/realtime/v1/runs/{run_id}", params=follow(first, live="true"))
    assert time.monotonic() - started < HOLD * 0.5
    [msg] = changes(r)
    assert json.loads(msg["value"]["metadata"]) == {"step": 2}
    again = await http.get(f"/realtime/v1/runs/{run_id}", params=follow(first))
    [msg] = changes(again)
    assert json.loads(msg["value"]["metadata"]) == {"step": 2}
    assert again.headers["electric-offset"] == r.headers["electric-offset"]
    assert "electric-schema" in again.headers


async def test_a_write_by_another_process_wakes_a_held_request(
    http: httpx.AsyncClient, rt: Realtime
) -> None:
    import asyncio

    run_id = await trigger(http)
    first = await http.get(f"/realtime/v1/runs/{run_id}")
    live = asyncio.ensure_future(
        http.get(f"/realtime/v1/runs/{run_id}", params=follow(first, live="true"))
    )
    await asyncio.sleep(0.2)
    script = (
        "import asyncio, sys\n"
        "from trigger_do.engine import Engine\n"
        "from trigger_do.platform.local.platform import open_local\n"
        "engine = Engine(open_local(sys.argv[1])[0])\n"
        "asyncio.run(engine.update_run(sys.argv[2], metadata={'by': 'another process'}))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(rt.db), run_id], check=True, timeout=60)
    [msg] = changes(await live)
    assert json.loads(msg["value"]["metadata"]) == {"by": "another process"}


async def test_a_tag_feed_sends_only_what_changed(http: httpx.AsyncClient) -> None:
    import asyncio

    a = await trigger(http, "a", tags=["rt-feed"])
    b = await trigger(http, "b", tags=["rt-feed", "other"])
    await trigger(http, "c", tags=["not-this-one"])
    first = await http.get("/realtime/v1/runs", params={"tags": "rt-feed", "offset": "-1"})
    assert {m["value"]["id"] for m in changes(first)} == {a, b}
    assert first.headers["electric-handle"].startswith("tags-")

    live = asyncio.ensure_future(
        http.get("/realtime/v1/runs", params=follow(first, tags="rt-feed", live="true"))
    )
    await asyncio.sleep(0.2)
    await set_metadata(http, b, {"seen": True})
    r = await live
    assert [(m["value"]["id"], m["headers"]["operation"]) for m in changes(r)] == [(b, "update")]

    live = asyncio.ensure_future(
        http.get("/realtime/v1/runs", params=follow(r, tags="rt-feed", live="true"))
    )
    await asyncio.sleep(0.2)
    c = await trigger(http, "d", tags=["rt-feed"])
    r = await live
    assert [(m["value"]["id"], m["headers"]["operation"]) for m in changes(r)] == [(c, "insert")]


async def test_a_tag_feed_looks_back_at_most_a_day(http: httpx.AsyncClient) -> None:
    r = await http.get("/realtime/v1/runs", params={"tags": "rt-a", "createdAt": "30d"})
    created_from = int(r.headers["electric-handle"].split("-")[1]) / 1000
    assert time.time() - created_from <= 86400 + 5
    bad = await http.get("/realtime/v1/runs", params={"tags": "rt-a", "createdAt": "soon"})
    assert bad.status_code == 400 and "createdAt" in bad.json()["error"]
    bad = await http.get("/realtime/v1/runs", params={"tags": "a,,b"})
    assert bad.status_code == 400 and "tags" in bad.json()["error"]
    # a handle goes back in a header: one with a line break is refused, not echoed (the
    # fuzz test found it as a dropped connection)
    bad = await http.get("/realtime/v1/runs", params={"tags": "rt-a", "handle": "5j\n2"})
    assert bad.status_code == 400 and "handle" in bad.json()["error"]
    # nor one a header cannot start or end with (a space)
    for handle in (" ", " 5j", "5j "):
        bad = await http.get("/realtime/v1/runs", params={"tags": "rt-a", "handle": handle})
        assert bad.status_code == 400 and "handle" in bad.json()["error"]


async def test_a_batch_feed(http: httpx.AsyncClient) -> None:
    import asyncio

    r = await http.post(
        "/api/v2/tasks/batch",
        json={"items": [{"task": "http-echo", "payload": i} for i in range(3)]},
    )
    assert r.status_code == 200, r.text
    batch_id = r.json()["id"]
    first = await http.get(f"/realtime/v1/batches/{batch_id}")
    runs = [m["value"]["id"] for m in changes(first)]
    assert len(runs) == 3 and first.headers["electric-handle"].startswith("batch-")
    live = asyncio.ensure_future(
        http.get(f"/realtime/v1/batches/{batch_id}", params=follow(first, live="true"))
    )
    await asyncio.sleep(0.2)
    await http.post(f"/api/v2/runs/{runs[1]}/cancel")
    [msg] = changes(await live)
    assert msg["value"]["id"] == runs[1] and msg["value"]["status"] == "CANCELED"
    missing = await http.get("/realtime/v1/batches/batch_nope")
    assert missing.status_code == 404


async def test_idle_held_requests_read_nothing(http: httpx.AsyncClient, rt: Realtime) -> None:
    """Fifty held requests on fifty runs: once each was checked, the watcher reads nothing
    but the change signal until something is written (then their feeds, once, together)."""
    import asyncio

    ids = [await trigger(http, i) for i in range(50)]
    firsts = await asyncio.gather(*(http.get(f"/realtime/v1/runs/{i}") for i in ids))
    stats = rt.app.state.realtime.watcher.stats
    held = [
        asyncio.ensure_future(http.get(f"/realtime/v1/runs/{i}", params=follow(f, live="true")))
        for i, f in zip(ids, firsts, strict=True)
    ]
    for _ in range(200):  # every request has arrived (slowly, on a busy machine)
        if stats.waiting == 50:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # and had its first check
    reads, ticks = stats.reads, stats.ticks
    await asyncio.sleep(HOLD * 0.3)
    assert stats.waiting == 50
    assert stats.ticks > ticks and stats.reads == reads  # the signal read, no feed read
    await set_metadata(http, ids[7], {"woke": True})
    done = await held[7]
    assert len(changes(done)) == 1
    rest = await asyncio.gather(*held[:7], *held[8:])
    assert all(changes(r) == [] for r in rest)


async def test_unknown_runs_and_credentials(http: httpx.AsyncClient, rt: Realtime) -> None:
    r = await http.get("/realtime/v1/runs/run_doesnotexist")
    assert r.status_code == 404 and r.json()["error"]
    assert r.headers["access-control-allow-origin"] == "*"
    async with httpx.AsyncClient(base_url=rt.url) as anon:
        r = await anon.get("/realtime/v1/runs/run_doesnotexist")
        assert r.status_code == 401
        r = await anon.get("/realtime/v1/runs", params={"tags": "x"})
        assert r.status_code == 401
        r = await anon.options("/realtime/v1/runs/x")  # a browser's preflight needs no key
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
        bad = {"Authorization": "Bearer tr_dev_wrong"}
        r = await anon.get("/realtime/v1/batches/b", headers=bad)
        assert r.status_code == 401


async def test_public_token_scopes(http: httpx.AsyncClient, rt: Realtime) -> None:
    mine = await trigger(http, tags=["scoped-tag"])
    other = await trigger(http, tags=["elsewhere"])
    r = await http.post(
        "/api/v2/tasks/batch", json={"items": [{"task": "http-echo", "payload": 1}]}
    )
    batch_id = r.json()["id"]

    async def status(tok: str, path: str, **params: str) -> int:
        headers = {"Authorization": f"Bearer {tok}"}
        async with httpx.AsyncClient(base_url=rt.url, headers=headers) as pub:
            return (await pub.get(path, params=params)).status_code

    run_token = token(KEY, [f"read:runs:{mine}"])
    assert await status(run_token, f"/realtime/v1/runs/{mine}") == 200
    assert await status(run_token, f"/realtime/v1/runs/{other}") == 403
    assert await status(run_token, "/realtime/v1/runs", tags="scoped-tag") == 403
    assert await status(run_token, f"/realtime/v1/batches/{batch_id}") == 403

    tag_token = token(KEY, ["read:tags:scoped-tag"])
    assert await status(tag_token, "/realtime/v1/runs", tags="scoped-tag") == 200
    assert await status(tag_token, "/realtime/v1/runs", tags="elsewhere") == 403
    assert await status(tag_token, f"/realtime/v1/runs/{mine}") == 200  # a run with the tag
    assert await status(tag_token, f"/realtime/v1/runs/{other}") == 403

    batch_token = token(KEY, [f"read:batch:{batch_id}"])
    assert await status(batch_token, f"/realtime/v1/batches/{batch_id}") == 200
    assert await status(batch_token, f"/realtime/v1/runs/{mine}") == 403

    every = token(KEY, ["read:runs"])
    assert await status(every, f"/realtime/v1/batches/{batch_id}") == 200
    assert await status(every, "/realtime/v1/runs", tags="elsewhere") == 200
    write_only = token(KEY, ["trigger:tasks:http-echo"])
    assert await status(write_only, f"/realtime/v1/runs/{mine}") == 403
    expired = token(KEY, [f"read:runs:{mine}"], ttl=-10)
    assert await status(expired, f"/realtime/v1/runs/{mine}") == 401


async def test_a_set_feed_resumes_from_an_offset_whose_answer_was_dropped(
    http: httpx.AsyncClient,
) -> None:
    """Electric's client sometimes aborts a catch-up request; the server answered it all the
    same. The next live request names the older offset: it must get what changed since."""
    a = await trigger(http, "a", tags=["rt-dropped"])
    b = await trigger(http, "b", tags=["rt-dropped"])
    first = await http.get("/realtime/v1/runs", params={"tags": "rt-dropped"})
    await set_metadata(http, a, {"changed": 1})
    dropped = await http.get("/realtime/v1/runs", params=follow(first, tags="rt-dropped"))
    assert len(changes(dropped)) == 2  # a catch-up: every row (the client never reads it)
    r = await http.get("/realtime/v1/runs", params=follow(first, tags="rt-dropped", live="true"))
    assert [(m["value"]["id"], m["headers"]["operation"]) for m in changes(r)] == [(a, "update")]
    assert b not in {m["value"]["id"] for m in changes(r)}


def test_the_readme_curl_example(rt: Realtime, tmp_path: Path) -> None:
    """The README's Realtime curl block, as written: a snapshot, then a live request held
    until the run is canceled a second later."""
    import re

    readme = Path(__file__).resolve().parents[2] / "README.md"
    [block] = re.findall(r"^```bash realtime\n(.*?)^```", readme.read_text(), re.S | re.M)
    env = {"TRIGGER_API_URL": rt.url, "TRIGGER_SECRET_KEY": KEY, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + block.replace("\n#", "\necho\n#", 1)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    snapshot, live = done.stdout.strip().split("\n", 1)
    assert json.loads(snapshot)[0]["value"]["status"] == "DELAYED"
    assert json.loads(live)[0]["value"]["status"] == "CANCELED"


async def test_a_client_that_leaves_ends_its_held_request(
    http: httpx.AsyncClient, rt: Realtime
) -> None:
    import asyncio

    run_id = await trigger(http)
    first = await http.get(f"/realtime/v1/runs/{run_id}")
    await asyncio.sleep(0.3)  # earlier tests' waiters have gone
    stats = rt.app.state.realtime.watcher.stats
    assert stats.waiting == 0
    async with httpx.AsyncClient(base_url=rt.url, headers=http.headers) as leaving:
        held = asyncio.ensure_future(
            leaving.get(f"/realtime/v1/runs/{run_id}", params=follow(first, live="true"))
        )
        await asyncio.sleep(0.3)
        assert stats.waiting == 1
        held.cancel()  # closes its connection
        await asyncio.gather(held, return_exceptions=True)
    for _ in range(50):
        if stats.waiting == 0:
            break
        await asyncio.sleep(0.02)
    assert stats.waiting == 0  # long before its hold (HOLD seconds) ends


async def test_version_columns_give_the_whole_rows_offsets(
    http: httpx.AsyncClient, rt: Realtime
) -> None:
    """The watcher compares offsets computed from the runs' version columns alone (no payload
    or output); they must be the offsets of the whole rows, for every kind of feed."""
    from trigger_do.realtime.feeds import Feed

    run_id = await trigger(http, {"big": "x" * 10_000}, tags=["rt-light"], metadata={"a": [1]})
    await trigger(http, 2, tags=["rt-light"])
    await http.post(f"/api/v2/runs/{run_id}/cancel")  # an error-free final state
    r = await http.post(
        "/api/v2/tasks/batch", json={"items": [{"task": "http-echo", "payload": 1}] * 2}
    )
    engine = Engine(open_local(rt.db)[0])
    feeds = [
        Feed.run(run_id),
        Feed.run("run_missing"),
        Feed.tags(["rt-light"], time.time() - 3600),
        Feed.tags([], time.time() - 3600),
        Feed.batch(r.json()["id"]),
    ]
    for feed in feeds:
        light, whole = await feed.versions(engine), await feed.read(engine)
        assert light.offset == whole.offset, feed
        assert [x["id"] for x in light.rows] == [x["id"] for x in whole.rows]
    before = (await feeds[0].versions(engine)).offset
    await set_metadata(http, run_id, {"a": [2]})
    after = (await feeds[0].versions(engine)).offset
    assert after != before and after == (await feeds[0].read(engine)).offset


def test_stopping_the_dev_server_answers_held_requests(tmp_path: Path) -> None:
    """Ctrl-C on `trigger-do dev` with a subscriber held: it gets a JSON 503 (its client
    subscribes again later), not a bare 500, and the server stops at once."""
    import os
    import signal
    import threading

    root = Path(__file__).resolve().parents[2]
    port, db = free_port(), tmp_path / "d.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
    args = ["dev", "--tasks", "tests.http.tasks_http", "--port", str(port), "--db", str(db)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trigger_do.cli", *args, "--workers", "1"],
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {(tmp_path / 'secret-key').read_text().strip()}"}
        made = httpx.post(
            f"{url}/api/v1/tasks/http-echo/trigger",
            json={"payload": 1, "options": {"delay": "1h"}},
            headers=headers,
        )
        run_id = made.json()["id"]
        first = httpx.get(f"{url}/realtime/v1/runs/{run_id}", headers=headers)
        answers: list[httpx.Response] = []
        held = threading.Thread(
            target=lambda: answers.append(
                httpx.get(
                    f"{url}/realtime/v1/runs/{run_id}",
                    params=follow(first, live="true"),
                    headers=headers,
                    timeout=60,
                )
            )
        )
        held.start()
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        held.join(30)
        assert time.monotonic() - started < 10, out
        assert proc.returncode == 0, out
        [answer] = answers
        assert answer.status_code == 503 and "stopping" in answer.json()["error"]
        assert "Exception in ASGI application" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_an_offloaded_payload_is_named_and_served_to_the_runs_readers(
    tmp_path: Path,
) -> None:
    """A payload over the packet threshold rides in the row as `application/store` and its
    key; `GET /api/v1/runs/{id}/packets/payload` (the client's `getRunPacketUrl`) gives a
    signed URL that serves it, to the key or a token that reads the run, and to nobody
    else."""
    import dataclasses
    import importlib

    from trigger_do.shared.config import EngineConfig

    known: dict[str, Any] = {}
    for name in TASKS:
        known.update(tasks_in(importlib.import_module(name)))
    platform, _ = open_local(tmp_path / "p.db")
    config = dataclasses.replace(EngineConfig.from_settings(platform.settings), packet_threshold=64)
    thread = ServerThread(create_app(Engine(platform, config, known.get), KEY), free_port())
    thread.start()
    url = f"http://127.0.0.1:{thread.port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}
        ) as http:
            big = {"text": "x" * 500}
            run_id = await trigger(http, big)
            [msg] = changes(await http.get(f"/realtime/v1/runs/{run_id}"))
            assert msg["value"]["payloadType"] == "application/store"
            assert msg["value"]["payload"] == f"packets/{run_id}/payload.json"
            presigned = await http.get(f"/api/v1/runs/{run_id}/packets/payload")
            assert presigned.status_code == 200, presigned.text
            signed = presigned.json()["presignedUrl"]
            async with httpx.AsyncClient() as anyone:  # the URL needs no key
                got = await anyone.get(signed)
                assert got.status_code == 200 and got.json() == big
                assert got.headers["content-type"] == "application/json"
                assert (
                    await anyone.get(signed.replace("signature=", "signature=0"))
                ).status_code == 403
                assert (
                    await anyone.get(signed.replace("/payload?", "/output?"))
                ).status_code == 403
            assert (await http.get(f"/api/v1/runs/{run_id}/packets/output")).status_code == 404
            assert (await http.get(f"/api/v1/runs/{run_id}/packets/other")).status_code == 404
            small = await trigger(http, 1)
            assert (await http.get(f"/api/v1/runs/{small}/packets/payload")).status_code == 404
        for scopes, status in (([f"read:runs:{run_id}"], 200), ([f"read:runs:{small}"], 403)):
            bearer = {"Authorization": f"Bearer {token(KEY, scopes)}"}
            async with httpx.AsyncClient(base_url=url, headers=bearer) as pub:
                assert (
                    await pub.get(f"/api/v1/runs/{run_id}/packets/payload")
                ).status_code == status
    finally:
        thread.stop()
