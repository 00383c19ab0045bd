"""Property: whatever a client sends to any route of the HTTP API, the answer is never a 5xx,
and a refused request (4xx) writes nothing: every table's rows and the packet folder are
unchanged. Requests are generated from the request models (`strategies.model`) plus
hostile strings, numbers, nesting and raw bodies.

Bounded for CI: `EXAMPLES` per route family (`TRIGGER_DO_FUZZ_EXAMPLES` to raise it), no
deadline per example, no example database written into the repository."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from tests.fuzz.conftest import Fuzzed
from tests.fuzz.strategies import (
    DEEP,
    encode,
    hostile,
    hostile_strings,
    json_values,
    model,
    numeric_strings,
)
from trigger_do.api import requests as rq

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::UserWarning")]
EXAMPLES = int(os.environ.get("TRIGGER_DO_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no slow "explain" phase
)
TASKS = ["add", "http-echo", "send-email", "http-limited", "no-such-task"]
TYPES = [None, "application/json", "text/plain", "application/x-ndjson", "text/html", "a/b; x"]
RAW = [b"", b" ", b"null", b"[]", b"{", b"\xff\xfe", b'{"a": NaN}', b"1e999", b"{}" * 3]


@dataclass
class Req:
    method: str
    path: str
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)


def segment(text: str) -> str:
    """A URL path segment (an HTTP client sends at most a few kB of URL)."""
    return quote(text[:1000].encode("utf-8", "surrogatepass"), safe="")


# query values, likewise; a URL carries bytes, so a lone surrogate arrives as U+FFFD
query_strings = hostile_strings.map(lambda s: s[:1000].encode("utf-8", "replace").decode())
query_numbers = numeric_strings.map(lambda s: s[:1000].encode("utf-8", "replace").decode())
NUMBER_PARAMS = {"page[size]", "after", "limit", "page", "perPage", "expires", "last-event-id"}


def query(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Query parameters among `names`: number-like values for the numeric ones."""
    return st.lists(st.sampled_from(names), max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries(
            {k: query_numbers if k in NUMBER_PARAMS else query_strings for k in keys}
        )
    )


def ids(known: list[str]) -> st.SearchStrategy[str]:
    """A path segment: a real id, or anything (URL-encoded)."""
    return st.sampled_from(known) | hostile_strings.filter(bool).map(segment)


def body_of(cls: type[Any]) -> st.SearchStrategy[bytes]:
    """A body for the model `cls` (3 in 5), a raw hostile body, or a hostile JSON value."""
    built, raw, odd = model(cls).map(encode), st.sampled_from(RAW), hostile.map(encode)
    return st.integers(0, 4).flatmap(lambda n: raw if n == 0 else odd if n == 1 else built)


def headers() -> st.SearchStrategy[dict[str, str]]:
    return st.sampled_from(TYPES).map(lambda t: {"content-type": t} if t else {})


def check(f: Fuzzed, req: Req) -> None:
    """The property itself."""
    before = f.server.state()
    with f.client.stream(
        req.method, req.path, content=req.content, params=req.params, headers=req.headers
    ) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            status, body = r.status_code, b""  # a live stream: its status is what counts
        else:
            status, body = r.status_code, r.read()
    route = re.sub(r"/(run|batch)_\w+|/uploads/.*", "/<id>", req.path)[:40]
    event(f"{req.method} {route}: {status}")
    if status >= 400:  # why, in a word or three (the statistics show what was exercised)
        words = re.findall(r"[a-zA-Z]+", body[10:60].decode("utf-8", "replace"))
        event(f"{status} {' '.join(words[:3])}")
    assert status < 500, (req, status, body[:500])
    if status >= 400:
        assert b'"error"' in body, (req, status, body[:300])
        assert f.server.state() == before, f"refused with {status}, but wrote: {req}"


# --- triggers and batches ----------------------------------------------------------------


@FUZZ
@given(task=st.sampled_from(TASKS * 3) | hostile_strings.map(segment), body=body_of(rq.TriggerBody),
       h=headers())  # fmt: skip
def test_trigger(fuzzed: Fuzzed, task: str, body: bytes, h: dict[str, str]) -> None:
    check(fuzzed, Req("POST", f"/api/v1/tasks/{task}/trigger", body, headers=h))


