"""Where SDK calls go on Workers, where one isolate serves many requests at once: the client
of a request's scope, kept by the tasks it starts (a streaming response outlives its
handler), and never seen by a concurrent request."""

from __future__ import annotations

import asyncio
from typing import Any

from trigger_do.sdk.client import client_scope, current_client


class Marker:
    def __init__(self, name: str) -> None:
        self.name = name


async def test_a_task_started_in_the_scope_keeps_its_client_after_the_scope_ends() -> None:
    released = asyncio.Event()

    async def streaming_body() -> Any:  # runs on after the handler returned
        await released.wait()
        return current_client()

    first = Marker("request")
    with client_scope(first):  # type: ignore[arg-type]
        body = asyncio.ensure_future(streaming_body())
    released.set()
    assert await body is first


async def test_concurrent_requests_each_see_their_own_client() -> None:
    gate = asyncio.Event()

    async def handler(name: str) -> str:
        with client_scope(Marker(name)):  # type: ignore[arg-type]
            await gate.wait()  # both requests are inside their scopes now
            return current_client().name  # type: ignore[attr-defined,no-any-return]

    both = asyncio.gather(handler("a"), handler("b"))
    await asyncio.sleep(0)
    gate.set()
    assert await both == ["a", "b"]
