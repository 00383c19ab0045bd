"""The run an attempt is executing, for code that runs inside it (a task's own trigger
calls): a context variable set by the consumer for each attempt. What it holds is the run's
waiter (`waits/suspend.py`); this module only names its shape, so that `task.py` depends on
nothing above `shared/`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

Start = Callable[[list[dict[str, Any]], str | None], Awaitable[list[tuple[str, bool]]]]
"""Triggers a call's children with one extra options dict per child (and the batch's
idempotency key, for a batch); returns `(run id, cached)` of each, in order (`cached`: an
idempotency key named an existing run)."""


class RunWaiter(Protocol):
    run_id: str

    def child_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """`options` of a run triggered from inside this one: its parent and root, its
        idempotency key scoped (`idempotency_key_scope`: run, attempt or global)."""
        ...

    async def wait_until(self, when: float, key: str | None = None) -> None: ...

    async def wait_children(
        self,
        kind: str,
        count: int,
        options: list[dict[str, Any]],
        start: Start,
        key: str | None = None,
    ) -> list[Any]:
        """Trigger `count` children (`start`) and suspend until every one has ended; on
        replay, their recorded outcomes: outputs, or `RunFailedError` for the first that
        did not complete."""
        ...


current_run: ContextVar[RunWaiter | None] = ContextVar("trigger_do_current_run", default=None)

SCOPES = ("run", "attempt", "global")


def outside_run_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options` of a trigger made outside any run (an idempotency key scope means
    nothing there: it is checked, then dropped)."""
    scope = options.get("idempotency_key_scope")
    if scope is None:
        return options
    from ..errors import PayloadValidationError

    if scope not in SCOPES:
        raise PayloadValidationError(
            f"idempotency_key_scope is one of {', '.join(SCOPES)}, not {scope!r}"
        )
    return {k: v for k, v in options.items() if k != "idempotency_key_scope"}
