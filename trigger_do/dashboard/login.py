"""Signing in and out: the login form (the secret key, exchanged for a session cookie), the
one-time login URL `trigger-do dev` prints, and `POST /logout`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..api.keys import key_matches
from . import web
from .session import COOKIE, encode, new_session

HOME = "/runs"


def _signed_in(request: Request, target: str) -> Response:
    """Open a session: a redirect to `target` that sets the signed cookie (never the key)."""
    now = web.engine_of(request).now()
    session = new_session(now)
    response = RedirectResponse(web.root(request) + target, status_code=303, headers=web.HEADERS)
    response.set_cookie(
        COOKIE,
        encode(session, web.secret_of(request)),
        max_age=max(1, int(session.expires - now)),
        path=(web.root(request) or "") + "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


async def login_page(request: Request) -> Response:
    target = web.local_path(request.query_params.get("next"), HOME)
    if web.session_of(request) is not None:
        return RedirectResponse(web.root(request) + target, status_code=303, headers=web.HEADERS)
    return web.render(request, "login.html", next=target, error="")


async def login(request: Request) -> Response:
    """`POST /login` with `key` (and `next`): the secret key for a session cookie."""
    if not web.same_origin(request):
        return web.render(request, "login.html", 403, next=HOME, error="a form from another site")
    try:
        data = await web.form(request)
    except web.FormError as exc:
        return web.render(request, "login.html", 400, next=HOME, error=str(exc))
    target = web.local_path(web.field(data, "next"), HOME)
    if not key_matches(web.field(data, "key").strip(), web.secret_of(request)):
        return web.render(
            request, "login.html", 401, next=target, error="that is not this server's secret key"
        )
    return _signed_in(request, target)


async def login_once(request: Request) -> Response:
    """`GET /login/once?token=...`: a printed one-time login URL opens a session, once."""
    links = web.login_links(request.app)
    if not links.spend(request.query_params.get("token"), web.engine_of(request).now()):
        return web.render(
            request,
            "login.html",
            401,
            next=HOME,
            error="this login link has been used or has expired: sign in with the secret key",
        )
    return _signed_in(request, HOME)


@web.guarded
async def logout(request: Request) -> Response:
    response = RedirectResponse(web.root(request) + "/login", status_code=303, headers=web.HEADERS)
    response.delete_cookie(COOKIE, path=(web.root(request) or "") + "/")
    return response


def login_url(app: object, base: str, now: float) -> str:
    """A one-time login URL for `app` (served at `base`, e.g. `http://127.0.0.1:8000`)."""
    token = web.login_links(app).issue(now)
    return f"{base.rstrip('/')}/login/once?token={token}"


def browser_base(host: str, port: int) -> str:
    """The URL a browser on this machine reaches a server listening on `host:port` at."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
