"""The worker's event loop (`platform/local/loop.py`): asyncio's, on a selector whose
timeouts are not rounded up to the millisecond. These tests check what it must keep of
epoll's behaviour (events reported, never an early return); how much sooner its timers
fire is a benchmark's business (`load per-org`, load/RESULTS.md), not a unit test's."""

from __future__ import annotations

import asyncio
import ctypes
import selectors
import socket
import sys
import threading
import time

import pytest

from tests.engine import tasks_for_tests as t
from trigger_do.platform.local.loop import new_event_loop
from trigger_do.platform.local.runtime import LocalRuntime

epoll = pytest.mark.skipif(
    getattr(selectors, "EpollSelector", None) is not selectors.DefaultSelector,
    reason="asyncio uses epoll only on Linux",
)


@epoll
def test_ready_descriptors_are_reported_with_any_timeout() -> None:
    from trigger_do.platform.local.loop import PreciseEpollSelector

    a, b = socket.socketpair()
    with a, b, PreciseEpollSelector() as sel:
        sel.register(b, selectors.EVENT_READ, "b")
        assert sel.select(0.05) == []
        a.send(b"x")
        for timeout in (None, 0, 0.0003, 5.0):
            (key, events), *rest = sel.select(timeout)
            assert (key.data, events, rest) == ("b", selectors.EVENT_READ, [])


@epoll
def test_a_wait_is_never_cut_short() -> None:
    from trigger_do.platform.local.loop import PreciseEpollSelector

    a, b = socket.socketpair()
    with a, b, PreciseEpollSelector() as sel:
        sel.register(b, selectors.EVENT_READ)
        for timeout in (0.0004, 0.0025, 0.02):
            started = time.perf_counter()
            assert sel.select(timeout) == []
            assert time.perf_counter() - started >= timeout


@epoll
def test_a_wait_ends_when_a_descriptor_becomes_ready() -> None:
    from trigger_do.platform.local.loop import PreciseEpollSelector

    a, b = socket.socketpair()
    with a, b, PreciseEpollSelector() as sel:
        sel.register(b, selectors.EVENT_READ, "b")
        threading.Timer(0.05, a.send, (b"x",)).start()
        assert [k.data for k, _ in sel.select(60.0)] == ["b"]


def test_asyncio_runs_on_it() -> None:
    """Timers in order, a reader, a thread's result (the loop's self-pipe), a sleep."""

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        order: list[object] = []
        for delay in (0.003, 0.0005, 0.0015):
            loop.call_later(delay, order.append, delay)
        a, b = socket.socketpair()
        got: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(b, lambda: got.set_result(b.recv(1)))
        loop.call_later(0.001, a.send, b"y")
        order.append(await got)
        loop.remove_reader(b)
        a.close()
        b.close()
        order.append(await loop.run_in_executor(None, lambda: "thread"))
        await asyncio.sleep(0.004)
        return order

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        order = runner.run(main())
    assert [x for x in order if isinstance(x, float)] == [0.0005, 0.0015, 0.003]
    assert b"y" in order and "thread" in order


@epoll
async def test_a_worker_runs_its_tasks_on_it(runtime: LocalRuntime) -> None:
    handle = await t.loop_selector.trigger(None)
    assert await handle.result(timeout=30) == "PreciseEpollSelector"


PR_GET_TIMERSLACK = 30  # <linux/prctl.h>


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_the_loops_thread_keeps_no_timer_slack() -> None:
    """The thread that makes the loop runs it: its timed waits may end no later than asked
    (Linux lets them end 50 us late by default)."""
    slack: list[int] = []

    def make() -> None:
        new_event_loop().close()
        slack.append(ctypes.CDLL(None).prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0))

    thread = threading.Thread(target=make)  # (the test process's own threads untouched)
    thread.start()
    thread.join()
    assert slack == [1]
