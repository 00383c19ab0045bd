"""The HTTP API: Trigger.dev-compatible REST, live logs, packet uploads, `serve()`."""

from .app import create_app
from .mount import serve

__all__ = ["create_app", "serve"]
