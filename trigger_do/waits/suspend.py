"""The waiting side of a run: `ctx.wait_for`/`wait_until` and a task's `trigger_and_wait`/
`batch_trigger_and_wait` inside another task.

Each call takes the next position in the run's call order (`seq`). On a replay, a position
with a recorded wait returns at once: a completed timer returns, completed children return
their outputs (or raise `RunFailedError`); a different kind (or key) at a recorded position
raises `WaitMismatchError` naming both. A new wait records its waitpoint on the run's index
shard (`runs/index_waits.py`) and raises `Suspended`: the attempt ends there, the consumer
writes the run WAITING, and the delivery and its concurrency slot are released. Waits of
`INLINE_WAIT` seconds or less sleep in place (recorded with the next suspension, so a replay
does not sleep them again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import MisuseError, PayloadValidationError, RunFailedError, WaitMismatchError
from ..ports import Platform, Remote
from ..runs.client import RunIndex
from ..runs.index import RunIndexObject
from ..runs.index_waits import waitpoint_id
from ..shared import tracing
from ..shared.current import SCOPES, Start
from ..shared.serialization import loads
from ..shared.states import RunState
from .service import Waits

INLINE_WAIT = 5.0  # seconds: a wait this short sleeps in place (as Trigger.dev's do)


class Suspended(BaseException):
    """The run waits: its attempt ends here and it is written WAITING. A BaseException, so
    that a task's `except Exception` does not swallow its own suspension."""

    def __init__(self, run_id: str, seq: int, kind: str) -> None:
        self.run_id, self.seq, self.kind = run_id, seq, kind
        super().__init__(f"run {run_id} waits ({kind} at call {seq})")


