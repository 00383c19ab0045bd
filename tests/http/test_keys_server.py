"""The secret key (env, else generated once and stored beside the database) and
`serve_http`'s clear error on a port in use."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import httpx
import pytest

from tests.http.conftest import free_port
from trigger_do.api.app import create_app
from trigger_do.api.keys import load_or_create_key
from trigger_do.api.server import serve_http
from trigger_do.engine import Engine
from trigger_do.errors import TriggerDoError
from trigger_do.platform.local.platform import open_local


def test_generated_key_is_stored_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    db = tmp_path / "sub" / "t.db"
    key = load_or_create_key(db)
    assert re.fullmatch(r"tr_dev_[A-Za-z0-9]{32}", key) and not key.startswith("tr_dev_sk_")
    assert (db.parent / "secret-key").stat().st_mode & 0o077 == 0
    assert load_or_create_key(db) == key
    monkeypatch.setenv("TRIGGER_SECRET_KEY", "tr_dev_fromenv")
    assert load_or_create_key(db) == "tr_dev_fromenv"


async def test_serve_http_port_in_use_and_clean_stop(tmp_path: Path) -> None:
    platform, _ = open_local(tmp_path / "t.db")
    app = create_app(Engine(platform), "tr_dev_k")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TriggerDoError, match="already in use"):
            await serve_http(app, "127.0.0.1", port)
    port = free_port()
    served = asyncio.ensure_future(serve_http(app, "127.0.0.1", port, handle_signals=False))
    async with httpx.AsyncClient() as http:
        for _ in range(500):
            try:
                r = await http.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.01)
        assert r.json() == {"ok": True}
    served.cancel()
    with pytest.raises(asyncio.CancelledError):
        await served
