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

from ..errors import InvalidDurationError
from ..shared.durations import parse_duration
from . import auth
from .errors import HTTPError
from .payloads import read_json_object

DEFAULT_TTL = 15 * 60.0  # the client's default for the tokens it signs


async def claims(request: Request) -> Response:
    return JSONResponse(auth.CLAIMS)


def expiry(raw: Any, now: float) -> float:
    """`expirationTime` as the client sends it: a duration (`"1h"`) or epoch seconds."""
    if raw is None:
        return now + DEFAULT_TTL
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return now + parse_duration(raw, allow_zero=False)
        except InvalidDurationError as exc:
            raise HTTPError(400, f"invalid expirationTime: {exc}") from None
    raise HTTPError(400, "expirationTime must be a duration like 1h or epoch seconds")


async def public_token(request: Request) -> Response:
    body = await read_json_object(request, 64 * 1024)
    scopes = body.get("scopes")
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(s, str) and s.strip() for s in scopes)
    ):
        raise HTTPError(400, 'scopes must be a non-empty array like ["read:runs:<run id>"]')
    out: dict[str, Any] = {**auth.CLAIMS, "scopes": scopes}
    if body.get("oneTimeUse") is True:
        out["otu"] = True
    if isinstance(body.get("realtime"), dict):
        out["realtime"] = body["realtime"]
    token = auth.sign(auth.secret_of(request), out, expiry(body.get("expirationTime"), time.time()))
    return JSONResponse({"token": token})
