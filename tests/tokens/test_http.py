"""Wait tokens over HTTP on a real socket (Trigger.dev's paths and shapes): completion over
the API, through the callback URL (no key; a good and a bad hash), by timeout (the engine's
clock is a test's `FakeClock`, the timers fired as the supervisor fires them), idempotency
keys before and after completion, filters and cursor pages, bad input as 4xx; then the
Python calls (`trigger_do.wait_tokens`, embedded and remote) and the CLI on the same data."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.engine.driver import Driver, FakeClock
from tests.http.conftest import ServerThread, free_port
from trigger_do import wait_tokens
from trigger_do.api.app import create_app
from trigger_do.errors import InvalidWaitTokenError, WaitTokenNotFoundError
from trigger_do.sdk.client import configure
from trigger_do.waitpoints import TokenCompletion, callback_hash

KEY = "tr_dev_WaitTokenTestKey00000000001"
T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC).timestamp()
ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}
R = TypeVar("R")


@dataclass
class Server:
    url: str
    db: Path
    driver: Driver
    thread: ServerThread
    told: list[TokenCompletion]

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """`coro` on the server's loop (the engine's database connection lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.thread.loop).result(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    clock = FakeClock()
    clock.t = T0
    driver = Driver(tmp_path / "t.db", clock=clock)
    told: list[TokenCompletion] = []

    async def hook(done: list[TokenCompletion]) -> None:
        told.extend(done)

    driver.engine.tokens.hooks.append(hook)
    port = free_port()
    thread = ServerThread(create_app(driver.engine, KEY), port)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", tmp_path / "t.db", driver, thread, told)
    finally:
        thread.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        yield c


def _create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    r = http.post("/api/v1/waitpoints/tokens", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_create_complete_retrieve(server: Server, http: httpx.Client) -> None:
    made = _create(http, tags=["approval", "doc:1"], timeout="1h")
    assert made["id"].startswith("waitpoint_") and made["isCached"] is False
    assert made["url"] == (
        f"{server.url}/api/v1/waitpoints/tokens/{made['id']}/callback/"
        + callback_hash(KEY, made["id"])
    )
    got = http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()
    assert got == {
        "id": made["id"],
        "url": made["url"],
        "status": "WAITING",
        "tags": ["approval", "doc:1"],
        "createdAt": "2026-05-04T08:00:00.000Z",
        "timeoutAt": "2026-05-04T09:00:00.000Z",
    }
    server.run(server.driver.engine.tokens.wait_on(made["id"], "run_x:1"))
    server.driver.clock.t = T0 + 5  # type: ignore[attr-defined]
    r = http.post(f"/api/v1/waitpoints/tokens/{made['id']}/complete", json={"data": {"ok": 1}})
    assert r.status_code == 200 and r.json() == {"success": True}
    got = http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()
    assert got["status"] == "COMPLETED" and got["completedAt"] == "2026-05-04T08:00:05.000Z"
    assert json.loads(got["output"]) == {"ok": 1}
    assert got["outputType"] == "application/json" and got["outputIsError"] is False
    assert [(c.waitpoint, c.ok, c.value()) for c in server.told] == [("run_x:1", True, {"ok": 1})]
    # again: success, no change, nobody told twice
    r = http.post(f"/api/v1/waitpoints/tokens/{made['id']}/complete", json={"data": 2})
    assert r.json() == {"success": True}
    assert json.loads(http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()["output"]) == {
        "ok": 1
    }
    assert len(server.told) == 1


def test_callback_url_without_a_key(server: Server, http: httpx.Client) -> None:
    made = _create(http)
    server.run(server.driver.engine.tokens.wait_on(made["id"], "run_y:2"))
    bad = made["url"][:-4] + ("0000" if not made["url"].endswith("0000") else "1111")
    with httpx.Client(timeout=30) as anyone:  # no Authorization header at all
        r = anyone.post(bad, content=b'{"approved": true}')
        assert r.status_code == 401 and "hash" in r.json()["error"]
        other = _create(http)  # a good hash for another token opens only that one
        wrong = f"{server.url}/api/v1/waitpoints/tokens/{made['id']}/callback/" + callback_hash(
            KEY, other["id"]
        )
        assert anyone.post(wrong, content=b"{}").status_code == 401
        assert http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()["status"] == "WAITING"
        r = anyone.post(made["url"], content=b'{"approved": true}')
        assert r.status_code == 200 and r.json() == {"success": True}
        # nested deeper than any stored JSON may be: refused, the token still waits
        r = anyone.post(other["url"], content=b"[" * 255 + b"]" * 255)
        assert r.status_code == 400 and "nested 255 levels" in r.json()["error"]
        # not JSON: the output is {}
        r = anyone.post(other["url"], content=b"<xml/>")
        assert r.status_code == 200
        # the rest of the API still needs the key
        assert anyone.get(f"{server.url}/api/v1/waitpoints/tokens/{made['id']}").status_code == 401
    got = http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()
    assert got["status"] == "COMPLETED" and json.loads(got["output"]) == {"approved": True}
    assert json.loads(http.get(f"/api/v1/waitpoints/tokens/{other['id']}").json()["output"]) == {}
    assert [(c.waitpoint, c.value()) for c in server.told] == [("run_y:2", {"approved": True})]


def test_timeout(server: Server, http: httpx.Client) -> None:
    made = _create(http, timeout="10m")
    server.run(server.driver.engine.tokens.wait_on(made["id"], "run_z:1"))
    assert server.run(server.driver.engine.fire_due_timers()) == 0
    server.driver.clock.t = T0 + 600  # type: ignore[attr-defined]
    assert server.run(server.driver.engine.fire_due_timers()) == 1
    got = http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()
    assert got["status"] == "TIMED_OUT" and got["outputIsError"] is True
    assert json.loads(got["output"]) == {
        "code": "TRIGGER_WAITPOINT_TIMEOUT",
        "message": "Waitpoint timed out at 2026-05-04T08:10:00.000Z",
    }
    assert [(c.waitpoint, c.ok) for c in server.told] == [("run_z:1", False)]
    # completing a timed-out token: success, it stays timed out
    r = http.post(f"/api/v1/waitpoints/tokens/{made['id']}/complete", json={"data": 1})
    assert r.json() == {"success": True}
    assert http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()["status"] == "TIMED_OUT"


def test_idempotency_key_before_and_after_completion(server: Server, http: httpx.Client) -> None:
    first = _create(http, idempotencyKey="approve-doc-1", idempotencyKeyTTL="1h")
    again = _create(http, idempotencyKey="approve-doc-1")
    assert again == {**first, "isCached": True}
    http.post(f"/api/v1/waitpoints/tokens/{first['id']}/complete", json={"data": "yes"})
    after = _create(http, idempotencyKey="approve-doc-1")
    assert after["id"] == first["id"] and after["isCached"] is True
    got = http.get(f"/api/v1/waitpoints/tokens/{first['id']}").json()
    assert got["idempotencyKey"] == "approve-doc-1"
    assert got["idempotencyKeyExpiresAt"] == "2026-05-04T09:00:00.000Z"
    server.driver.clock.t = T0 + 3601  # type: ignore[attr-defined]
    fresh = _create(http, idempotencyKey="approve-doc-1")
    assert fresh["id"] != first["id"] and fresh["isCached"] is False


def test_list_filters_and_cursor_pages(server: Server, http: httpx.Client) -> None:
    ids = []
    for n in range(5):
        server.driver.clock.t = T0 + n  # type: ignore[attr-defined]
        ids.append(_create(http, tags=[f"n:{n}", "odd" if n % 2 else "even"])["id"])
    http.post(f"/api/v1/waitpoints/tokens/{ids[1]}/complete", json={"data": None})
    newest = ids[::-1]
    page1 = http.get("/api/v1/waitpoints/tokens", params={"page[size]": 2}).json()
    assert [t["id"] for t in page1["data"]] == newest[:2]
    assert set(page1["data"][0]) == {"id", "url", "status", "tags", "createdAt"}
    page2 = http.get(
        "/api/v1/waitpoints/tokens",
        params={"page[size]": 2, "page[after]": page1["pagination"]["next"]},
    ).json()
    assert [t["id"] for t in page2["data"]] == newest[2:4]
    back = http.get(
        "/api/v1/waitpoints/tokens",
        params={"page[size]": 2, "page[before]": page2["pagination"]["previous"]},
    ).json()
    assert [t["id"] for t in back["data"]] == newest[:2]
    page3 = http.get(
        "/api/v1/waitpoints/tokens",
        params={"page[size]": 2, "page[after]": page2["pagination"]["next"]},
    ).json()
    assert [t["id"] for t in page3["data"]] == newest[4:] and "next" not in page3["pagination"]

    def listed(**params: Any) -> list[str]:
        r = http.get("/api/v1/waitpoints/tokens", params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["data"]]

    assert listed(**{"filter[status]": "COMPLETED"}) == [ids[1]]
    assert listed(**{"filter[status]": "WAITING,TIMED_OUT"}) == [ids[4], ids[3], ids[2], ids[0]]
    assert listed(**{"filter[tags]": "odd"}) == [ids[3], ids[1]]
    assert listed(**{"filter[createdAt][from]": str(int((T0 + 3) * 1000))}) == [ids[4], ids[3]]
    assert listed(**{"filter[createdAt][to]": "2026-05-04T08:00:01Z"}) == [ids[1], ids[0]]
    assert listed(**{"filter[createdAt][period]": "2s"}) == [ids[4], ids[3], ids[2]]


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/api/v1/waitpoints/tokens", b"not json", 400),
        ("POST", "/api/v1/waitpoints/tokens", b'{"timeout": "soon"}', 422),
        ("POST", "/api/v1/waitpoints/tokens", b'{"timeout": 5}', 422),
        (
            "POST",
            "/api/v1/waitpoints/tokens",
            b'{"tags": ["a","b","c","d","e","f","g","h","i","j","k"]}',
            422,
        ),
        ("POST", "/api/v1/waitpoints/tokens", b'{"idempotencyKey": ""}', 422),
        ("GET", "/api/v1/waitpoints/tokens?filter[status]=DONE", None, 422),
        ("GET", "/api/v1/waitpoints/tokens?filter[color]=red", None, 400),
        ("GET", "/api/v1/waitpoints/tokens?page[after]=nonsense", None, 422),
        ("GET", "/api/v1/waitpoints/tokens?page[size]=x", None, 400),
        ("GET", "/api/v1/waitpoints/tokens/waitpoint_nope", None, 404),
        ("GET", "/api/v1/waitpoints/tokens/run_abc", None, 404),
        ("POST", "/api/v1/waitpoints/tokens/waitpoint_nope/complete", b'{"data": 1}', 404),
        ("POST", "/api/v1/waitpoints/tokens/waitpoint_nope/callback/00", b"{}", 401),
    ],
)
def test_bad_input_is_4xx_and_writes_nothing(
    server: Server, http: httpx.Client, method: str, path: str, body: bytes | None, status: int
) -> None:
    r = http.request(method, path, content=body)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    assert http.get("/api/v1/waitpoints/tokens").json()["data"] == []


