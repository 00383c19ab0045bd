"""`trigger_do.runs.subscribe(...)` and friends, embedded (the process's watcher on the
database) and remote (the server's shape routes over a real socket), against real workers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

import trigger_do
from trigger_do import RunNotFoundError, RunState, RunStatus

pytestmark = pytest.mark.timeout(120)
T = TypeVar("T")


async def collect(it: AsyncIterator[RunStatus], until: Any = None) -> list[RunStatus]:
    """Everything `it` yields (within 60 s), or up to the first status `until` accepts."""

    async def run() -> list[RunStatus]:
        out: list[RunStatus] = []
        async for status in it:
            out.append(status)
            if until is not None and until(out):
                break
        return out

    return await asyncio.wait_for(run(), 60)


async def test_subscribe_follows_a_run_until_it_ends(mode: str) -> None:
    handle = await trigger_do.tasks.trigger("http-steps", {"steps": 3, "interval": 0.4})
    seen = await collect(trigger_do.runs.subscribe(handle.id))
    assert all(s.id == handle.id for s in seen)
    assert seen[-1].state == RunState.COMPLETED and seen[-1].output == {"steps": 3}
    assert [s for s in seen[:-1] if s.is_final] == []  # it ended with the final status
    steps = [s.metadata["step"] for s in seen if "step" in s.metadata and not s.is_final]
    assert list(dict.fromkeys(steps)) == [0, 1, 2]  # every metadata change, in order
    assert len({s.updated_at for s in seen}) == len(seen)  # one status per change


async def test_subscribe_to_a_finished_run_yields_it_once(mode: str) -> None:
    handle = await trigger_do.tasks.trigger("http-echo", {"x": 1})
    await handle.result(timeout=30)
    seen = await collect(trigger_do.runs.subscribe(handle.id))
    assert [(s.state, s.output) for s in seen] == [(RunState.COMPLETED, {"x": 1})]


async def test_subscribe_to_an_unknown_run_raises(mode: str) -> None:
    with pytest.raises(RunNotFoundError):
        await collect(trigger_do.runs.subscribe("run_doesnotexist"))


async def test_subscribe_to_batch_ends_when_every_run_has(mode: str) -> None:
    batch = await trigger_do.tasks.batch_trigger("add", [{"a": i, "b": i} for i in range(3)])
    seen = await collect(trigger_do.runs.subscribe_to_batch(batch.id))
    last = {s.id: s for s in seen}
    assert set(last) == {r.id for r in batch.runs}
    assert sorted(s.output["sum"] for s in last.values()) == [0, 2, 4]
    assert all(s.batch_id == batch.id for s in seen)


async def test_subscribe_to_tag_sees_new_runs_too(mode: str) -> None:
    tag = f"sdk-{uuid.uuid4().hex[:8]}"
    first = await trigger_do.tasks.trigger("add", {"a": 1, "b": 1}, tags=[tag])
    await trigger_do.tasks.trigger("add", {"a": 9, "b": 9}, tags=["not-" + tag])
    late: list[str] = []

    def until(seen: list[RunStatus]) -> bool:
        if not late:  # the first status came: trigger another run with the tag
            late.append("pending")
            asyncio.get_running_loop().create_task(add_late())
        final = {s.id for s in seen if s.is_final}
        return len(final) == 2

    async def add_late() -> None:
        h = await trigger_do.tasks.trigger("add", {"a": 2, "b": 2}, tags=[tag])
        late[0] = h.id

    seen = await collect(trigger_do.runs.subscribe_to_tag(tag), until)
    assert {s.id for s in seen} == {first.id, late[0]}
    assert all(tag in s.tags for s in seen)


async def test_a_remote_subscription_survives_a_server_restart(tmp_path: Any) -> None:
    """The server goes away mid-subscription and comes back on the same port: the iterator
    waits for it and goes on from its offset."""
    import importlib

    from tests.http.conftest import KEY, TASKS, ServerThread, free_port
    from trigger_do.api.app import create_app
    from trigger_do.engine import Engine
    from trigger_do.platform.local.platform import EnvSettings, open_local
    from trigger_do.sdk.client import configure
    from trigger_do.task import tasks_in

    known: dict[str, Any] = {}
    for name in TASKS:
        known.update(tasks_in(importlib.import_module(name)))
    settings = EnvSettings({"TRIGGER_DO_REALTIME_HOLD": "1"})
    db, port = tmp_path / "r.db", free_port()

    def serve() -> ServerThread:
        engine = Engine(open_local(db, settings=settings)[0], find=known.get)
        thread = ServerThread(create_app(engine, KEY), port)
        thread.start()
        return thread

    loop = asyncio.get_running_loop()
    first = serve()
    configure(api_url=f"http://127.0.0.1:{port}", secret_key=KEY)
    try:
        handle = await trigger_do.tasks.trigger("http-echo", 1, delay="1h")
        it = trigger_do.runs.subscribe(handle.id)
        assert (await anext(it)).state == RunState.DELAYED
        following = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.2)
        await loop.run_in_executor(None, first.stop)  # its held request ends within 1 s
        await asyncio.sleep(0.5)  # the iterator finds nobody there, and keeps trying
        assert not following.done()
        second = await loop.run_in_executor(None, serve)
        try:
            await Engine(open_local(db)[0]).cancel(handle.id)
            status = await asyncio.wait_for(following, 30)
            assert status.state == RunState.CANCELED
        finally:
            await loop.run_in_executor(None, second.stop)
    finally:
        configure()
