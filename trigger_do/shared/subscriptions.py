"""What a task subscribes to: custom events by name (`event="user.created"`, a family with a
trailing `*`: `event="user.*"`), or a webhook source's deliveries (`source="github"`, with an
optional `event=` and `secret=`). Pure: checked where the task is declared, matched by the
events service (`trigger_do/events/`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import TaskDefinitionError

MAX_NAME = 256  # characters of an event name
# an event name: letters, digits and . _ - : / (no spaces, no `*`, which only patterns hold)
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,255}$")
SOURCE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")  # a webhook source: its URL's last part


def check_name(name: object) -> str | None:
    """Why `name` is not an event name (None: it is one)."""
    if not isinstance(name, str):
        return f"an event name is a string, not {type(name).__name__}"
    if not NAME.match(name):
        return (
            f"event name {name[:60]!r} must be 1 to {MAX_NAME} letters, digits and . _ - : / "
            "(starting with a letter, digit or _)"
        )
    return None


def check_pattern(pattern: object) -> str | None:
    """Why `pattern` is not an event pattern: a name, or a prefix then one trailing `*`."""
    if pattern == "*":
        return None
    if isinstance(pattern, str) and pattern.endswith("*"):
        head = pattern[:-1]
        problem = check_name(head) if head else None
        return None if problem is None else f"in pattern {pattern!r}: {problem}"
    return check_name(pattern)


def matches(pattern: str, name: str) -> bool:
    """Whether event `name` is one `pattern` subscribes to: equal, or (a trailing `*`) any
    name that starts with what precedes the `*` (`user.*`: `user.created`, not `user`)."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


@dataclass(frozen=True)
class Subscription:
    """A task's subscription: `source` None for custom events (then `event` is required);
    a webhook source otherwise (`event` None: every delivery of that source)."""

    event: str | None
    source: str | None = None
    secret: str | None = None

    def wants(self, source: str | None, names: Iterable[str]) -> bool:
        """Whether an event from `source` (None: a custom event) answering to any of
        `names` starts this task."""
        if source != self.source:
            return False
        if self.event is None:
            return True
        return any(matches(self.event, n) for n in names)


def as_subscription(
    task_id: str, event: str | None, source: str | None, secret: str | None
) -> Subscription | None:
    """The subscription `event=`, `source=`, `secret=` declare (None: none), checked;
    `TaskDefinitionError` naming what is wrong."""
    if event is None and source is None:
        if secret is not None:
            raise TaskDefinitionError(f"task {task_id!r}: secret= needs source= (a webhook)")
        return None
    if event is not None:
        problem = check_pattern(event)
        if problem:
            raise TaskDefinitionError(f"task {task_id!r}: event=: {problem}")
    if source is not None and (not isinstance(source, str) or not SOURCE.match(source)):
        raise TaskDefinitionError(
            f"task {task_id!r}: source={source!r} must be 1 to 64 lowercase letters, digits, "
            "- and _ (the webhook URL's last part: /webhooks/<source>)"
        )
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise TaskDefinitionError(f"task {task_id!r}: secret= must be a non-empty string")
    return Subscription(event, source, secret)


def registry_options(sub: Subscription | None) -> dict[str, str]:
    """What the task registry keeps of a subscription, so that a process that does not
    import the task (an app sending an event) still finds it: never the secret."""
    if sub is None:
        return {}
    out = {"event": sub.event, "source": sub.source}
    return {k: v for k, v in out.items() if v is not None}
