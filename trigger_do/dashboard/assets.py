"""The dashboard's files, shipped as package data beside this module: `templates/*.html`
(Jinja2) and `static/*` (htmx, the stylesheet, a small script).

They are read from the file system next to `__file__`, which works wherever the package
is: installed, editable, or in a Python Worker, whose bundle puts every Text and Data
module under the module root (wrangler uploads everything under `python_modules/` as Data,
and the repository's wrangler.toml has rules for these files in its module root;
tests/cloudflare/test_cf_dashboard_assets.py checks both). Jinja2 is imported on the first
page, not when the API starts."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


@cache
def static_file(name: str) -> tuple[bytes, str, str] | None:
    """`(content, media type, version)` of a static file, None if there is no such file."""
    if "/" in name or "\\" in name or name.startswith(".") or Path(name).suffix not in TYPES:
        return None
    path = STATIC / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data, TYPES[path.suffix], hashlib.sha256(data).hexdigest()[:12]


def static_names() -> list[str]:
    return sorted(p.name for p in STATIC.iterdir() if p.suffix in TYPES)


# --- filters the templates use -----------------------------------------------------------------


def when(ts: float | None) -> str:
    """Epoch seconds as `2026-11-30 12:00:03Z` (the page's script shows it in local time)."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return "-"


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return ""


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def pretty(value: Any) -> str:
    """A JSON value as indented text (escaped by the template like any other text)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def json_text(text: str | None) -> str:
    """Stored JSON text (a step's result) pretty-printed; as is if it is not JSON."""
    if text is None:
        return "null"
    try:
        return pretty(json.loads(text))
    except ValueError:
        return text


def status_of(state: str) -> str:
    """A run's state as the API names it (`running` -> `EXECUTING`)."""
    from ..shared.states import RunState

    try:
        return RunState(state).api_status
    except ValueError:
        return state.upper()


def is_final(state: str) -> bool:
    from ..shared.states import RunState

    try:
        return RunState(state).is_final
    except ValueError:
        return False


FILTERS: dict[str, Callable[..., Any]] = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "pretty": pretty,
    "json_text": json_text,
}


@cache
def environment() -> Any:
    """The Jinja2 environment: autoescaping everywhere (a payload's `<script>` is text)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(status_of=status_of)
    return env