@FUZZ
@given(body=body_of(rq.BatchBody), h=headers())
def test_batch_v2(fuzzed: Fuzzed, body: bytes, h: dict[str, str]) -> None:
    check(fuzzed, Req("POST", "/api/v2/tasks/batch", body, headers=h))


@FUZZ
@given(body=body_of(rq.CreateBatchBody))
def test_create_batch(fuzzed: Fuzzed, body: bytes) -> None:
    check(fuzzed, Req("POST", "/api/v3/batches", body))


@FUZZ
@given(data=st.data(), lines=st.lists(body_of(rq.StreamItemBody), max_size=3))
def test_batch_items_and_retrieve(fuzzed: Fuzzed, data: st.DataObject, lines: list[bytes]) -> None:
    batch = data.draw(ids(fuzzed.batches))
    check(fuzzed, Req("POST", f"/api/v3/batches/{batch}/items", b"\n".join(lines)))
    check(fuzzed, Req("GET", f"/api/v2/batches/{batch}"))


# --- runs ----------------------------------------------------------------------------------

LIST_PARAMS = [
    "page[size]", "page[after]", "page[before]", "filter[status]", "filter[taskIdentifier]",
    "filter[tag]", "filter[createdAt][period]", "filter[createdAt][from]",
    "filter[createdAt][to]", "filter[isTest]", "filter[batch]", "filter[bulkAction]",
    "filter[queue]", "filter[version]", "filter[env]", "filter[other]",
]  # fmt: skip
CURSORS = ["MTczMjY0MDAwMC4xfDF8cnVuX3g", "bmFufDF8cnVuX3g", "aW5mfDF8cnVuX3g", "x"]


@FUZZ
@given(
    params=query(LIST_PARAMS)
    | st.fixed_dictionaries(
        {},
        optional={
            k: st.sampled_from(["10", "COMPLETED,DELAYED", "1d", "true", *CURSORS])
            for k in LIST_PARAMS
        },
    ),
    project=st.booleans(),
)
def test_list_runs(fuzzed: Fuzzed, params: dict[str, str], project: bool) -> None:
    path = "/api/v1/projects/proj_x/runs" if project else "/api/v1/runs"
    check(fuzzed, Req("GET", path, params=params))


@FUZZ
@given(data=st.data(), op=st.sampled_from(["retrieve", "cancel", "replay", "reschedule",
       "metadata", "get-metadata", "tags", "states", "bulk-retrieve"]))  # fmt: skip
