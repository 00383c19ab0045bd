"""Public access tokens over a real socket: HS256 JWTs signed with the secret key, as the
official client signs them (issuer, audience, expiry, `scopes`), accepted on the read and
trigger routes they scope and nowhere else."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.http.conftest import Server, free_port
from trigger_do.api.app import create_app
from trigger_do.api.server import serve_http
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local

pytestmark = pytest.mark.timeout(120)
ISS, AUD = "https://id.trigger.dev", "https://api.trigger.dev"


def token(key: str, scopes: list[str] | None, *, ttl: float = 900, **claims: Any) -> str:
    """A token as `generateJWT` in @trigger.dev/core signs it."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": "env_local", "pub": True, "iss": ISS, "aud": AUD, **claims}
    body.update(iat=now, exp=int(now + ttl))
    if scopes is not None:
        body["scopes"] = scopes
    return jwt.encode(body, key, algorithm="HS256")


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=30) as c:
        yield c


def as_token(url: str, tok: str) -> httpx.AsyncClient:
    """A client that authenticates with `tok` (a public access token)."""
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tok}"}, timeout=30)


async def _trigger(http: httpx.AsyncClient, task: str, payload: Any, **options: Any) -> str:
    r = await http.post(
        f"/api/v1/tasks/{task}/trigger", json={"payload": payload, "options": options}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_a_run_token_reads_that_run_only(http: httpx.AsyncClient, server: Server) -> None:
    mine = await _trigger(http, "add", {"a": 1, "b": 2})
    other = await _trigger(http, "add", {"a": 3, "b": 4})
    async with as_token(server.url, token(server.key, [f"read:runs:{mine}"])) as pub:
        r = await pub.get(f"/api/v3/runs/{mine}")
        assert r.status_code == 200 and r.json()["id"] == mine
        r = await pub.get(f"/api/v3/runs/{other}")
        assert r.status_code == 403
        assert (
            f"read:runs:{other}" in r.json()["error"] and "public access token" in r.json()["error"]
        )
        # not on routes it does not scope, whatever its scopes
        for method, path in [
            ("POST", f"/api/v2/runs/{mine}/cancel"),
            ("POST", f"/api/v1/runs/{mine}/replay"),
            ("GET", f"/api/v1/runs/{mine}/logs"),
            ("GET", "/api/v1/queues"),
            ("POST", "/api/v1/auth/jwt/claims"),
            ("POST", "/api/v1/tasks/add/trigger"),
            ("GET", "/api/v1/runs"),
        ]:
            r = await pub.request(method, path, json={"payload": {"a": 1, "b": 1}})
            assert r.status_code == 403, (path, r.text)
    r = await http.get(f"/api/v3/runs/{mine}")
    assert r.json()["status"] != "CANCELED"


async def test_expired_forged_or_malformed_tokens_get_401(
    http: httpx.AsyncClient, server: Server
) -> None:
    rid = await _trigger(http, "add", {"a": 1, "b": 2})
    cases = {
        "expired": token(server.key, [f"read:runs:{rid}"], ttl=-60),
        "signature": token("tr_dev_SomeoneElsesKey000000000000000000", [f"read:runs:{rid}"]),
        "audience": token(server.key, [f"read:runs:{rid}"], aud="https://elsewhere"),
        "garbage": "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
    }
    for name, tok in cases.items():
        async with as_token(server.url, tok) as pub:
            r = await pub.get(f"/api/v3/runs/{rid}")
            assert r.status_code == 401, (name, r.text)
            assert "token" in r.json()["error"], name
    async with as_token(server.url, cases["expired"]) as pub:
        assert "expired" in (await pub.get(f"/api/v3/runs/{rid}")).json()["error"]


async def test_tag_task_batch_and_general_read_scopes(
    http: httpx.AsyncClient, server: Server
) -> None:
    tag = f"tok-{time.time_ns()}"
    tagged = await _trigger(http, "add", {"a": 1, "b": 1}, tags=[tag])
    echo = await _trigger(http, "http-echo", {"x": 1})
    made = (
        await http.post(
            "/api/v2/tasks/batch", json={"items": [{"task": "add", "payload": {"a": 1, "b": 1}}]}
        )
    ).json()
    async with as_token(server.url, token(server.key, [f"read:tags:{tag}"])) as pub:
        assert (await pub.get(f"/api/v3/runs/{tagged}")).status_code == 200
        assert (await pub.get(f"/api/v3/runs/{echo}")).status_code == 403
        page = await pub.get("/api/v1/runs", params={"filter[tag]": tag})
        assert page.status_code == 200 and [r["id"] for r in page.json()["data"]] == [tagged]
        for params in [{}, {"filter[tag]": "other"}, {"filter[tag]": f"{tag},other"}]:
            r = await pub.get("/api/v1/runs", params=params)
            assert r.status_code == 403 and "filter by" in r.json()["error"], params
    async with as_token(server.url, token(server.key, ["read:tasks:http-echo"])) as pub:
        assert (await pub.get(f"/api/v3/runs/{echo}")).status_code == 200
        assert (await pub.get(f"/api/v3/runs/{tagged}")).status_code == 403
        r = await pub.get("/api/v1/runs", params={"filter[taskIdentifier]": "http-echo"})
        assert r.status_code == 200 and all(
            x["taskIdentifier"] == "http-echo" for x in r.json()["data"]
        )
    async with as_token(server.url, token(server.key, [f"read:batch:{made['id']}"])) as pub:
        assert (await pub.get(f"/api/v2/batches/{made['id']}")).status_code == 200
        assert (await pub.get(f"/api/v3/runs/{made['runs'][0]['id']}")).status_code == 200
        assert (await pub.get(f"/api/v3/runs/{tagged}")).status_code == 403
    for scopes in (["read:runs"], ["read:all"], ["admin"]):
        async with as_token(server.url, token(server.key, scopes)) as pub:
            assert (await pub.get(f"/api/v3/runs/{echo}")).status_code == 200
            assert (await pub.get("/api/v1/runs")).status_code == 200
    async with as_token(server.url, token(server.key, None)) as pub:  # no scopes: nothing
        assert (await pub.get(f"/api/v3/runs/{echo}")).status_code == 403


async def test_trigger_tokens_trigger_their_task_once(
    http: httpx.AsyncClient, server: Server
) -> None:
    once = token(server.key, ["trigger:tasks:add"], otu=True)
    async with as_token(server.url, once) as pub:
        r = await pub.post("/api/v1/tasks/http-echo/trigger", json={"payload": {}})
        assert r.status_code == 403 and "trigger:tasks:http-echo" in r.json()["error"]
        r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": "x"}})
        assert r.status_code == 422  # a rejected trigger does not spend the token
        r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 2, "b": 2}})
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        # the server signs the run's token: the client cannot sign with a token
        assert json.loads(r.headers["x-trigger-jwt-claims"]) == {"sub": "env_local", "pub": True}
        run_token = r.headers["x-trigger-jwt"]
        r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 2, "b": 2}})
        assert r.status_code == 401 and "already been used" in r.json()["error"]
    async with as_token(server.url, run_token) as pub:
        assert (await pub.get(f"/api/v3/runs/{rid}")).json()["id"] == rid
    many = token(server.key, ["trigger:tasks:add", "batchTrigger:tasks:add"])
    async with as_token(server.url, many) as pub:
        for _ in range(2):
            r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 1}})
            assert r.status_code == 200
        items = [{"task": "add", "payload": {"a": 1, "b": 1}}]
        assert (await pub.post("/api/v2/tasks/batch", json={"items": items})).status_code == 200
        items.append({"task": "http-echo", "payload": {}})
        assert (await pub.post("/api/v2/tasks/batch", json={"items": items})).status_code == 403
        odd = {"items": [{"task": {"not": "a name"}}]}
        assert (await pub.post("/api/v2/tasks/batch", json=odd)).status_code == 403
        assert (await http.post("/api/v2/tasks/batch", json=odd)).status_code == 422
        odd = {"runCount": 1, "taskIdentifiers": [["add"]]}
        assert (await pub.post("/api/v3/batches", json=odd)).status_code == 403
        r = await pub.post("/api/v3/batches", json={"runCount": 1, "taskIdentifiers": ["add"]})
        assert r.status_code == 200 and "x-trigger-jwt" in r.headers
        line = json.dumps({"index": 0, "task": "http-echo", "payload": None})
        items_path = f"/api/v3/batches/{r.json()['id']}/items"
        assert (await pub.post(items_path, content=line)).status_code == 403
        line = json.dumps(
            {
                "index": 0,
                "task": "add",
                "payload": '{"a": 1, "b": 2}',
                "options": {"payloadType": "application/json"},
            }
        )
        assert (await pub.post(items_path, content=line)).json()["sealed"] is True
        r = await pub.post("/api/v3/batches", json={"runCount": 1})
        assert r.status_code == 403  # a token must name the batch's tasks
        assert (await pub.put("/api/v2/packets/p/payload.json")).status_code == 200


