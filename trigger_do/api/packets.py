"""Packets: where the official client uploads a large payload before triggering with it.

`PUT /api/v2/packets/{name}` answers a signed upload URL and the storage path to trigger
with (`payloadType: "application/store"`); `GET /api/v1/packets/{path}` a signed download
URL. Each signature covers the method, the path and the expiry, so a download URL cannot
upload. An upload URL works once: a second PUT (or one after the packet was triggered with,
in this server process) gets 409. Uploads are `application/json`, `application/super+json`
or `text/plain`, in UTF-8; they are served back as the JSON type they were uploaded with,
anything else as `application/octet-stream`, never sniffed (`X-Content-Type-Options`)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..ports import Blobs
from . import auth
from .errors import HTTPError
from .fields import Expires
from .jsonbody import read_body
from .keys import sign, signature_ok
from .requests import engine_of, query_value

UPLOADS = "uploads/"
UPLOAD_URL_TTL = 900.0  # seconds an upload URL stays valid (the client uses it at once)
DOWNLOAD_URL_TTL = 3600.0
TYPES = ("application/json", "application/super+json", "text/plain")
SERVED_AS = {"application/json", "application/super+json"}  # else application/octet-stream
# A packet name: 1 to 8 segments of letters, digits, `.`, `_`, `-`, none starting with a
# dot (so never `.`, `..` or hidden), none empty (no `//`, no trailing `/`).
_SEGMENT = r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,99}"
NAME = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,7}}", re.ASCII)
STORAGE_PATH = re.compile(rf"uploads/[0-9a-f]{{16}}/{NAME.pattern}", re.ASCII)
HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": "no-store",
}


def valid_name(name: str) -> bool:
    return len(name) <= 200 and NAME.fullmatch(name) is not None


def valid_storage_path(path: Any) -> bool:
    """Whether `path` names an upload (as `presign_upload` makes them) and nothing else."""
    return isinstance(path, str) and len(path) <= 240 and STORAGE_PATH.fullmatch(path) is not None


def _signed_url(request: Request, method: str, path: str, ttl: float) -> str:
    expires = int(engine_of(request).now() + ttl)
    sig = sign(auth.secret_of(request), f"{method}|{path}|{expires}")
    url = request.url_for("packet", path=path)
    return str(url.include_query_params(expires=expires, signature=sig))


@auth.accepts_public_tokens
async def presign_upload(request: Request) -> Response:
    """Where to upload a large payload before triggering with it (a public token that may
    trigger may upload)."""
    if not auth.may_trigger(auth.caller_of(request)):
        raise HTTPError(403, "this public access token may not trigger, so may not upload")
    name = request.path_params["filename"]
    if not valid_name(name):
        raise HTTPError(
            400,
            f"invalid packet filename {name[:100]!r}: use up to 8 /-separated parts of "
            "letters, digits, '.', '_' and '-', none starting with '.'",
        )
    path = f"{UPLOADS}{secrets.token_hex(8)}/{name}"
    url = _signed_url(request, "PUT", path, UPLOAD_URL_TTL)
    return JSONResponse({"presignedUrl": url, "storagePath": path})


async def presign_download(request: Request) -> Response:
    path = request.path_params["filename"]
    if not valid_storage_path(path):
        raise HTTPError(404, f"no packet {path[:100]!r}")
    return JSONResponse({"presignedUrl": _signed_url(request, "GET", path, DOWNLOAD_URL_TTL)})


def _spent(request: Request) -> dict[str, float]:
    """Upload paths used in this server process (until their URL expires)."""
    state = request.app.state
    if not hasattr(state, "spent_uploads"):
        state.spent_uploads = {}
    spent: dict[str, float] = state.spent_uploads
    now = engine_of(request).now()
    for path, expires in list(spent.items()):
        if expires < now:
            del spent[path]
    return spent


def _check_signature(request: Request, path: str) -> int:
    method = "GET" if request.method in ("GET", "HEAD") else request.method
    expires: int | None
    try:
        expires = query_value(Expires, "expires", request.query_params.get("expires"))
    except HTTPError:
        expires = None
    sig = request.query_params.get("signature", "")
    if (
        expires is None
        or expires < engine_of(request).now()
        or not valid_storage_path(path)
        or not sig.isascii()
        or not signature_ok(auth.secret_of(request), f"{method}|{path}|{expires}", sig)
    ):
        raise HTTPError(403, f"invalid or expired packet URL for {method}")
    return int(expires)


async def packet(request: Request) -> Response:
    """PUT (upload) or GET a packet through a signed URL (no bearer key on these)."""
    path = request.path_params["path"]
    expires = _check_signature(request, path)
    blobs: Blobs = request.app.state.engine.platform.blobs
    if request.method in ("GET", "HEAD"):
        data = await blobs.get(path)
        if data is None:
            raise HTTPError(404, f"no packet {path!r}")
        stored = await blobs.get(path + ".type")
        kind = stored.decode("utf-8", "replace") if stored else "application/json"
        media = kind if kind in SERVED_AS else "application/octet-stream"
        return Response(data, media_type=media, headers=HEADERS)
    return await _upload(request, blobs, path, expires)


async def _upload(request: Request, blobs: Blobs, path: str, expires: int) -> Response:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in TYPES:
        raise HTTPError(415, f"a packet is one of {', '.join(TYPES)}, not {kind[:100]!r}")
    used = HTTPError(409, "this upload URL was used already: ask for a new one")
    spent = _spent(request)
    if path in spent:
        raise used
    spent[path] = float(expires)  # claimed before any await: a concurrent PUT sees it
    try:
        if await blobs.get(path + ".type") is not None:  # used by another server process
            raise used
        # as a trigger's body: the text may be larger than the payload it decodes to, whose
        # own limit the trigger checks (413 with its size)
        limit = 2 * request.app.state.engine.config.payload_limit + 64 * 1024
        data = await read_body(request, limit)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPError(400, f"a packet is UTF-8 text: {exc}") from None
        await blobs.put(path + ".type", kind.encode(), "text/plain")
        try:
            await blobs.put(path, data, kind)
        except BaseException:
            await drop(blobs, [path])
            raise
    except BaseException:
        spent.pop(path, None)  # nothing was stored by this request
        raise
    return JSONResponse({"ok": True})


async def drop(blobs: Blobs, paths: list[str]) -> None:
    """Delete uploads (after their trigger copied them into runs, or a failed upload)."""
    for path in paths:
        if valid_storage_path(path):
            await blobs.delete(path)
            await blobs.delete(path + ".type")


def spend(request: Request, paths: list[str]) -> None:
    """Remember uploads a trigger used (their URL may not upload them again)."""
    spent = _spent(request)
    until = engine_of(request).now() + UPLOAD_URL_TTL
    for path in paths:
        spent[path] = until
