"""How a token's completion resumes a waiting run: tokens as one more kind of waitpoint.

The durable waits (`runs/index_waits.py`, `waits/`) model every wait as a *waitpoint* on the
waiting run's index shard, `run_id:seq`, with a `kind` (`timer`, `run`, `batch`) and the
*items* that complete it (`{waitpoint, idx, run_id, state, output, output_packet, error}`:
one per child run), written once by `RunIndexObject.complete_items`, which resumes the run
when nothing else holds it. A token is one more kind (`token`, its key the token id, one
item expected): a run that waits on a token records its waitpoint, then registers it with
`Engine.tokens.wait_on(token_id, waitpoint)`; when the token completes, by any road, the
token service's hook (`resume_hook`) turns each `TokenCompletion` into that waitpoint's one
item and hands the items to the waits' `complete` (`Waits.complete`), which groups them by
shard. A repeat is harmless there (an item is written once), which the token store's
redelivery relies on. On replay, the recorded item becomes the run's `WaitResult`
(`result_of`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import WaitpointTimeoutError
from ..shared.serialization import loads
from ..shared.states import RunState
from .service import Hook, TokenCompletion

TOKEN_KIND = "token"  # the waitpoint kind of a wait on a token (its key: the token id)


@dataclass(frozen=True)
class WaitResult:
    """What `token.wait()` returns: `ok` with the data the token was completed with
    (`output`), or not ok with the error that ended the wait (`error`: on a timeout,
    `{"code": "TRIGGER_WAITPOINT_TIMEOUT", "message": ...}`)."""

    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None

    def unwrap(self) -> Any:
        """The output; `WaitpointTimeoutError` if the wait timed out."""
        if not self.ok:
            message = (self.error or {}).get("message") or "the wait timed out"
            raise WaitpointTimeoutError(str(message), self.error)
        return self.output


def completion_items(done: list[TokenCompletion]) -> list[dict[str, Any]]:
    """Token completions as waitpoint items, in the waits' shape (`complete_items`)."""
    return [
        {
            "waitpoint": c.waitpoint,
            "idx": 0,
            "run_id": c.token_id,  # what completed the waitpoint: here a token
            "state": str(RunState.COMPLETED if c.ok else RunState.TIMED_OUT),
            "output": c.output if c.ok else None,
            "output_packet": None,
            "error": None if c.ok else c.output,
        }
        for c in done
    ]


def result_of(item: dict[str, Any]) -> WaitResult:
    """A recorded item of a token waitpoint (as the waits' `waits_of` gives it: `output`
    JSON text, `error` decoded) as the run's `WaitResult`."""
    if item["state"] == RunState.COMPLETED:
        text = item.get("output")
        return WaitResult(True, loads(text) if text is not None else None)
    error = item.get("error")
    if isinstance(error, str):
        error = loads(error)
    return WaitResult(False, error=error if isinstance(error, dict) else {"message": str(error)})


def resume_hook(complete: Callable[[list[dict[str, Any]]], Awaitable[Any]]) -> Hook:
    """The token service's hook that completes each waiter's waitpoint through `complete`
    (the waits' `Waits.complete`: items grouped by the waiting run's shard)."""

    async def hook(done: list[TokenCompletion]) -> None:
        await complete(completion_items(done))

    return hook