async def test_secret_key_responses_let_the_client_sign(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 1}})
    assert json.loads(r.headers["x-trigger-jwt-claims"]) == {"sub": "env_local", "pub": True}
    assert "x-trigger-jwt" not in r.headers  # the client signs with its own expiry
    r = await http.post("/api/v1/auth/jwt/claims")
    assert r.status_code == 200 and r.json() == {"sub": "env_local", "pub": True}


async def test_server_minted_public_tokens(http: httpx.AsyncClient, server: Server) -> None:
    rid = await _trigger(http, "add", {"a": 1, "b": 1})
    r = await http.post(
        "/api/v1/auth/public-tokens",
        json={"scopes": [f"read:runs:{rid}"], "expirationTime": "1h"},
    )
    assert r.status_code == 200
    claims = jwt.decode(r.json()["token"], server.key, algorithms=["HS256"], audience=AUD)
    assert claims["scopes"] == [f"read:runs:{rid}"] and 3500 < claims["exp"] - time.time() < 3700
    async with as_token(server.url, r.json()["token"]) as pub:
        assert (await pub.get(f"/api/v3/runs/{rid}")).status_code == 200
    for body in ({"scopes": []}, {"scopes": ["read:runs"], "expirationTime": "soon"}):
        r = await http.post("/api/v1/auth/public-tokens", json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] in ("scopes", "expirationTime")


