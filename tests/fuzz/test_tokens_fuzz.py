"""The wait-token routes under the fuzz property of `test_api_fuzz.py`: whatever a client
sends (bodies from the request model, hostile JSON and raw bytes, hostile ids, filters,
cursors and callback hashes), the answer is never a 5xx, and a refused request writes
nothing. The callback route is called without a key, as a third party calls it."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import Fuzzed
from tests.fuzz.strategies import encode, hostile_strings, json_values
from tests.fuzz.test_api_fuzz import FUZZ, RAW, Req, body_of, check, ids, query, segment
from trigger_do.api.waitpoints import CreateTokenBody
from trigger_do.waitpoints import callback_hash

FILTERS = [
    "filter[status]", "filter[idempotencyKey]", "filter[tags]", "filter[createdAt][period]",
    "filter[createdAt][from]", "filter[createdAt][to]", "filter[other]", "page[size]",
    "page[after]", "page[before]",
]  # fmt: skip


def _tokens(f: Fuzzed) -> list[str]:
    """A few real tokens (made once per session): waiting ones and a completed one."""
    known: list[str] = getattr(f, "tokens", [])
    if not known:
        for body in ({}, {"tags": ["fuzz"], "timeout": "1h"}, {"idempotencyKey": "fuzz"}):
            known.append(f.client.post("/api/v1/waitpoints/tokens", json=body).json()["id"])
        f.client.post(f"/api/v1/waitpoints/tokens/{known[0]}/complete", json={"data": 1})
        f.tokens = known  # type: ignore[attr-defined]
    return known


@FUZZ
@given(data=st.data(), op=st.sampled_from(["create", "list", "retrieve", "complete", "callback"]))
def test_token_routes(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    known = _tokens(fuzzed)
    token = data.draw(ids([*known, "waitpoint_missing"]))
    if op == "create":
        req = Req("POST", "/api/v1/waitpoints/tokens", data.draw(body_of(CreateTokenBody)))
    elif op == "list":
        req = Req("GET", "/api/v1/waitpoints/tokens", params=data.draw(query(FILTERS)))
    elif op == "retrieve":
        req = Req("GET", f"/api/v1/waitpoints/tokens/{token}")
    elif op == "complete":
        body = data.draw(st.sampled_from(RAW) | json_values.map(lambda v: _json({"data": v})))
        req = Req("POST", f"/api/v1/waitpoints/tokens/{token}/complete", body)
    else:
        good = callback_hash(fuzzed.server.key, token) if token in known else "0" * 64
        digest = data.draw(st.just(good) | hostile_strings.filter(bool).map(lambda s: s[:200]))
        body = data.draw(st.sampled_from(RAW) | json_values.map(_json))
        with httpx.Client(base_url=fuzzed.server.url, timeout=60) as anyone:  # no key
            _check_with(
                fuzzed,
                anyone,
                Req("POST", f"/api/v1/waitpoints/tokens/{token}/callback/{segment(digest)}", body),
            )
        return
    check(fuzzed, req)


def _json(value: Any) -> bytes:
    return encode(value)


def _check_with(f: Fuzzed, client: httpx.Client, req: Req) -> None:
    saved = f.client
    f.client = client
    try:
        check(f, req)
    finally:
        f.client = saved
