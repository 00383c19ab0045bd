"""Waiting for an event: a wait token that the first matching event completes.

`Engine.tokens.wait_for_event(name, match=..., timeout=..., lookback=...)` makes a token
(with the timeout, if any) and records an *event wait* on the shard of the event's name: the
token completes with the first event named `name` whose fields equal `match` (dotted paths
over the event: `payload.account`, `id`), sent after the wait began or within `lookback`
before it. Both directions of the race are closed: the wait is recorded first, then the
events already sent in the lookback are read (`EventService.lookup`), and every send after
that reads the waits of its name (`event_sent`, the event service's `on_sent` hook). An
event can complete many waits; each wait completes once (its token does). So a run waits
for an event exactly as it waits for a token: one suspension path.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidWaitTokenError

MISSING = object()
MAX_MATCH = 20  # fields one wait may match on


def check_match(match: Any) -> dict[str, Any]:
    """`{dotted path: value}` (paths over `payload`, `id`, `name`); else the error naming it."""
    if match is None:
        return {}
    if not isinstance(match, dict) or len(match) > MAX_MATCH:
        raise InvalidWaitTokenError(f"match is a dict of at most {MAX_MATCH} dotted paths")
    for path in match:
        if not isinstance(path, str) or path.split(".")[0] not in ("payload", "id", "name"):
            raise InvalidWaitTokenError(
                f"match: {path!r} is not a dotted path under payload, id or name "
                '(e.g. "payload.account")'
            )
    return dict(match)


def field(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of `event` (MISSING if there is none)."""
    value: Any = event
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def matches(match: dict[str, Any], event: dict[str, Any]) -> bool:
    return all(field(event, path) == want for path, want in match.items())


def event_output(event: dict[str, Any]) -> dict[str, Any]:
    """What a wait for an event returns: the event (`id`, `name`, `payload`, `timestamp`)."""
    from .shapes import iso

    return {
        "id": event["id"],
        "name": event["name"],
        "payload": event.get("payload"),
        "timestamp": iso(float(event["created_at"])),
    }
