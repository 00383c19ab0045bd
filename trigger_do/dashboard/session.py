"""Dashboard sessions: the secret key is exchanged once (the login form, or a one-time login
URL that `trigger-do dev` prints) for a signed, expiring session cookie.

The cookie holds `{exp, csrf, sid}` signed with HMAC-SHA256 under a key derived from the
secret key, never the key itself: changing the secret key ends every session. It is
`HttpOnly`, `SameSite=Strict`, `Secure` over https, and expires with the session. Expiry is
read on the engine's clock (`engine.now()`), like every other time in the API.

Every form carries the session's CSRF token (checked in constant time), and a request whose
`Origin` names another site is refused, on top of `SameSite=Strict`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

COOKIE = "trigger_do_session"
SESSION_SECONDS = 12 * 3600  # a session lasts 12 hours, then the key is asked for again
LOGIN_LINK_SECONDS = 24 * 3600  # a printed one-time login URL is good for a day, once
_PURPOSE = b"trigger.do dashboard session v1"


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its CSRF token and when the session ends (epoch seconds)."""

    sid: str
    csrf: str
    expires: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(secret_key: str) -> bytes:
    """The key sessions are signed with: derived from the secret key, never equal to it."""
    return hmac.new(secret_key.encode(), _PURPOSE, hashlib.sha256).digest()


def new_session(now: float, seconds: float = SESSION_SECONDS) -> Session:
    return Session(secrets.token_urlsafe(12), secrets.token_urlsafe(24), now + seconds)


def encode(session: Session, secret_key: str) -> str:
    """The cookie value: base64url(JSON body) "." base64url(HMAC-SHA256 of that text)."""
    body = {"sid": session.sid, "csrf": session.csrf, "exp": session.expires}
    text = _b64(json.dumps(body, separators=(",", ":")).encode())
    mac = hmac.new(signing_key(secret_key), text.encode(), hashlib.sha256).digest()
    return f"{text}.{_b64(mac)}"


def decode(cookie: str | None, secret_key: str, now: float) -> Session | None:
    """The session a cookie stands for; None if it is missing, forged, malformed or expired."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
        return None
    text, mac = cookie.split(".")
    try:
        given = _unb64(mac)
        expected = hmac.new(signing_key(secret_key), text.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(given, expected):
            return None
        body: Any = json.loads(_unb64(text))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(body, dict):
        return None
    sid, csrf, exp = body.get("sid"), body.get("csrf"), body.get("exp")
    if not isinstance(sid, str) or not isinstance(csrf, str):
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= now:
        return None
    return Session(sid, csrf, float(exp))


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())


class LoginLinks:
    """One-time login tokens, kept in this server process (`trigger-do dev` prints one):
    each opens one session, then is spent."""

    def __init__(self) -> None:
        self._pending: dict[str, float] = {}

    def issue(self, now: float, seconds: float = LOGIN_LINK_SECONDS) -> str:
        token = secrets.token_urlsafe(32)
        self._pending[token] = now + seconds
        return token

    def spend(self, token: str | None, now: float) -> bool:
        """True once for a token issued here and not expired; never again."""
        for old, expires in list(self._pending.items()):
            if expires <= now:
                del self._pending[old]
        if not token:
            return False
        for known in list(self._pending):
            if hmac.compare_digest(known.encode(), token.encode()):
                del self._pending[known]
                return True
        return False
