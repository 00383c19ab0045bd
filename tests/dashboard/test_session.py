"""Session cookies and one-time login links (pure: no server)."""

from __future__ import annotations

import base64
import json

from trigger_do.dashboard.session import (
    LoginLinks,
    csrf_ok,
    decode,
    encode,
    new_session,
)

KEY = "tr_dev_SessionTestKey000000000000000000"


def test_a_cookie_round_trips_and_never_holds_the_key() -> None:
    session = new_session(1000.0, seconds=60)
    cookie = encode(session, KEY)
    assert KEY not in cookie
    body = json.loads(base64.urlsafe_b64decode(cookie.split(".")[0] + "=="))
    assert set(body) == {"sid", "csrf", "exp"}
    assert decode(cookie, KEY, 1059.0) == session


def test_an_expired_forged_or_foreign_cookie_is_no_session() -> None:
    session = new_session(1000.0, seconds=60)
    cookie = encode(session, KEY)
    assert decode(cookie, KEY, 1060.0) is None  # expired, on the engine's clock
    assert decode(cookie, KEY + "x", 1001.0) is None  # another server's key
    text, mac = cookie.split(".")
    longer = (
        base64.urlsafe_b64encode(
            json.dumps({"sid": session.sid, "csrf": session.csrf, "exp": 10**12}).encode()
        )
        .decode()
        .rstrip("=")
    )
    assert decode(f"{longer}.{mac}", KEY, 1001.0) is None  # an edited expiry
    for bad in ("", "x", "a.b.c", f"{text}.", f".{mac}", f"{text}.!!!", "é.é", "a" * 2000):
        assert decode(bad, KEY, 1001.0) is None, bad


def test_csrf_tokens_are_compared_whole() -> None:
    session = new_session(0.0)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf[:-1])


def test_a_login_link_opens_one_session_then_is_spent() -> None:
    links = LoginLinks()
    token = links.issue(100.0, seconds=10)
    assert not links.spend("nope", 101.0)
    assert links.spend(token, 101.0)
    assert not links.spend(token, 101.0)
    late = links.issue(100.0, seconds=10)
    assert not links.spend(late, 110.0)  # expired
    assert not links.spend(None, 101.0)
