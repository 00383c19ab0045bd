"""The worker's event loop: asyncio's own, with timers that fire on time.

On Linux asyncio waits in `epoll_wait`, whose timeout is in whole milliseconds, and
`selectors` rounds every wait up to the next one: a task's `await asyncio.sleep(0.01)`
took 10.5 ms on average, and every timer the engine sets (the writer's flush, a rate
window opening, a lease renewal) fired up to a millisecond late. A run that holds a
concurrency slot held it that much longer: the hot key of `load per-org` (runs of 10 ms)
lost five points of its ceiling to the rounding alone. (And a unit of work waiting for
another worker's write lock can wait on the loop, a fraction of a millisecond at a time,
while the runs go on: `LocalSql.transaction_async`.)

`PreciseEpollSelector` waits with a timeout on the epoll descriptor itself through
`select()`, whose timeout is in microseconds (the descriptor is readable once an event is
pending), then collects the events without waiting. A wait with no timeout, or none, is
epoll's as before. (kqueue, macOS's selector, takes its timeout in nanoseconds already.)
"""

from __future__ import annotations

import asyncio
import select
import selectors

FD_SETSIZE = 1024  # select() takes descriptors below it only


if hasattr(selectors, "EpollSelector"):

    class PreciseEpollSelector(selectors.EpollSelector):
        """An epoll selector whose timeouts are not rounded up to the millisecond."""

        def __init__(self) -> None:
            super().__init__()
            fd = self.fileno()
            # (a loop is made early, so its descriptor is a small number; should it not
            # be, waits are epoll's own, rounded up)
            self._wait_fd: int | None = fd if fd < FD_SETSIZE else None

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and timeout > 0 and self._wait_fd is not None:
                select.select([self._wait_fd], [], [], timeout)
                timeout = 0
            return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire on time (see the module's notes): with the precise
    selector where asyncio would use epoll, else asyncio's default."""
    if getattr(selectors, "EpollSelector", None) is selectors.DefaultSelector:
        return asyncio.SelectorEventLoop(PreciseEpollSelector())
    return asyncio.new_event_loop()