def test_run_routes(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    run = data.draw(ids(fuzzed.runs))
    routes: dict[str, tuple[str, str, Any]] = {
        "retrieve": ("GET", f"/api/v3/runs/{run}", None),
        "cancel": ("POST", f"/api/v2/runs/{run}/cancel", st.sampled_from(RAW)),
        "replay": ("POST", f"/api/v1/runs/{run}/replay", st.sampled_from(RAW)),
        "reschedule": ("POST", f"/api/v1/runs/{run}/reschedule", body_of(rq.RescheduleBody)),
        "metadata": ("PUT", f"/api/v1/runs/{run}/metadata", body_of(rq.MetadataBody)),
        "get-metadata": ("GET", f"/api/v1/runs/{run}/metadata", None),
        "tags": ("POST", f"/api/v1/runs/{run}/tags", body_of(rq.TagsBody)),
        "states": ("POST", "/api/v1/runs/_states", body_of(rq.RunIdsBody)),
        "bulk-retrieve": ("POST", "/api/v1/runs/_retrieve", body_of(rq.RunIdsBody)),
    }
    method, path, body = routes[op]
    check(fuzzed, Req(method, path, data.draw(body) if body is not None else None))


@FUZZ
@given(
    data=st.data(),
    params=query(["after", "limit"]),
    last=st.none() | query_numbers.map(str.strip).filter(str.isprintable),  # a legal header
    stream=st.booleans(),
)
def test_logs(
    fuzzed: Fuzzed, data: st.DataObject, params: dict[str, str], last: str | None, stream: bool
) -> None:
    run = data.draw(ids(fuzzed.runs))
    h: dict[str, Any] = {"accept": "text/event-stream" if stream else "application/json"}
    if last is not None:
        h["last-event-id"] = last.encode("utf-8")  # a header carries bytes
    check(fuzzed, Req("GET", f"/api/v1/runs/{run}/logs", params=params, headers=h))


REALTIME_PARAMS = ["offset", "handle", "live", "cursor", "tags", "createdAt", "skipColumns"]


@FUZZ
@given(
    data=st.data(),
    params=query(REALTIME_PARAMS),
    kind=st.sampled_from(["run", "tags", "batch", "packet", "signed-packet"]),
)
def test_realtime(fuzzed: Fuzzed, data: st.DataObject, params: dict[str, str], kind: str) -> None:
    """The Realtime shape routes (api/realtime.py); a made-up offset is never the feed's, so
    a live request is answered at once. Also a run's packet URLs (api/run_packets.py)."""
    field = data.draw(st.sampled_from(["payload", "output"]) | hostile_strings.map(segment))
    if kind in ("packet", "signed-packet"):
        run = data.draw(ids(fuzzed.runs))
        path = f"/api/v1/runs/{run}/packets/{field}"
        if kind == "signed-packet":
            path = f"/run-packets/{run}/{field}"
            params = {**params, **data.draw(query(["expires", "signature"]))}
    elif kind == "run":
        path = f"/realtime/v1/runs/{data.draw(ids(fuzzed.runs))}"
    elif kind == "batch":
        path = f"/realtime/v1/batches/{data.draw(hostile_strings.filter(bool).map(segment))}"
    else:
        path = "/realtime/v1/runs"
    check(fuzzed, Req("GET", path, params=params))


@settings(FUZZ, max_examples=max(5, EXAMPLES // 4))
@given(data=st.data(), after=st.none() | query_numbers)
def test_logs_websocket(fuzzed: Fuzzed, data: st.DataObject, after: str | None) -> None:
    run = data.draw(ids(fuzzed.runs))
    query = f"?token={fuzzed.server.key}" + ("" if after is None else f"&after={segment(after)}")
    url = fuzzed.server.url.replace("http", "ws") + f"/api/v1/runs/{run}/logs/ws{query}"
    try:
        with connect(url, open_timeout=10) as ws:
            first = ws.recv(timeout=0.3)
            event(f"WS first message: {str(first)[:20]}")
    except InvalidStatus as exc:
        assert exc.response.status_code < 500, exc
    except (InvalidHandshake, TimeoutError):
        pass  # a delayed run logs nothing yet: no message within the wait is fine


# --- bulk actions, queues, keys, tokens, packets ---------------------------------------------

BULK_FILTER = st.dictionaries(
    st.sampled_from(["status", "taskIdentifier", "tag", "batch", "from", "to", "period",
                     "isTest", "queue", "version", "bogus"]),
    json_values, max_size=3,
)  # fmt: skip
BULK_BODY = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["cancel", "replay", "delete"]) | hostile,
        "runIds": st.lists(hostile_strings, max_size=3) | hostile,
        "filter": BULK_FILTER | hostile,
        "name": hostile_strings,
        "targetRegion": hostile_strings,
    },
).map(encode)


