"""The JS <-> Python boundary: the only module that imports `js` and `pyodide.ffi`.

Under Pyodide (Python Workers, or the Pyodide test harness) values crossing into a binding
are converted with `to_js` (dicts to plain JS objects, not Maps) and values coming back
with `.to_py()`. On CPython (the contract tests' fakes) both are the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _load_jsnull() -> Any:  # pragma: no cover
    """Pyodide 0.27+ converts JS null to `pyodide.ffi.jsnull`, not to None."""
    try:
        from pyodide.ffi import jsnull
    except ImportError:
        return None
    return jsnull


_jsnull: Any = _load_jsnull() if IN_PYODIDE else None


def to_js(value: Any) -> Any:
    """A JSON-native Python value as the JS value a binding expects (objects, arrays)."""
    if not IN_PYODIDE or value is None or isinstance(value, str | int | float | bool):
        return value
    assert _to_js is not None and _js is not None
    return _to_js(value, dict_converter=_js.Object.fromEntries)


def to_py(value: Any) -> Any:
    """A JS value as plain Python. JS `undefined` arrives as None already; JS `null`
    arrives as `pyodide.ffi.jsnull` (Pyodide 0.27+), here None, at any depth."""
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


def js_null() -> Any:
    """JS `null` (Python None crosses as `undefined`, which SQL bindings must not get)."""
    if not IN_PYODIDE:
        return None
    assert _js is not None
    return _js.JSON.parse("null")


def to_bytes(value: Any) -> bytes:
    """An ArrayBuffer / typed array (or, on CPython, bytes-like) as bytes."""
    if IN_PYODIDE and _JsProxy is not None and isinstance(value, _JsProxy):
        return bytes(value.to_bytes())
    return bytes(value)


def bytes_to_js(data: bytes) -> Any:
    """Bytes as a JS Uint8Array (R2 `put` takes ArrayBuffer views)."""
    if not IN_PYODIDE:
        return bytes(data)
    assert _to_js is not None
    return _to_js(data)


def callback(fn: Callable[[], Any]) -> Any:
    """A Python function a JS API calls once, synchronously (transactionSync)."""
    if not IN_PYODIDE:
        return fn
    assert _create_once_callable is not None
    return _create_once_callable(fn)


def epoch_seconds(value: Any) -> float:
    """A JS Date (or, on CPython, a number of epoch milliseconds) as epoch seconds."""
    if hasattr(value, "getTime"):
        return float(value.getTime()) / 1000.0
    return float(value) / 1000.0


def to_py_object(value: Any) -> Any:
    """A JS object kept as a proxy (its methods are still needed), or None for null."""
    if value is None or (IN_PYODIDE and value is _jsnull):
        return None
    return value


# --- WebSockets (the live-log subscribers a run's Durable Object accepts) -------------------

# Stand-ins for runtime globals where the Workers runtime is absent (the contract tests and
# the Pyodide harness install their fakes here); on Workers this stays empty.
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
    socket stays open)."""
    ctx.acceptWebSocket(ws, to_js(tags))
