"""Who is calling: the secret key (allowed everything) or a public access token (allowed
what its scopes name), and the one check every route makes of it.

A public access token is Trigger.dev's: an HS256 JWT signed with the secret key, issuer
`https://id.trigger.dev`, audience `https://api.trigger.dev`, an expiry, and `scopes` such
as `read:runs:<run id>`, `read:tags:<tag>`, `read:batch:<batch id>`, `read:tasks:<task>`,
`trigger:tasks:<task>`, `batchTrigger:tasks:<task>`, or a whole kind (`read:runs`: every
run). The official client signs them itself with the claims of `POST /api/v1/auth/jwt/claims`
(`handle.publicAccessToken`, `auth.createPublicToken`, `auth.createTriggerPublicToken`);
`otu: true` marks a one-time token (one trigger, then refused).

`Authenticate` (the middleware) refuses any `/api/...` call without a valid credential
(401) and lets a token reach only the routes marked `@accepts_public_tokens` (else 403);
each such route calls `require(...)` with the action and resources it touches."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import jwt
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..shared.serialization import dumps
from .errors import HTTPError
from .keys import key_matches
from .shapes import ENV

ISSUER = "https://id.trigger.dev"
AUDIENCE = "https://api.trigger.dev"
CLAIMS: dict[str, Any] = {"sub": ENV["id"], "pub": True}  # what Trigger.dev's claims route gives
# Keys of this form cannot sign tokens in the client: the server signs them instead.
ADDITIONAL_KEY = re.compile(r"^tr_(dev|stg|prod|preview)_sk_[0-9a-zA-Z]{24}$")
CALLER = "trigger_do.caller"  # the ASGI scope key the middleware stores the caller under
_MARK = "_trigger_do_accepts_public_tokens"
PUBLIC_PATHS = frozenset({"/api/v1/timezones"})  # no key needed: `schedules.timezones` sends none
# outside /api/ but behind the key all the same (`/metrics` may be made public: create_app)
GUARDED_PATHS = frozenset({"/mcp", "/metrics"})
# No key needed: a wait token's callback URL, called by third parties that hold no key. The
# HMAC-SHA256 of the token id in its path is its authentication (api/waitpoints.py checks it).
PUBLIC_PATTERNS = (re.compile(r"/api/v1/waitpoints/tokens/[^/]+/callback/[^/]+"),)


# Trigger.dev's keys are 31 characters, below what PyJWT recommends for HS256; the format is
# the client's, so the warning is noise here.
_SHORT_KEY = getattr(jwt, "InsecureKeyLengthWarning", None)
if _SHORT_KEY is not None:
    warnings.filterwarnings("ignore", category=_SHORT_KEY)


E = TypeVar("E", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class Caller:
    """The secret key (`scopes` None) or a public access token and its scopes."""

    scopes: frozenset[str] | None = None
    one_time: bool = False
    token: str | None = None
    expires: float = 0.0

    @property
    def is_key(self) -> bool:
        return self.scopes is None

    def allows(self, action: str, *, super_scopes: Iterable[str] = (), **resources: Any) -> bool:
        """True if this caller may `action` on any one of `resources` (kind -> a value or a
        list of values, as Trigger.dev checks): `action:kind:value`, the whole kind
        `action:kind`, `action:all`, `admin` or one of `super_scopes`."""
        if self.scopes is None:
            return True
        if {"admin", f"{action}:all", *super_scopes} & self.scopes:
            return True
        for kind, value in resources.items():
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if v is not None and (
                    f"{action}:{kind}:{v}" in self.scopes or f"{action}:{kind}" in self.scopes
                ):
                    return True
        return False

    def describe(self) -> str:
        return "the secret key" if self.scopes is None else ", ".join(sorted(self.scopes)) or "none"


SECRET_KEY = Caller()


def accepts_public_tokens(endpoint: E) -> E:
    """Mark a route that a public access token may call (it must `require` its scope)."""
    setattr(endpoint, _MARK, True)
    return endpoint


def _looks_like_jwt(text: str) -> bool:
    return text.count(".") == 2 and text.startswith("eyJ")


def sign(secret: str, claims: dict[str, Any], expires: float) -> str:
    """A public access token as Trigger.dev signs one (`expires`: epoch seconds). Tokens
    are read against wall clocks (PyJWT's `exp` check, the official client's): they are
    signed and spent on the wall clock, the one place the API does not use `engine.now()`."""
    now = int(time.time())
    body = {**claims, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": int(expires)}
    token: str = jwt.encode(body, secret, algorithm="HS256")
    return token


def verify(token: str, secret: str) -> Caller:
    """The caller a public access token stands for; 401 if it is expired, not signed with
    `secret`, or not one of Trigger.dev's tokens."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp"], "verify_iat": False},  # as jose: no iat check
        )
    except jwt.ExpiredSignatureError:
        raise HTTPError(401, "the public access token has expired") from None
    except jwt.InvalidSignatureError:
        raise HTTPError(401, "invalid public access token: not signed by this server") from None
    except jwt.InvalidTokenError as exc:
        raise HTTPError(401, f"invalid public access token: {exc}") from None
    raw = claims.get("scopes") or []
    scopes = [s for s in raw if isinstance(s, str)] if isinstance(raw, list) else []
    return Caller(frozenset(scopes), claims.get("otu") is True, token, float(claims["exp"]))


