"""Run the HTTP API with uvicorn inside an existing event loop (the supervisor's)."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from typing import Any

from ..errors import TriggerDoError

log = logging.getLogger("trigger_do.api")


def check_port(host: str, port: int) -> None:
    """Raise `TriggerDoError` if `host:port` cannot be bound (in use, or not allowed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TriggerDoError(
                    f"port {port} on {host} is already in use: stop what is listening there "
                    "or pick another with --port"
                ) from None
            raise TriggerDoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def make_server(
    app: Any, host: str, port: int, *, handle_signals: bool = True, **config: Any
) -> Any:
    import uvicorn

    options: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "off",
        "ws": "websockets-sansio",
        # a stop waits this long for requests in flight, then cancels them: a held realtime
        # or dashboard request (up to 20 s) does not hold up a Ctrl-C or a reload
        "timeout_graceful_shutdown": 5,
    }
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    if not handle_signals:  # the caller handles SIGINT/SIGTERM and sets should_exit
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


async def serve_http(
    app: Any, host: str, port: int, *, handle_signals: bool = True, **config: Any
) -> None:
    """Serve `app` on `host:port` until the server stops (SIGINT/SIGTERM with
    `handle_signals`: uvicorn shuts down gracefully, then re-raises the signal to the
    previous handler) or this task is cancelled. Raises `TriggerDoError` if the port is
    taken. Extra keyword arguments go to `uvicorn.Config`."""
    check_port(host, port)
    server = make_server(app, host, port, handle_signals=handle_signals, **config)
    try:
        await server.serve()
    except SystemExit:  # uvicorn's startup failure (e.g. the port was taken meanwhile)
        raise TriggerDoError(f"the HTTP server could not start on {host}:{port}") from None
    finally:
        if not server.should_exit:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await server.shutdown()
    if not server.started and not server.should_exit:
        raise TriggerDoError(f"the HTTP server on {host}:{port} did not start")
