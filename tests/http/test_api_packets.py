"""Packets (large payloads uploaded before a trigger): safe names, method-bound single-use
URLs, UTF-8 JSON or text only, served back never as something a browser would run, and a
refused or failed upload leaves no file behind."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http.conftest import QuietServer
from tests.http.test_api_limits import refused

pytestmark = pytest.mark.timeout(120)
SJ = "application/super+json"


@pytest.fixture
def api(quiet_server: QuietServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=quiet_server.url, headers=quiet_server.headers, timeout=30) as c:
        yield c


def presign(api: httpx.Client, name: str = "trigger/p/payload.json") -> dict[str, Any]:
    r = api.put(f"/api/v2/packets/{name}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def upload(url: str, data: bytes, kind: str | None = SJ) -> httpx.Response:
    headers = {"content-type": kind} if kind else {}
    return httpx.put(url, content=data, headers=headers)  # a signed URL needs no key


def store_trigger(api: httpx.Client, path: Any, task: str = "http-echo") -> httpx.Response:
    body = {"payload": path, "options": {"payloadType": "application/store"}}
    return api.post(f"/api/v1/tasks/{task}/trigger", json=body)


@pytest.mark.parametrize(
    "name", ["a%2F.", "a%2F..", "a%2F.%2Fb", ".hidden", "a%2F%2Fb", "dir%2F", "a%5Cb", "%2E%2E"]
)
def test_packet_names_never_name_a_folder_or_a_dot(
    quiet_server: QuietServer, api: httpx.Client, name: str
) -> None:
    out = refused(quiet_server, api, "PUT", f"/api/v2/packets/{name}", 400)
    assert "invalid packet filename" in out["error"]


def test_a_storage_path_must_name_an_upload_not_a_folder(
    quiet_server: QuietServer, api: httpx.Client
) -> None:
    made = presign(api)
    assert upload(made["presignedUrl"], json.dumps({"json": 1}).encode()).status_code == 200
    folder = made["storagePath"].rsplit("/", 1)[0]  # uploads/<token>/trigger/p: a folder
    for path in (folder, folder + "/", made["storagePath"] + "/.", "uploads/../t.db", 7, ""):
        before = quiet_server.state()
        r = store_trigger(api, path)
        assert r.status_code == 400, (path, r.text)
        assert "storagePath" in r.json()["error"] or "no uploaded packet" in r.json()["error"]
        assert quiet_server.state() == before
    for path in (folder + "%2F", made["storagePath"] + "%2F.", "uploads/..%2Ft.db"):
        refused(quiet_server, api, "GET", f"/api/v1/packets/{path}", 404)
    down = api.get(f"/api/v1/packets/{folder}").json()["presignedUrl"]
    refused(quiet_server, api, "GET", down, 404)  # a folder holds no packet


def test_a_stored_packet_that_is_not_utf8_is_400(
    quiet_server: QuietServer, api: httpx.Client
) -> None:
    made = presign(api)
    out = refused(quiet_server, api, "PUT", made["presignedUrl"], 400, content=b"\xff\xfe{}")
    assert "UTF-8" in out["error"]
    # one an older server stored anyway: the trigger is refused, not a 500
    path = made["storagePath"]
    target = quiet_server.packets / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\xff\xfe{}")
    (quiet_server.packets / (path + ".type")).write_bytes(SJ.encode())
    before = quiet_server.state()
    r = store_trigger(api, path)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"], r.text
    assert quiet_server.state() == before


def test_a_refused_upload_leaves_nothing_behind(
    quiet_server: QuietServer, api: httpx.Client
) -> None:
    made = presign(api)
    url = made["presignedUrl"]
    refused(
        quiet_server,
        api,
        "PUT",
        url,
        415,
        content=b"<p>hi</p>",
        headers={"content-type": "text/html"},
    )
    refused(quiet_server, api, "PUT", url, 400, content=b"\xc3\x28")
    too_big = b'"' + b"x" * (600 * 1024) + b'"'
    refused(quiet_server, api, "PUT", url, 413, content=too_big, headers={"content-type": SJ})
    # none of those used the URL up
    assert upload(url, json.dumps({"json": {"ok": True}}).encode()).status_code == 200


def test_a_download_url_cannot_upload(quiet_server: QuietServer, api: httpx.Client) -> None:
    made = presign(api)
    assert upload(made["presignedUrl"], b'{"json": {"v": 1}}').status_code == 200
    down = api.get(f"/api/v1/packets/{made['storagePath']}").json()["presignedUrl"]
    out = refused(quiet_server, api, "PUT", down, 403, content=b'{"json": {"v": 666}}')
    assert "PUT" in out["error"]
    assert httpx.get(down).json() == {"json": {"v": 1}}
    # nor an upload URL download, nor a URL for one path serve another
    refused(quiet_server, api, "GET", made["presignedUrl"], 403)
    other = presign(api)["presignedUrl"]
    moved = re.sub(r"/packets/uploads/[0-9a-f]+/", "/packets/uploads/0000000000000000/", other)
    refused(quiet_server, api, "PUT", moved, 403, content=b"{}")


def test_an_upload_url_works_once(quiet_server: QuietServer, api: httpx.Client) -> None:
    made = presign(api)
    url = made["presignedUrl"]
    assert upload(url, b'{"json": {"a": 1}}').status_code == 200
    out = refused(quiet_server, api, "PUT", url, 409, content=b'{"json": {"a": 2}}')
    assert "used already" in out["error"]
    run = store_trigger(api, made["storagePath"])
    assert run.status_code == 200, run.text
    assert not (quiet_server.packets / made["storagePath"]).exists()  # copied into the run
    refused(quiet_server, api, "PUT", url, 409, content=b'{"json": {"a": 3}}')  # still spent
    assert api.get(f"/api/v3/runs/{run.json()['id']}").json()["payload"] == {"a": 1}


@pytest.mark.parametrize(
    ("uploaded", "served"),
    [
        ("text/plain", "application/octet-stream"),
        (SJ, SJ),
        ("application/json", "application/json"),
        (None, "application/json"),
    ],
)
def test_packets_are_served_as_data_never_sniffed(
    api: httpx.Client, uploaded: str | None, served: str
) -> None:
    made = presign(api)
    assert (
        upload(made["presignedUrl"], b'{"json": "<script>1</script>"}', uploaded).status_code == 200
    )
    down = api.get(f"/api/v1/packets/{made['storagePath']}").json()["presignedUrl"]
    got = httpx.get(down)
    assert got.status_code == 200 and got.headers["content-type"] == served
    assert got.headers["x-content-type-options"] == "nosniff"


def test_html_is_not_a_packet(quiet_server: QuietServer, api: httpx.Client) -> None:
    made = presign(api, "page.html")
    body = b"<script>alert(1)</script>"
    out = refused(
        quiet_server, api, "PUT", made["presignedUrl"], 415, content=body,
        headers={"content-type": "text/html"},
    )  # fmt: skip
    assert "text/plain" in out["error"]
