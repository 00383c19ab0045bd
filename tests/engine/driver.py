"""A deterministic driver: the whole engine in this process over a real SQLite file, one
consumer batch at a time (no worker processes, no sleeps), with an optional fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from trigger_do.consumer.consumer import Consumer
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import RUN_QUEUE, open_local
from trigger_do.platform.local.queue import LocalMessage, LocalQueue, LocalQueueConsumer
from trigger_do.sdk.client import EmbeddedClient
from trigger_do.shared.config import EngineConfig
from trigger_do.shared.states import FINAL_STATES
from trigger_do.task import registered_tasks


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Driver:
    def __init__(
        self,
        db: Path,
        *,
        clock: FakeClock | None = None,
        max_retries: int = 3,
        **config: Any,
    ) -> None:
        platform, self.sql = open_local(db)
        if clock is not None:
            platform = dataclasses.replace(
                platform, clock=clock, queue=LocalQueue(self.sql, RUN_QUEUE, clock)
            )
        self.platform = platform
        self.clock = platform.clock
        self.config = EngineConfig.from_settings(platform.settings, **config)
        self.engine = Engine(platform, self.config)
        self.client = EmbeddedClient(self.engine)
        self.consumer = Consumer(platform, registered_tasks(), self.config)
        self.queue = LocalQueueConsumer(
            self.sql,
            RUN_QUEUE,
            self.clock,
            token=self.consumer.token,
            visibility=self.config.lease_seconds,
            max_retries=max_retries,
        )
        self.dlq = LocalQueueConsumer(
            self.sql, RUN_QUEUE + "-dlq", self.clock, token=self.consumer.token
        )

    async def step(self, max_messages: int = 100) -> list[LocalMessage]:
        """Deliver one batch of what is visible now to the consumer; settle it."""
        messages = self.queue.receive(max_messages)
        if messages:
            await self.consumer.handle_batch(messages)
            self.queue.settle(messages)
        return messages

    async def dead_letters(self) -> int:
        messages = self.dlq.receive(100)
        if messages:
            await self.consumer.handle_dead_letters(messages)
            self.dlq.settle(messages)
        return len(messages)

    async def run_until_final(self, run_ids: list[str], timeout: float = 20.0) -> None:
        """Step until every run is final. With a fake clock, jump to the next visible
        message instead of waiting; with the real one, wait a little."""
        deadline = time.monotonic() + timeout
        while True:
            states = await self.engine.get_states(run_ids)
            if all(states[r][0] in FINAL_STATES for r in run_ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs not final: {states}")
            if await self.step():
                continue
            if isinstance(self.clock, FakeClock):
                nxt = self.sql.exec(
                    "SELECT min(visible_at) FROM queue_messages WHERE queue = ?", RUN_QUEUE
                )[0][0]
                if nxt is None:
                    raise AssertionError(f"nothing queued, runs not final: {states}")
                self.clock.t = max(self.clock.t, nxt)
            else:
                await asyncio.sleep(0.01)

    def count(self, table: str, where: str = "1", *params: Any) -> int:
        return int(self.sql.exec(f"SELECT count(*) FROM {table} WHERE {where}", *params)[0][0])

    def written(self) -> dict[str, int]:
        """How many rows the producer could have written: runs, messages, batches, keys."""
        return {t: self.count(t) for t in ("runs", "queue_messages", "batches", "idempotency")}
