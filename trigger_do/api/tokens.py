"""Minting public access tokens (secret key only): the claims the official client signs its
own tokens with (`POST /api/v1/auth/jwt/claims`, what `auth.createPublicToken` and
`auth.createTriggerPublicToken` call), and tokens the server signs for a key that cannot
sign them itself (`POST /api/v1/auth/public-tokens`, which the client calls when its key
has the additional `tr_dev_sk_...` form)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import auth
from .jsonbody import read_json_object
from .requests import PublicTokenBody, validate

DEFAULT_TTL = 15 * 60.0  # the client's default for the tokens it signs


async def claims(request: Request) -> Response:
    return JSONResponse(auth.CLAIMS)


async def public_token(request: Request) -> Response:
    body = validate(PublicTokenBody, await read_json_object(request, 64 * 1024, required=True))
    out: dict[str, Any] = {**auth.CLAIMS, "scopes": list(body.scopes)}
    if body.oneTimeUse is True:
        out["otu"] = True
    if body.realtime is not None:
        out["realtime"] = body.realtime
    expires = body.expirationTime if body.expirationTime is not None else time.time() + DEFAULT_TTL
    token = auth.sign(auth.secret_of(request), out, expires)
    return JSONResponse({"token": token})
