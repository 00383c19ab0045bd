"""What every dashboard page shares: the session gate, CSRF checks, form bodies, rendering
with security headers, and errors as pages (never a 500 for a bad input)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..api.errors import response_for
from ..engine import Engine
from ..errors import TriggerDoError
from . import assets, nav
from .session import COOKIE, LoginLinks, Session, csrf_ok, decode

Handler = Callable[[Request], Awaitable[Response]]
MAX_FORM_BYTES = 16 * 1024 * 1024  # a payload edited in the browser rides in a form
# Scripts and styles only from this origin: no inline script runs, whatever a payload holds.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class FormError(TriggerDoError, ValueError):
    """A form field that cannot be used as given (shown on the page, status 400)."""


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def secret_of(request: Request) -> str:
    key: str = request.app.state.secret_key
    return key


def login_links(app: Any) -> LoginLinks:
    """The app's one-time login tokens (made on first use)."""
    links = getattr(app.state, "dashboard_logins", None)
    if links is None:
        links = app.state.dashboard_logins = LoginLinks()
    return links


def root(request: Request) -> str:
    """Where the app is mounted ("" at the top): every link starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def session_of(request: Request) -> Session | None:
    found = getattr(request.state, "session", None)
    if found is not None:
        return found  # type: ignore[no-any-return]
    return decode(request.cookies.get(COOKIE), secret_of(request), engine_of(request).now())


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


async def form(request: Request) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body: name -> its values (in order)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError("a form is sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"the form is over {MAX_FORM_BYTES // (1024 * 1024)} MiB")
    out: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise FormError("the form is not UTF-8") from None
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def field(data: dict[str, list[str]], name: str, default: str = "") -> str:
    values = data.get(name)
    return values[0] if values else default


def local_path(target: str | None, fallback: str) -> str:
    """`target` if it is a path on this site (never `//evil` or `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else fallback


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (its
    `Sec-Fetch-Site`, else its `Origin`); a client that says neither is judged by the CSRF
    token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    base = root(request)

    def static(name: str) -> str:
        found = assets.static_file(name)
        version = found[2] if found else "missing"
        return f"{base}/static/{name}?v={version}"

    try:
        env = assets.environment()
    except ImportError:  # a Worker whose pyproject.toml does not list jinja2 (README)
        text = "the dashboard needs Jinja2: add jinja2 to the Worker's dependencies"
        return HTMLResponse(_escape(text), status_code=503, headers=HEADERS)
    html = env.get_template(template).render(
        request=request,
        root=base,
        csrf=session.csrf if session else "",
        signed_in=session is not None,
        nav=nav.entries(engine_of(request)),
        static=static,
        poll=nav.POLL_SECONDS,
        now=engine_of(request).now(),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(request: Request, path: str) -> Response:
    """After a form: see the result (303), or tell htmx to go there."""
    target = root(request) + path
    if is_htmx(request):
        return Response(status_code=204, headers={"hx-redirect": target, **HEADERS})
    return RedirectResponse(target, status_code=303, headers=HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    if is_htmx(request):
        return HTMLResponse(
            f'<p class="flash error" role="alert">{_escape(message)}</p>',
            status_code=status,
            headers={**HEADERS, "hx-retarget": "#flash", "hx-reswap": "innerHTML"},
        )
    return render(request, "error.html", status, status_code=status, message=message)


def _escape(text: str) -> str:
    return escape(text, quote=True)


def guarded(handler: Handler) -> Handler:
    """Only for a signed-in browser: else to the login page (a fragment poll gets a 401 that
    sends the page there). A POST must come from this site and carry the session's CSRF
    token. An error the engine raises on purpose is shown as a page with its status."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            login = f"{root(request)}/login"
            if request.method == "GET" and not is_htmx(request):
                path = request.url.path[len(root(request)) :] or "/"
                query = f"?{request.url.query}" if request.url.query else ""
                return RedirectResponse(
                    f"{login}?next={quote(path + query, safe='')}", 303, headers=HEADERS
                )
            return Response("sign in first", 401, headers={"hx-redirect": login, **HEADERS})
        request.state.session = session
        try:
            if request.method == "POST":
                if not same_origin(request):
                    return error_page(request, 403, "a form from another site was refused")
                problem: FormError | None = None
                try:
                    data = await form(request)
                except FormError as exc:  # reported after the token check (403 first)
                    data, problem = {}, exc
                given = field(data, "csrf") or request.headers.get("x-csrf-token")
                if not csrf_ok(session, given):
                    return error_page(
                        request, 403, "this form has expired: reload the page and try again"
                    )
                if problem is not None:
                    raise problem
                request.state.form = data
            return await handler(request)
        except TriggerDoError as exc:
            # a run, queue, schedule or task that is not there: 404, as the API says
            status = 404 if isinstance(exc, LookupError) else response_for(exc).status_code
            return error_page(request, status, str(exc))

    return endpoint


def posted(request: Request) -> dict[str, list[str]]:
    """The form a guarded POST carried (parsed and CSRF-checked by `guarded`)."""
    data: dict[str, list[str]] = request.state.form
    return data
