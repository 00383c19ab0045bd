"""Standby runs: a key's next run, started in the process where its key's runs run, that
goes the instant one of them returns, not once that run's outcome is written.

A key with a line turns its slots over at the speed of the writes that record outcomes:
each run's successor was granted in the write that freed its slot, and started once that
committed. Where runs are short (the write a noticeable share of the run), those writes
set the key's pace. So when a release frees a slot of such a key (its run was quick, and
the key has a line), the consumer also asks for standbys: as many of the line's next
runs as it has runs of the key still running. A standby is granted a slot of its own
(`standby`, not counted against the limit) and started (its attempt and lease, like any
run), but its code waits. When a run of its key ends here, one standby goes; the slot of
the run that ended is then given to it (`promote`) in the write that records that run's
outcome. So a key's user code never runs in more runs at once than its limit: a standby
goes only when a run of its key has returned, one for one.

Should the process die, the standbys' slots lapse with their leases, and the coordinator
puts them back in line, as it does for any run granted directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

QUICK = 0.5  # seconds: a run that ended faster than this asks its key for standbys
BRIEF = 0.001  # ... and not faster than this (a noop's successor gains nothing from one)

Key = tuple[str, str]  # (queue, concurrency key)


class Standbys:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.key_of: dict[str, Key] = {}  # runs holding a slot here
        self.lines: dict[Key, list[str]] = {}  # the standbys waiting, in order
        self.go: dict[str, asyncio.Future[None]] = {}  # each waiting standby's go-ahead
        self.done: set[str] = set()  # runs whose code returned (their release pending)
        self.quick: set[str] = set()  # ... in under `QUICK` seconds
        self.handoff: dict[str, str] = {}  # a run that ended -> the standby it let go
        # when a handoff happened: the run's recorded end, the standby's recorded start
        self.ended_at: dict[str, float] = {}
        self.started_at: dict[str, float] = {}
        self.running: dict[Key, int] = {}  # runs of a key whose code runs here (none: 0)

    def track(self, run_id: str, queue: str, key: str | None) -> None:
        if run_id not in self.key_of:
            self.key_of[run_id] = k = (queue, key or "")
            self._count(k, 1)

    def wait(self, run_id: str, queue: str, key: str | None) -> None:
        """A standby granted to this consumer: it is started, its code waits for `go`."""
        self.key_of[run_id] = k = (queue, key or "")  # (running once it goes)
        self.go[run_id] = asyncio.get_running_loop().create_future()
        self.lines.setdefault(k, []).append(run_id)

    def gate(self, run_id: str) -> asyncio.Future[None] | None:
        """What the run's code waits for before it starts (None: nothing)."""
        return self.go.get(run_id)

    def ended(self, run_id: str, seconds: float) -> None:
        """A run's attempt here is over: if it ran code, a standby of its key goes now."""
        if run_id in self.go:  # a standby that never went (canceled, shut down)
            self._unline(run_id)
            return
        key = self.key_of.get(run_id)
        if key is None or run_id in self.done:
            return
        self.done.add(run_id)
        if BRIEF <= seconds < QUICK:
            self.quick.add(run_id)
        line = self.lines.get(key)
        if line:  # (the standby runs in its place: the key's count stays)
            nxt = line.pop(0)
            if not line:
                del self.lines[key]
            self.go.pop(nxt).set_result(None)
            self.handoff[run_id] = nxt
            self.ended_at[run_id] = self.started_at[nxt] = self.clock()
        else:
            self._count(key, -1)

    def promotions(self, released: Iterable[str]) -> list[str]:
        """The standbys the runs of `released` let go: their slots are the released ones."""
        return [self.handoff[r] for r in released if r in self.handoff]

    def wants(self, queue: str, released: set[str]) -> dict[str, int] | None:
        """Per key of the quick runs of `released`: how many standbys this consumer can
        let go, one per run of the key still running here, less those it has."""
        keys = {self.key_of[r] for r in released if r in self.quick and r in self.key_of}
        wants = {
            k: n
            for q, k in keys
            if (n := self.running.get((q, k), 0) - len(self.lines.get((q, k), ()))) > 0
        }
        return wants or None

    def freed(self, run_ids: Iterable[str]) -> None:
        """These runs' slots are freed (and the standbys they let go promoted) durably, or
        they are not run here after all."""
        for r in run_ids:
            if r in self.go:
                self._unline(r)
            elif (key := self.key_of.get(r)) is not None and r not in self.done:
                self._count(key, -1)  # (let go before its code ended: not run here)
            self.key_of.pop(r, None)
            self.done.discard(r)
            self.quick.discard(r)
            self.handoff.pop(r, None)
            self.ended_at.pop(r, None)  # (an attempt with no outcome to record them in)
            self.started_at.pop(r, None)

    def _unline(self, run_id: str) -> None:
        """A standby that never went leaves its line (it never counted as running)."""
        fut = self.go.pop(run_id)
        fut.cancel()
        self.done.add(run_id)
        key = self.key_of.get(run_id)
        if key is not None and run_id in self.lines.get(key, ()):
            self.lines[key].remove(run_id)
            if not self.lines[key]:
                del self.lines[key]

    def _count(self, key: Key, delta: int) -> None:
        """Add to the key's count of runs running here (a key at zero loses its entry:
        a worker sees many keys over its life)."""
        n = self.running.get(key, 0) + delta
        if n > 0:
            self.running[key] = n
        else:
            self.running.pop(key, None)