async def test_an_additional_key_gets_server_signed_tokens(tmp_path: Path) -> None:
    """A `tr_dev_sk_...` key cannot sign tokens in the client: the server signs them (the
    run's token after a trigger; `auth.createPublicToken` through /api/v1/auth/public-tokens)."""
    key = "tr_dev_sk_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    platform, _ = open_local(tmp_path / "t.db")
    port = free_port()
    served = asyncio.ensure_future(
        serve_http(create_app(Engine(platform), key), "127.0.0.1", port, handle_signals=False)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            for _ in range(500):
                try:
                    await http.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.01)
            r = await http.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 1}})
            rid, run_token = r.json()["id"], r.headers["x-trigger-jwt"]
            claims = jwt.decode(run_token, key, algorithms=["HS256"], audience=AUD)
            assert claims["scopes"] == [f"read:runs:{rid}"] and claims["pub"] is True
            async with as_token(url, run_token) as pub:
                assert (await pub.get(f"/api/v3/runs/{rid}")).json()["status"] == "QUEUED"
            body = {"scopes": ["trigger:tasks:add"], "oneTimeUse": True}
            once = (await http.post("/api/v1/auth/public-tokens", json=body)).json()["token"]
            async with as_token(url, once) as pub:
                r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 1}})
                assert r.status_code == 200
                r = await pub.post("/api/v1/tasks/add/trigger", json={"payload": {"a": 1, "b": 1}})
                assert r.status_code == 401
    finally:
        served.cancel()
        with pytest.raises(asyncio.CancelledError):
            await served
