"""The v4 batch's items route reads its NDJSON body as a stream: each chunk of lines is
checked and written while the client still sends the rest (on `quiet_server`, no worker
runs: what is written stays put). Over a real socket, the body sent in parts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.http.conftest import QuietServer
from trigger_do.api.triggers import STREAM_CHUNK

pytestmark = pytest.mark.timeout(120)


def line(index: int, task: str = "http-echo", payload: object = None) -> bytes:
    item = {"index": index, "task": task, "payload": {"i": index} if payload is None else payload}
    return json.dumps(item).encode() + b"\n"


def written(quiet: QuietServer, batch_id: str) -> int:
    conn = sqlite3.connect(quiet.db)
    try:
        (n,) = conn.execute("SELECT count(*) FROM runs WHERE batch_id = ?", (batch_id,)).fetchone()
    finally:
        conn.close()
    return int(n)


async def create(client: httpx.AsyncClient, count: int) -> str:
    r = await client.post("/api/v3/batches", json={"runCount": count})
    assert r.status_code == 200, r.text
    batch_id: str = r.json()["id"]
    return batch_id


async def test_items_are_written_while_the_client_still_sends(quiet_server: QuietServer) -> None:
    first = STREAM_CHUNK + 10
    total = first + 500
    seen_midway: list[int] = []
    async with httpx.AsyncClient(
        base_url=quiet_server.url, headers=quiet_server.headers, timeout=60
    ) as client:
        batch_id = await create(client, total)

        async def body() -> AsyncIterator[bytes]:
            yield b"".join(line(i) for i in range(first))
            # the first chunk is in the database before the rest of the body is sent
            for _ in range(200):
                if written(quiet_server, batch_id) >= STREAM_CHUNK:
                    break
                await asyncio.sleep(0.05)
            seen_midway.append(written(quiet_server, batch_id))
            yield b"".join(line(i) for i in range(first, total))

        r = await client.post(f"/api/v3/batches/{batch_id}/items", content=body())
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] and r.json()["itemsAccepted"] == total
        assert seen_midway[0] >= STREAM_CHUNK
        got = (await client.get(f"/api/v2/batches/{batch_id}")).json()
        assert got["runCount"] == total


async def test_a_bad_line_later_in_the_stream_leaves_the_batch_invisible_until_resent(
    quiet_server: QuietServer,
) -> None:
    total = STREAM_CHUNK * 2
    good = [line(i) for i in range(total)]
    bad = list(good)
    bad[STREAM_CHUNK + 5] = line(STREAM_CHUNK + 5, payload=None).replace(b'"index"', b'"idx"')
    async with httpx.AsyncClient(
        base_url=quiet_server.url, headers=quiet_server.headers, timeout=60
    ) as client:
        batch_id = await create(client, total)
        r = await client.post(f"/api/v3/batches/{batch_id}/items", content=b"".join(bad))
        assert r.status_code == 422
        assert f"line {STREAM_CHUNK + 6}" in r.json()["error"]
        assert written(quiet_server, batch_id) == STREAM_CHUNK  # the chunk before it
        runs = await client.get("/api/v1/runs", params={"filter[batch]": batch_id})
        assert runs.json()["data"] == []  # not sealed: none of its runs is visible
        r = await client.post(f"/api/v3/batches/{batch_id}/items", content=b"".join(good))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["sealed"] and out["itemsDeduplicated"] == STREAM_CHUNK
        assert out["itemsAccepted"] == total - STREAM_CHUNK
        assert written(quiet_server, batch_id) == total
