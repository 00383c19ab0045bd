"""A run's offloaded payload or output (a packet: over the engine's packet threshold), for the
official client's Realtime subscriptions: a shape row carries such a value as
`payloadType: "application/store"` (`realtime/rows.py`), and the client then asks
`GET /api/v1/runs/{runId}/packets/{payload|output}` for a URL to read it from
(`getRunPacketUrl`). That URL, `/run-packets/{runId}/{field}?expires=...&signature=...`, is
signed with the secret key over the run, the field and the expiry, and needs no bearer (a
browser fetches it as is); it serves the packet as JSON."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import RunNotFoundError
from . import auth
from .errors import HTTPError
from .fields import Expires
from .keys import sign, signature_ok
from .requests import engine_of, query_value

FIELDS = {"payload": "payload_packet", "output": "output_packet"}
URL_TTL = 3600.0
HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": "no-store",
    "access-control-allow-origin": "*",
}


def _message(run_id: str, field: str, expires: int) -> str:
    return f"GET|run-packet|{run_id}|{field}|{expires}"


async def _packet_key(request: Request, run_id: str, field: str) -> str:
    if field not in FIELDS:
        raise HTTPError(404, f"a run's packets are `payload` and `output`, not {field[:50]!r}")
    row = await engine_of(request).index.get(run_id)
    if row is None:
        raise RunNotFoundError(run_id)
    auth.require(
        request,
        "read",
        super_scopes=("read:runs",),
        runs=row["id"],
        tags=row.get("tags") or [],
        batch=row.get("batch_id"),
        tasks=row["task"],
    )
    key = row.get(FIELDS[field])
    if not key:
        raise HTTPError(404, f"run {run_id}'s {field} is not a packet: the run has it inline")
    return str(key)


@auth.accepts_public_tokens
async def presign(request: Request) -> Response:
    """`GET /api/v1/runs/{run_id}/packets/{field}` -> `{presignedUrl}`."""
    run_id, field = request.path_params["run_id"], request.path_params["field"]
    await _packet_key(request, run_id, field)
    expires = int(engine_of(request).now() + URL_TTL)
    signature = sign(auth.secret_of(request), _message(run_id, field, expires))
    url = request.url_for("run_packet", run_id=run_id, field=field)
    signed = url.include_query_params(expires=expires, signature=signature)
    return JSONResponse({"presignedUrl": str(signed)})


async def serve(request: Request) -> Response:
    """`GET /run-packets/{run_id}/{field}?expires=...&signature=...` (no bearer)."""
    run_id, field = request.path_params["run_id"], request.path_params["field"]
    try:
        expires = query_value(Expires, "expires", request.query_params.get("expires"))
    except HTTPError:
        expires = None
    sig = request.query_params.get("signature", "")
    secret = auth.secret_of(request)
    if (
        expires is None
        or expires < engine_of(request).now()
        or not sig.isascii()
        or not signature_ok(secret, _message(run_id, field, int(expires)), sig)
    ):
        raise HTTPError(403, "invalid or expired packet URL")
    request.scope[auth.CALLER] = auth.SECRET_KEY  # the signature stands for the key
    key = await _packet_key(request, run_id, field)
    data = await engine_of(request).platform.blobs.get(key)
    if data is None:
        raise HTTPError(404, f"run {run_id}'s {field} packet is gone (past retention?)")
    return Response(data, media_type="application/json", headers=HEADERS)