@FUZZ
@given(data=st.data(), op=st.sampled_from(["create", "list", "retrieve", "abort"]))
def test_bulk_actions(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    if op == "create":
        req = Req("POST", "/api/v1/bulk-actions", data.draw(BULK_BODY | st.sampled_from(RAW)))
    elif op == "list":
        params = data.draw(query(["page[size]", "page[after]", "page[before]"]))
        req = Req("GET", "/api/v1/bulk-actions", params=params)
    else:
        bulk = data.draw(ids(["bulk_missing"]))
        req = Req(
            "GET" if op == "retrieve" else "POST",
            f"/api/v1/bulk-actions/{bulk}" + ("/abort" if op == "abort" else ""),
        )
    check(fuzzed, req)


QUEUES = ["queue_task%252Fadd", "task%2Fadd", "http-limited", "nope"]


@FUZZ
@given(data=st.data(), op=st.sampled_from(["list", "retrieve", "pause", "override", "reset"]))
def test_queues(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    name = data.draw(st.sampled_from(QUEUES) | hostile_strings.filter(bool).map(segment))
    kind = data.draw(st.sampled_from(["task", "id", "custom", "weird"]))
    if op == "list":
        req = Req("GET", "/api/v1/queues", params=data.draw(query(["page", "perPage"])))
    elif op == "retrieve":
        req = Req("GET", f"/api/v1/queues/{name}", params={"type": kind})
    else:
        path = {"pause": "pause", "override": "concurrency/override", "reset": "concurrency/reset"}
        cls = rq.OverrideBody if op == "override" else rq.QueueBody
        req = Req("POST", f"/api/v1/queues/{name}/{path[op]}", data.draw(body_of(cls)))
    check(fuzzed, req)


@FUZZ
@given(data=st.data(), op=st.sampled_from(["reset-key", "claims", "public-token", "healthz"]))
def test_keys_and_tokens(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    if op == "reset-key":
        key = data.draw(hostile_strings.filter(bool).map(segment))
        req = Req(
            "POST", f"/api/v1/idempotencyKeys/{key}/reset", data.draw(body_of(rq.ResetKeyBody))
        )
    elif op == "claims":
        req = Req("POST", "/api/v1/auth/jwt/claims", data.draw(st.sampled_from(RAW)))
    elif op == "public-token":
        req = Req("POST", "/api/v1/auth/public-tokens", data.draw(body_of(rq.PublicTokenBody)))
    else:
        req = Req("GET", "/healthz")
    check(fuzzed, req)


@FUZZ
@given(data=st.data(), op=st.sampled_from(["presign", "download-url", "put", "get"]))
def test_packets(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    name = data.draw(
        st.sampled_from(["p/payload.json", "a%2F.", "x"])
        | hostile_strings.filter(bool).map(segment)
    )
    if op == "presign":
        check(fuzzed, Req("PUT", f"/api/v2/packets/{name}"))
        return
    path = data.draw(st.sampled_from(fuzzed.uploads) | st.just(name))
    if op == "download-url":
        check(fuzzed, Req("GET", f"/api/v1/packets/{path}"))
        return
    signed = fuzzed.client.put("/api/v2/packets/f.json").json()["presignedUrl"]
    if op == "get":  # a download URL of a real packet, its query tampered with or not
        signed = fuzzed.client.get(f"/api/v1/packets/{fuzzed.uploads[0]}").json()["presignedUrl"]
    url = httpx.URL(signed)
    params = dict(url.params)
    for key in data.draw(st.lists(st.sampled_from(["expires", "signature"]), max_size=2)):
        params[key] = data.draw(query_numbers if key == "expires" else query_strings)
    content = data.draw(st.sampled_from(RAW) | json_values.map(encode)) if op == "put" else None
    kind = data.draw(st.sampled_from(TYPES))
    check(
        fuzzed, Req(op.upper(), url.path, content, params, {"content-type": kind} if kind else {})
    )


def test_the_deep_sentinel_is_spliced() -> None:
    assert encode([f"{DEEP}3"]) == b"[[[[]]]]"


MCP_ACCEPT = [{}, {"accept": "application/json, text/event-stream"}, {"accept": "text/html"}]


@FUZZ
@given(data=st.data(), op=st.sampled_from(["tasks", "dead-letters", "requeue", "mcp"]))
def test_tasks_dead_letters_and_mcp(fuzzed: Fuzzed, data: st.DataObject, op: str) -> None:
    from trigger_do.api.dead_letters import RequeueBody

    if op == "tasks":
        req = Req("GET", "/api/v1/tasks", params=data.draw(query(["page", "limit"])))
    elif op == "dead-letters":
        req = Req("GET", "/api/v1/deadLetters")
    elif op == "requeue":
        req = Req("POST", "/api/v1/deadLetters/requeue", data.draw(body_of(RequeueBody)))
    else:  # JSON-RPC-ish bodies and raw ones, with and without the Accept MCP needs
        methods = st.sampled_from(["initialize", "tools/list", "tools/call", "nope"])
        rpc = st.fixed_dictionaries(
            {
                "jsonrpc": st.sampled_from(["2.0", "1.0"]),
                "id": json_values,
                "method": methods | hostile_strings,
                "params": json_values,
            }
        ).map(encode)
        body = data.draw(rpc | st.sampled_from(RAW) | hostile.map(encode))
        h = {"content-type": "application/json", **data.draw(st.sampled_from(MCP_ACCEPT))}
        req = Req(data.draw(st.sampled_from(["POST", "GET", "DELETE"])), "/mcp", body, {}, h)
    check(fuzzed, req)