def authenticate(given: str | None, secret_key: str) -> Caller:
    """The caller behind a bearer credential, or 401."""
    if given is None:
        raise HTTPError(401, "missing secret key: send `Authorization: Bearer <key>`")
    if key_matches(given, secret_key):
        return SECRET_KEY
    if _looks_like_jwt(given):
        return verify(given, secret_key)
    raise HTTPError(401, "invalid secret key")


def bearer(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def caller_of(request: Request) -> Caller:
    """Who is calling (set by `Authenticate`; worked out here if the app runs without it)."""
    found = request.scope.get(CALLER)
    if not isinstance(found, Caller):
        found = authenticate(bearer(request.scope.get("headers", [])), secret_of(request))
        request.scope[CALLER] = found
    return found


def secret_of(request: Request) -> str:
    secret: str = request.app.state.secret_key
    return secret


def require(
    request: Request, action: str, *, super_scopes: Iterable[str] = (), **resources: Any
) -> Caller:
    """The caller, if it may `action` on `resources` (see `Caller.allows`); else 403 naming
    what it lacks. A one-time token is spent by the first `trigger`/`batchTrigger` call."""
    caller = caller_of(request)
    if not caller.allows(action, super_scopes=super_scopes, **resources):
        wanted = " or ".join(
            f"{action}:{kind}:{v}"
            for kind, value in resources.items()
            for v in (value if isinstance(value, list | tuple) else [value])
            if v is not None
        )
        raise HTTPError(
            403,
            f"this public access token may not {action} that: it needs {wanted or action} "
            f"(its scopes: {caller.describe()})",
        )
    return caller


@contextmanager
def spending(request: Request, caller: Caller) -> Iterator[None]:
    """Use up a one-time token for what the block does (401 if it was used before); given
    back if the block fails, so a refused trigger does not cost it. Kept in this server
    process: behind several processes (or Worker isolates) each accepts it once."""
    if not caller.one_time or caller.token is None:
        yield
        return
    spent: dict[str, float] = request.app.state.spent_tokens
    now = time.time()
    for old, expires in list(spent.items()):
        if expires < now:
            del spent[old]
    if caller.token in spent:
        raise HTTPError(401, "this one-time public access token has already been used")
    spent[caller.token] = caller.expires  # before any await: a concurrent use sees it
    try:
        yield
    except BaseException:
        spent.pop(caller.token, None)
        raise


def require_run_read(request: Request, row: dict[str, Any]) -> Caller:
    """The caller, if it may read the run of `row` (by its id, tags, batch or task, or
    `read:runs`); else 403."""
    return require(
        request,
        "read",
        super_scopes=("read:runs",),
        runs=row["id"],
        tags=row.get("tags") or [],
        batch=row.get("batch_id"),
        tasks=row["task"],
    )


def may_trigger(caller: Caller) -> bool:
    """Whether the caller may trigger anything (so may upload a large payload first)."""
    if caller.scopes is None:
        return True
    return any(
        s.split(":")[0] in ("trigger", "batchTrigger", "admin") or s == "write:tasks"
        for s in caller.scopes
    )


def token_headers(request: Request, scopes: list[str]) -> dict[str, str]:
    """Response headers after a trigger: the claims the client signs its public token
    with, and the token itself when the client cannot sign one (a public token or an
    additional `..._sk_...` key calling, or a browser)."""
    headers = {"x-trigger-jwt-claims": str(dumps(CLAIMS))}
    secret = secret_of(request)
    if (
        not caller_of(request).is_key
        or ADDITIONAL_KEY.match(secret)
        or request.headers.get("x-trigger-client") == "browser"
    ):
        headers["x-trigger-jwt"] = sign(secret, {**CLAIMS, "scopes": scopes}, time.time() + 3600)
    return headers


class Authenticate:
    """Every `/api/...` call: 401 without a valid secret key or public access token (a
    WebSocket may send `?token=<key>`), 403 for a token on a route not marked
    `@accepts_public_tokens`. Stores the `Caller` in the scope for `caller_of`."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str,
        routes: list[BaseRoute],
        guarded: frozenset[str] = GUARDED_PATHS,
    ) -> None:
        self.app = app
        self.secret_key = secret_key
        self.routes = routes
        self.guarded = guarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] in ("http", "websocket") else ""
        if not (path.startswith("/api/") or path.rstrip("/") in self.guarded):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and (
            route_path(scope) in PUBLIC_PATHS
            or any(p.fullmatch(route_path(scope)) for p in PUBLIC_PATTERNS)
        ):
            await self.app(scope, receive, send)
            return
        given = bearer(scope.get("headers", []))
        if given is None and scope["type"] == "websocket":
            given = QueryParams(scope.get("query_string", b"")).get("token")
        try:
            caller = authenticate(given, self.secret_key)
            if not caller.is_key and not self._token_route(scope):
                raise HTTPError(
                    403,
                    f"a public access token cannot call {scope.get('method', 'WS')} "
                    f"{route_path(scope)}: use the secret key",
                )
        except HTTPError as exc:
            await _refuse(scope, receive, send, exc.status, exc.message)
            return
        scope[CALLER] = caller
        await self.app(scope, receive, send)

    def _token_route(self, scope: Scope) -> bool:
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return bool(getattr(child.get("endpoint"), _MARK, False))
        return False


def route_path(scope: Scope) -> str:
    """The path below where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    if scope["type"] == "http":
        response = JSONResponse({"error": message}, status, {"x-should-retry": "false"})
        await response(scope, receive, send)
    elif "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"application/json"), (b"x-should-retry", b"false")]
        body = str(dumps({"error": message})).encode()
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message})
