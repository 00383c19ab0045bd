"""The JS <-> Python boundary: the only module that imports `js` and `pyodide.ffi`.

On Workers the runtime's Python SDK (`workers-runtime-sdk`, vendored into every Python
Worker) wraps `env`, each binding, a Durable Object's `ctx.storage` and a queue batch, and
converts every value crossing those wrappers (`workers.rpc.python_to_rpc` /
`python_from_rpc`): the adapters hand them plain Python values (dicts, lists, None, bytes)
and get plain Python values back (a JS Date as a naive `datetime`, `null` as None, an
ArrayBuffer as a `memoryview`, an integral number as an `int`). Pre-converting to JS values
there is wrong: a proxy makes the SDK walk it element by element, and `to_js` turns None
into `undefined` (a vanished key in a JSON queue body).

What is not wrapped, and is converted here: the WebSocket objects of live logs and the raw
methods of a Durable Object's `ctx` (`acceptWebSocket`, `getWebSockets`), a request's
headers, and the callback `transactionSync` calls. On CPython (the contract tests' fakes,
which hand over what the SDK hands over) every conversion is the identity.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from ...errors import MalformedMessageError

try:  # pragma: no cover - which branch runs depends on the runtime
    import js as _js
    from pyodide.ffi import JsProxy as _JsProxy
    from pyodide.ffi import create_once_callable as _create_once_callable
    from pyodide.ffi import to_js as _to_js

    IN_PYODIDE = True
except ImportError:
    _js = None
    _JsProxy = None
    _to_js = None
    _create_once_callable = None
    IN_PYODIDE = False

try:  # pragma: no cover - Pyodide 0.27+ converts JS null to `jsnull`, not to None
    from pyodide.ffi import jsnull as _jsnull
except ImportError:
    _jsnull = None


def to_js(value: Any) -> Any:
    """A JSON-native Python value as a plain JS value, for a raw (unwrapped) JS API."""
    if not IN_PYODIDE or value is None or isinstance(value, str | int | float | bool):
        return value
    assert _to_js is not None and _js is not None
    return _to_js(value, dict_converter=_js.Object.fromEntries)


def to_py(value: Any) -> Any:
    """A value from a raw JS API as plain Python (JS `null`, at any depth, as None)."""
    if not IN_PYODIDE:
        return value
    if _JsProxy is not None and isinstance(value, _JsProxy):
        value = value.to_py()
    return _nulls(value)


def _nulls(value: Any) -> Any:
    if value is _jsnull:
        return None
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    return value


def to_bytes(value: Any) -> bytes:
    """Bytes from the SDK (a `memoryview` of an ArrayBuffer) or a raw ArrayBuffer proxy."""
    if IN_PYODIDE and _JsProxy is not None and isinstance(value, _JsProxy):
        return bytes(value.to_bytes())
    return bytes(value)


def callback(fn: Callable[[], Any]) -> Any:
    """A Python function a JS API calls once, synchronously (`transactionSync`): a once-callable
    frees its proxy after the call (a plain function would leak one per transaction)."""
    if not IN_PYODIDE:
        return fn
    assert _create_once_callable is not None
    return _create_once_callable(fn)


def epoch_seconds(value: Any) -> float:
    """A message timestamp as epoch seconds. Through the SDK a JS Date arrives as a naive
    `datetime` made by `datetime.fromtimestamp` (local time, UTC on Workers): `timestamp()`
    inverts that exactly, whatever the local zone. A raw JS Date has `getTime()`."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if hasattr(value, "getTime"):
        return float(value.getTime()) / 1000.0
    raise MalformedMessageError(f"not a timestamp: {type(value).__name__}")


# --- WebSockets (the live-log subscribers a run's Durable Object accepts) -------------------

# Stand-ins for runtime globals where the Workers runtime is absent (the CPython contract tests
# install their fakes here); on Workers, and under Pyodide, this stays empty.
RUNTIME: dict[str, Any] = {}


def websocket_pair() -> tuple[Any, Any]:
    """`Object.values(new WebSocketPair())` as `(client, server)`."""
    pair_class = RUNTIME.get("WebSocketPair")
    if pair_class is None:  # pragma: no cover - Workers only
        assert _js is not None
        pair_class = _js.WebSocketPair
    client, server = pair_class.new().object_values()
    return client, server


def upgrade_response(client: Any) -> Any:
    """The 101 response handing `client` to the caller: `new Response(null, {status: 101,
    webSocket: client})` (through the SDK's `Response(..., web_socket=client)`)."""
    factory = RUNTIME.get("upgrade_response")
    if factory is not None:
        return factory(client)
    from workers import Response  # type: ignore[import-not-found,unused-ignore]  # pragma: no cover

    return Response(None, status=101, web_socket=client)  # pragma: no cover


def asgi_fetch() -> Any:
    """The SDK's ASGI bridge, `workers.asgi.fetch(app, request, env, ctx)`: serves one request
    with an ASGI app; a streaming body runs on in a task after it returns."""
    found = RUNTIME.get("asgi_fetch")
    if found is not None:
        return found
    from workers import asgi  # type: ignore[import-not-found,unused-ignore]  # pragma: no cover

    return asgi.fetch  # pragma: no cover


def js_request(request: Any) -> Any:
    """The JS `Request` under the SDK's Python wrapper (itself when already JS)."""
    return getattr(request, "js_object", request)


def header(request: Any, name: str) -> str | None:
    """`request.headers.get(name)`: a string, or None (JS null) when absent."""
    value = to_py(js_request(request).headers.get(name))
    return None if value is None else str(value)


def request_url(request: Any) -> str:
    return str(to_py(js_request(request).url))


def attachment(ws: Any) -> dict[str, Any] | None:
    """`ws.deserializeAttachment()` as plain Python (None when none was stored)."""
    value = to_py(ws.deserializeAttachment())
    return value if isinstance(value, dict) else None


def set_attachment(ws: Any, value: dict[str, Any]) -> None:
    """`ws.serializeAttachment(value)` (a structured-cloneable plain object)."""
    ws.serializeAttachment(to_js(value))


def websockets(ctx: Any, tag: str) -> list[Any]:
    """`ctx.getWebSockets(tag)` as a Python list of (JS) WebSockets."""
    found = ctx.getWebSockets(tag)
    return list(found) if found is not None else []


def accept_websocket(ctx: Any, ws: Any, tags: list[str]) -> None:
    """`ctx.acceptWebSocket(ws, tags)`: hibernatable (the object may leave memory while the
    socket stays open). The SDK passes `ctx`'s own methods through unconverted."""
    ctx.acceptWebSocket(ws, to_js(tags))
