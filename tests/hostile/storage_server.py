"""Run in a private mount namespace (`unshare -m`) by test_storage.py: the HTTP API over a
database on a 4 MiB tmpfs that a filler file then fills up, then remounted read-only. Prints
one JSON line: what each trigger answered, and how many runs the database holds before and
after."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

import examples.tasks  # noqa: F401  (the app validates payloads against them)
from trigger_do.api.app import create_app
from trigger_do.api.server import make_server
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local

MOUNT = Path(sys.argv[1])
KEY = "tr_dev_StorageTestKey0000000001"


SERVING: list[asyncio.Future[None]] = []  # the servers' tasks (kept referenced)


async def serve(app: Any) -> tuple[Any, int]:
    """`app` on uvicorn on a free port, in this loop; returns the server and the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = make_server(app, "127.0.0.1", port, handle_signals=False)
    SERVING.append(asyncio.ensure_future(server.serve()))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, port


async def main() -> None:
    MOUNT.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(MOUNT)], check=True)
    platform, sql = open_local(MOUNT / "t.db")
    app = create_app(Engine(platform), KEY)
    server, port = await serve(app)
    url = f"http://127.0.0.1:{port}/api/v1/tasks/noop/trigger"
    headers = {"authorization": f"Bearer {KEY}"}
    answers = []
    async with httpx.AsyncClient() as client:
        ok = await client.post(url, json={"payload": {"a": 1}}, headers=headers)
        answers.append([ok.status_code, None, ""])
        # unbuffered: nothing is left in a buffer for close() to fail on
        with open(MOUNT / "filler", "wb", buffering=0) as filler:  # fill to the last block
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
                    os.fsync(filler.fileno())
            except OSError:
                pass
        before = sql.exec("SELECT count(*) FROM runs")[0][0]
        for i in range(20):
            res = await client.post(
                url, json={"payload": {"a": i, "blob": "x" * 20_000}}, headers=headers
            )
            answers.append([res.status_code, res.headers.get("retry-after"), res.text[:300]])
        after = sql.exec("SELECT count(*) FROM runs")[0][0]
        # the same database through a read-only bind mount, served by a second server
        ro = MOUNT.with_name("ro")
        ro.mkdir()
        subprocess.run(["mount", "--bind", str(MOUNT), str(ro)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        ro_platform, _ = open_local(ro / "t.db")
        ro_server, ro_port = await serve(create_app(Engine(ro_platform), KEY))
        res = await client.post(
            f"http://127.0.0.1:{ro_port}/api/v1/tasks/noop/trigger",
            json={"payload": {"a": 0}},
            headers=headers,
        )
        read_only = [res.status_code, res.headers.get("retry-after"), res.text[:300]]
        ro_server.should_exit = True
    server.should_exit = True
    await asyncio.sleep(0.2)
    print(json.dumps({"answers": answers, "before": before, "after": after, "ro": read_only}))


asyncio.run(main())
