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

And Linux lets a timed wait end up to the thread's "timer slack" late (50 us by default,
so the kernel can batch wake-ups): the loop's thread asks for none (`prctl`), so a 10 ms
wait took 10.06 ms rather than 10.11 on the 2-core test machine.
"""

from __future__ import annotations

import asyncio
import ctypes
import select
import selectors
import sys

FD_SETSIZE = 1024  # select() takes descriptors below it only
PR_SET_TIMERSLACK = 29  # <linux/prctl.h>


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


def no_timer_slack() -> bool:
    """Ask Linux to end this thread's timed waits on time (its timer slack at 1 ns, the
    least). Elsewhere, or refused: nothing changes. Returns whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire on time (see the module's notes): with the precise
    selector where asyncio would use epoll, else asyncio's default; on Linux, the calling
    thread (the loop's) keeps no timer slack."""
    no_timer_slack()
    if getattr(selectors, "EpollSelector", None) is selectors.DefaultSelector:
        return asyncio.SelectorEventLoop(PreciseEpollSelector())
    return asyncio.new_event_loop()