def test_a_public_token_completes_only_its_own_token(server: Server, http: httpx.Client) -> None:
    from trigger_do.api import auth

    mine, other = _create(http), _create(http)
    claims = {"sub": "env_local", "pub": True, "scopes": [f"write:waitpoints:{mine['id']}"]}
    public = auth.sign(KEY, claims, 4_000_000_000)
    headers = {"Authorization": f"Bearer {public}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        assert (
            c.post(f"/api/v1/waitpoints/tokens/{other['id']}/complete", json={}).status_code == 403
        )
        assert c.get(f"/api/v1/waitpoints/tokens/{mine['id']}").status_code == 403
        r = c.post(f"/api/v1/waitpoints/tokens/{mine['id']}/complete", json={"data": 1})
        assert r.status_code == 200, r.text


# --- Python (embedded and remote) and the CLI ---------------------------------------------


@pytest.fixture(params=["embedded", "remote"])
def mode(request: pytest.FixtureRequest, server: Server) -> Iterator[str]:
    if request.param == "embedded":
        configure(db=str(server.db))
    else:
        configure(api_url=server.url, secret_key=KEY)
    try:
        yield str(request.param)
    finally:
        configure()


async def test_python_calls(mode: str) -> None:
    token = await wait_tokens.create(timeout="1h", idempotency_key="k-" + mode, tags=["py"])
    assert token.id.startswith("waitpoint_") and not token.is_cached
    assert f"/api/v1/waitpoints/tokens/{token.id}/" in token.url
    again = await wait_tokens.create(idempotency_key="k-" + mode)
    assert again.id == token.id and again.is_cached
    info = await wait_tokens.retrieve(token)
    assert info.status == "WAITING" and info.tags == ["py"] and info.output is None
    assert info.timeout_at is not None and info.idempotency_key == "k-" + mode
    await wait_tokens.complete(token, {"approved": True})
    info = await wait_tokens.retrieve(token.id)
    assert info.status == "COMPLETED" and info.output == {"approved": True} and info.error is None
    page = await wait_tokens.list(status="COMPLETED", tags=["py"])
    assert [t.id for t in page.data] == [token.id]
    others = [await wait_tokens.create(tags=["pages-" + mode]) for _ in range(3)]
    first = await wait_tokens.list(tags="pages-" + mode, limit=2)
    assert [t.id for t in first.data] == [others[2].id, others[1].id] and first.next
    second = await wait_tokens.list(tags="pages-" + mode, limit=2, after=first.next)
    assert [t.id for t in second.data] == [others[0].id] and second.next is None
    with pytest.raises(WaitTokenNotFoundError):
        await wait_tokens.retrieve("waitpoint_nope")
    with pytest.raises(WaitTokenNotFoundError):
        await wait_tokens.complete("waitpoint_nope", 1)
    with pytest.raises(InvalidWaitTokenError):
        await wait_tokens.create(timeout="soon")
    with pytest.raises(InvalidWaitTokenError):
        await wait_tokens.list(limit=0)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trigger_do.cli", *args],
        env={**ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("where", ["--db", "--target"])
def test_cli_list_and_complete(server: Server, http: httpx.Client, where: str) -> None:
    made = _create(http, tags=["cli"])
    target = [where, str(server.db) if where == "--db" else server.url]
    env_key = {"TRIGGER_SECRET_KEY": KEY}
    ENV.update(env_key)
    try:
        out = _cli("tokens", "list", "--status", "waiting", *target)
        assert out.returncode == 0, out.stderr
        assert made["id"] in out.stdout and "WAITING" in out.stdout and "[cli]" in out.stdout
        done = _cli("tokens", "complete", made["id"], '{"by": "cli"}', *target)
        assert done.returncode == 0, done.stderr
        assert f"completed {made['id']}" in done.stdout
        listed = _cli("tokens", "list", "--json", "--tag", "cli", *target)
        assert json.loads(listed.stdout)[0]["status"] == "COMPLETED"
        bad = _cli("tokens", "complete", made["id"], "{not json", *target)
        assert bad.returncode == 2 and "JSON" in bad.stderr
        missing = _cli("tokens", "complete", "waitpoint_nope", *target)
        assert missing.returncode == 2 and "waitpoint_nope" in missing.stderr
    finally:
        for k in env_key:
            ENV.pop(k)
    got = http.get(f"/api/v1/waitpoints/tokens/{made['id']}").json()
    assert json.loads(got["output"]) == {"by": "cli"}


# --- a run in a worker process waits on a token, completed through its callback URL -------


def test_a_worker_run_resumes_through_the_callback_url(tmp_path: Path) -> None:
    from trigger_do.platform.local.runtime import LocalRuntime

    runtime = LocalRuntime(
        ["tests.tokens.tasks_tokens"], tmp_path / "r.db", workers=1, poll_interval=0.01
    )
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as http:
            run_id = http.post("/api/v1/tasks/tok-approve/trigger", json={"payload": {}}).json()[
                "id"
            ]
            token = _poll(lambda: http.get("/api/v1/waitpoints/tokens").json()["data"])
            _poll(lambda: http.get(f"/api/v3/runs/{run_id}").json()["status"] == "WAITING")
            with httpx.Client() as anyone:  # no key: the URL authenticates itself
                assert anyone.post(token[0]["url"], json={"approved": "yes"}).status_code == 200
            run = _poll(lambda: _final(http.get(f"/api/v3/runs/{run_id}").json()))
            assert run["status"] == "COMPLETED", run
            assert run["output"]["output"] == {"approved": "yes"} and run["output"]["ok"]
            assert run["output"]["token"] == token[0]["id"]
    finally:
        thread.stop()


def _final(run: dict[str, Any]) -> dict[str, Any] | None:
    return run if run["isCompleted"] else None


def _poll(check: Any, timeout: float = 30.0) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
