"""The fuzz property (`test_api_fuzz.check`: never a 5xx; a 4xx writes nothing) on the events
and webhooks routes: generated event bodies and list queries, unknown ids, and webhook
deliveries with hostile bodies and signature headers for every preset (unsigned or wrongly
signed, so every one is refused without a write)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Fuzzed
from tests.fuzz.strategies import encode, hostile, model
from tests.fuzz.test_api_fuzz import FUZZ, RAW, Req, check, hostile_strings, ids, query, segment
from trigger_do.api.events import SendEventBody

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::UserWarning")]
SOURCES = ["github", "stripe", "hmac", "nobody", "GitHub", ""]
SIGNATURES = ["X-Hub-Signature-256", "Stripe-Signature", "X-Signature", "X-GitHub-Event"]


def header_value(text: str) -> str:
    """What a header can carry: printable ASCII (an HTTP client refuses the rest)."""
    return "".join(c for c in text[:200] if " " <= c <= "~").strip() or "x"


def event_body() -> st.SearchStrategy[bytes]:
    return st.integers(0, 4).flatmap(
        lambda n: (
            st.sampled_from(RAW)
            if n == 0
            else hostile.map(encode)
            if n == 1
            else model(SendEventBody).map(encode)
        )
    )


@FUZZ
@given(data=st.data(), op=st.sampled_from(["send", "list", "retrieve", "replay"]))
def test_events(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    if op == "send":
        req = Req("POST", "/api/v1/events", data.draw(event_body()))
    elif op == "list":
        params = data.draw(query(["name", "from", "to", "limit", "cursor"]))
        req = Req("GET", "/api/v1/events", params=params)
    else:
        event_id = data.draw(ids(["evt-missing"]))
        tail = "/replay" if op == "replay" else ""
        req = Req("POST" if op == "replay" else "GET", f"/api/v1/events/{event_id}{tail}")
    check(fuzzed, req)


@FUZZ
@given(data=st.data(), op=st.sampled_from(["deliver", "list", "replay"]))
def test_webhooks(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    if op == "deliver":
        source = data.draw(st.sampled_from(SOURCES) | hostile_strings.map(segment))
        headers: dict[str, Any] = data.draw(
            st.dictionaries(
                st.sampled_from(SIGNATURES),
                hostile_strings.map(header_value),
                max_size=3,
            )
        )
        body = data.draw(event_body())
        req = Req("POST", f"/webhooks/{source}", body, headers=headers)
    elif op == "list":
        params = data.draw(query(["source", "event", "from", "to", "limit", "cursor"]))
        req = Req("GET", "/api/v1/webhooks/deliveries", params=params)
    else:
        delivery = data.draw(ids(["d-missing"]))
        params = data.draw(query(["source"]))
        req = Req("POST", f"/api/v1/webhooks/deliveries/{delivery}/replay", params=params)
    check(fuzzed, req)


FUZZ_SECRET = "fuzz-github-secret"


@pytest.fixture
def github_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", FUZZ_SECRET)  # read per request
    return FUZZ_SECRET


@FUZZ
@given(
    body=event_body(),
    event=st.sampled_from(["push", "pull_request", "", "a b", "x" * 300]) | hostile_strings,
    delivery=st.sampled_from(["d-1", "", "d" * 300]) | hostile_strings,
)
def test_signed_deliveries(
    fuzzed: Fuzzed, github_secret: str, body: bytes, event: str, delivery: str
) -> None:
    """Validly signed, so the checks after the signature are what is reached: a body that
    is not JSON, an event name that is no name, any delivery id (a bad one is hashed)."""
    import hashlib
    import hmac

    sig = "sha256=" + hmac.new(github_secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": sig, "X-GitHub-Event": header_value(event)}
    if delivery:
        headers["X-GitHub-Delivery"] = header_value(delivery)
    check(fuzzed, Req("POST", "/webhooks/github", body, headers=headers))