class RunWaits:
    """One attempt's waiter (`shared.current.current_run` holds it while the attempt runs)."""

    def __init__(
        self,
        platform: Platform,
        run_id: str,
        attempt: int,
        *,
        root_run_id: str | None,
        resumed: bool,
        depth: int = 0,
        recorded: dict[str, Any] | None = None,
    ) -> None:
        self.platform = platform
        self.run_id = run_id
        self.attempt = attempt
        self.root_run_id = root_run_id or run_id
        self.depth = depth
        self._resumed = resumed
        # what it recorded before (fetched for its consumer's batch, else when first needed)
        self._recorded: dict[int, dict[str, Any]] | None = None if resumed else {}
        if recorded is not None:
            self._recorded = {int(seq): w for seq, w in recorded.items()}
        self._seq = 0
        self._inline: list[list[Any]] = []  # [seq, kind, key] slept in place, not recorded yet
        self._loop = asyncio.get_running_loop()
        self._shard: Remote[RunIndexObject] | None = None  # made when first needed

    @property
    def _index(self) -> Remote[RunIndexObject]:
        """The run's index shard (not made for the many runs that never wait)."""
        if self._shard is None:
            self._shard = RunIndex(self.platform).on(self.run_id)
        return self._shard

    # --- options of runs triggered from inside this one -----------------------------------

    def child_options(self, options: dict[str, Any]) -> dict[str, Any]:
        opts = {k: v for k, v in options.items() if k != "idempotency_key_scope"}
        opts.setdefault("parent_run_id", self.run_id)
        opts.setdefault("root_run_id", self.root_run_id)
        opts.setdefault("depth", self.depth + 1)
        scope = options.get("idempotency_key_scope", "run")
        if scope not in SCOPES:
            raise PayloadValidationError(
                f"idempotency_key_scope is one of {', '.join(SCOPES)}, not {scope!r}"
            )
        key = opts.get("idempotency_key")
        if key and scope == "run":  # Trigger.dev's default inside a run: per parent run
            opts["idempotency_key"] = f"{key}\x1frun:{self.run_id}"
        elif key and scope == "attempt":
            opts["idempotency_key"] = f"{key}\x1fattempt:{self.run_id}:{self.attempt}"
        return opts

    # --- positions -------------------------------------------------------------------------

    async def _position(self, kind: str, key: str | None) -> tuple[int, dict[str, Any] | None]:
        if asyncio.get_running_loop() is not self._loop:  # a sync task's thread
            raise MisuseError(
                "only async tasks can wait: a wait or trigger_and_wait suspends the run, "
                "which a sync (def) task cannot do; make the task `async def` and await it"
            )
        if self._recorded is None:
            found = await self._index(RunIndexObject.waits_of, self.run_id)
            self._recorded = {int(seq): w for seq, w in found.items()}
        self._seq += 1
        seq = self._seq
        rec = self._recorded.get(seq)
        if rec is not None and (rec["kind"] != kind or (key is not None and rec["key"] != key)):
            raise WaitMismatchError(
                f"run {self.run_id}: call {seq} is now {_describe(kind, key)}, but "
                f"{_describe(rec['kind'], rec['key'])} was recorded there; a run must reach "
                "its waits in the same order on every replay (give them key= to check it)"
            )
        return seq, rec

    async def _record(
        self, seq: int, kind: str, key: str | None, due: float | None, expected: int
    ) -> bool:
        done = await self._index(
            RunIndexObject.create_waitpoint,
            self.run_id,
            seq,
            kind,
            key,
            due,
            expected,
            self._inline,
            self.platform.clock.now(),
        )
        self._inline = []
        return bool(done)

    # --- waits -----------------------------------------------------------------------------

    async def wait_until(self, when: float, key: str | None = None) -> None:
        with _traced("timer", key) as span:
            await self._wait_until(when, key, span)

    async def _wait_until(self, when: float, key: str | None, span: Any) -> None:
        seq, rec = await self._position("timer", key)
        _mark(span, seq, rec)
        if rec is not None and rec["done"]:
            return
        remaining = when - self.platform.clock.now()
        if rec is None and remaining <= INLINE_WAIT:
            if remaining > 0:
                await asyncio.sleep(remaining)
            self._inline.append([seq, "timer", key])
            return
        if await self._record(seq, "timer", key, when, 1):
            return  # completed already (its time came while we got here)
        raise Suspended(self.run_id, seq, "timer")

    async def wait_children(
        self,
        kind: str,
        count: int,
        options: list[dict[str, Any]],
        start: Start,
        key: str | None = None,
    ) -> list[Any]:
        with _traced(kind, key) as span:
            return await self._wait_children(kind, count, options, start, key, span)

    async def _wait_children(
        self,
        kind: str,
        count: int,
        options: list[dict[str, Any]],
        start: Start,
        key: str | None,
        span: Any,
    ) -> list[Any]:
        seq, rec = await self._position(kind, key)
        _mark(span, seq, rec)
        if span is not None:
            span.set_attribute("trigger_do.wait.runs", count)
        wp = waitpoint_id(self.run_id, seq)
        if rec is not None and rec["done"]:
            return await self._outcomes(rec["items"])
        if count == 0:
            return []
        if rec is None:
            await self._record(seq, kind, key, None, count)
        extra = [
            {**self.child_options(o), "waitpoint": wp, "waitpoint_index": i}
            for i, o in enumerate(options)
        ]
        for o in extra:  # a replay after a crash before suspending finds the same children
            if kind == "run" and not o.get("idempotency_key"):
                o["idempotency_key"] = f"waitpoint:{wp}"
        made = await start(extra, f"waitpoint:{wp}" if kind == "batch" else None)
        await self._index(RunIndexObject.set_children, wp, [rid for rid, _ in made])
        # an idempotency key named runs that exist (another parent's, perhaps): their ends
        # complete this waitpoint too, and those that ended already count now
        ended: list[dict[str, Any]] = []
        index = RunIndex(self.platform)
        for i, (rid, cached) in enumerate(made):
            if cached:
                ended += await index.on(rid)(RunIndexObject.add_waiter, rid, wp, i)
        await Waits(self.platform).complete(ended)
        raise Suspended(self.run_id, seq, kind)

    async def _outcomes(self, items: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if item["state"] != RunState.COMPLETED:
                raise RunFailedError(item["run_id"], item["state"], item["error"])
            text = item["output"]
            if text is None and item["output_packet"]:
                data = await self.platform.blobs.get(item["output_packet"])
                text = data.decode() if data is not None else None
            out.append(loads(text) if text is not None else None)
        return out


@contextmanager
def _traced(kind: str, key: str | None) -> Iterator[Any]:
    """The wait's span (None: tracing off), `trigger_do.wait.suspended` when the attempt
    suspends there (tracing.py)."""
    otel = tracing.active
    if otel is None:
        yield None
        return
    with otel.wait(kind, key) as span:
        try:
            yield span
        except Suspended:
            span.set_attribute("trigger_do.wait.suspended", True)
            raise


def _mark(span: Any, seq: int, rec: dict[str, Any] | None) -> None:
    if span is not None:
        span.set_attribute("trigger_do.wait.position", seq)
        span.set_attribute("trigger_do.wait.replayed", bool(rec is not None and rec["done"]))


def _describe(kind: str, key: str | None) -> str:
    name = {"timer": "a wait", "run": "a trigger_and_wait", "batch": "a batch_trigger_and_wait"}
    return name.get(kind, f"a {kind} wait") + (f" (key {key!r})" if key is not None else "")
