"""Waiting on a token inside a run: `ctx.wait_token(...)` makes a token (a `RunToken`), and
`await token.wait()` suspends the run on it until the token completes, then returns
`WaitResult(ok, output|error)`. `ctx.wait_for_event(...)` waits the same way on a token the
first matching event completes (events.py).

The wait is one more kind of the durable waits' waitpoint (`runs/index_waits.py`): kind
`token`, its key the token id, one item expected. `token.wait()` takes the next position in
the run's call order, records the waitpoint, registers it with the token
(`TokenService.wait_on`) and raises `Suspended`: the run becomes WAITING and holds nothing.
The token's completion reaches the waitpoint through the engine's resume hook (resume.py),
which resumes the run; the replay finds the waitpoint completed and returns its result at
once. A token complete before its wait registers is recorded on the spot and the run goes on
without suspending.

A replay makes its tokens again: each `ctx.wait_token` without an idempotency key gets one
naming the run and its order among the run's tokens, so the replay finds the token it made
the first time (the waitpoint's key checks it is the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..ports import Platform
from .resume import TOKEN_KIND, WaitResult, completion_items, result_of

if TYPE_CHECKING:
    from ..waits.suspend import RunWaits
    from .service import TokenService

KEY_TTL = "3650d"  # a run's own token key outlives any wait (10 years, the longest timeout)


def tokens_of(platform: Platform) -> TokenService:
    """The token service as an engine wires it (its hook resumes runs; events reach its event
    waits)."""
    from ..engine import Engine

    return Engine(platform).tokens


def run_key(run_id: str, kind: str, n: int) -> str:
    """The idempotency key of a run's `n`-th token of `kind` (made again on each replay)."""
    return f"{run_id}\x1f{kind}:{n}"


async def wait_on_token(waiter: RunWaits, token_id: str) -> WaitResult:
    """Suspend `waiter`'s run on the token `token_id` (or return its recorded result)."""
    from ..runs.index_waits import waitpoint_id
    from ..waits.service import Waits
    from ..waits.suspend import Suspended

    seq, rec = await waiter._position(TOKEN_KIND, token_id)
    if rec is not None and rec["done"]:
        return result_of(rec["items"][0])
    wp = waitpoint_id(waiter.run_id, seq)
    if rec is None:
        await waiter._record(seq, TOKEN_KIND, token_id, None, 1)
    done = await tokens_of(waiter.platform).wait_on(token_id, wp)
    if done is not None:  # complete already: record it on the spot, and go on
        items = completion_items([done])
        await Waits(waiter.platform).complete(items)
        return result_of(items[0])
    raise Suspended(waiter.run_id, seq, TOKEN_KIND)


@dataclass(frozen=True)
class RunToken:
    """A wait token made inside a run: hand out `url` (or the `id`), then `await
    token.wait()`."""

    id: str
    url: str
    is_cached: bool
    waiter: Any

    async def wait(self) -> WaitResult:
        """Suspend the run until the token completes: `WaitResult(ok=True, output=...)`, or
        `ok=False` with the TRIGGER_WAITPOINT_TIMEOUT error if it timed out."""
        return await wait_on_token(self.waiter, self.id)


async def create_token(
    waiter: RunWaits,
    n: int,
    *,
    timeout: Any = None,
    idempotency_key: str | None = None,
    idempotency_key_ttl: Any = None,
    tags: Any = None,
) -> RunToken:
    """The run's `n`-th `ctx.wait_token`."""
    service = tokens_of(waiter.platform)
    key = idempotency_key or run_key(waiter.run_id, "token", n)
    token, cached = await service.create(
        idempotency_key=key,
        idempotency_key_ttl=idempotency_key_ttl or (None if idempotency_key else KEY_TTL),
        timeout=timeout,
        tags=tags,
    )
    return RunToken(token["id"], service.url(token["id"]), cached, waiter)


async def wait_for_event(
    waiter: RunWaits,
    n: int,
    name: str,
    *,
    match: dict[str, Any] | None = None,
    timeout: Any = None,
    lookback: Any = None,
) -> WaitResult:
    """The run's `n`-th `ctx.wait_for_event`: its token (made once: a replay finds it), then
    the wait on it."""
    service = tokens_of(waiter.platform)
    token = await service.wait_for_event(
        name,
        match=match,
        timeout=timeout,
        lookback=lookback,
        idempotency_key=run_key(waiter.run_id, "event", n),
    )
    return await wait_on_token(waiter, token["id"])
