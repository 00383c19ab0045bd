"""Micro-benchmarks of the hot paths (pytest-benchmark), out of the CI test run:

    python -m pytest load/bench -p no:cacheprovider --benchmark-only

Each benchmark measures one step of a run's life on the local platform, on batches of 100
(the queue's and the consumer's batch size): serialization, enqueue, claim-and-start,
completion write. Coordinator acquire/release: see test_coordinator.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from trigger_do.engine import Engine
from trigger_do.platform.local.platform import RUN_QUEUE
from trigger_do.platform.local.queue import LocalQueueConsumer
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.shared.messages import RunMessage
from trigger_do.shared.serialization import dumps, loads

BATCH = 100
PAYLOAD = {
    "organization_id": "org-17",
    "user": {"id": 42, "email": "a@example.com"},
    "items": list(range(20)),
    "note": "x" * 200,
}


class Pipeline:
    """One engine on the local platform, driven a step at a time on its own event loop."""

    def __init__(self, platform: Any, sql: Any) -> None:
        self.platform = platform
        self.engine = Engine(platform, EngineConfig())
        self.loop = asyncio.new_event_loop()
        self.queue = LocalQueueConsumer(sql, RUN_QUEUE, platform.clock, token="bench")
        self.index = platform.objects("run-index").get("shard-0")

    def trigger(self, requests: list[TriggerRequest]) -> None:
        self.loop.run_until_complete(self.engine.batch_trigger(requests))

    def claim_and_start(self) -> tuple[list[Any], list[list[Any]], list[dict[str, Any]]]:
        """Receive a batch of messages and start their runs: (messages, claims, decisions)."""
        messages = self.queue.receive(BATCH)
        claims = [[m.body["run_id"], m.body.get("d", 1)] for m in messages]
        decisions = self.loop.run_until_complete(
            self.index.call("start_many", claims, "bench", self.platform.clock.now(), 30.0)
        )
        return messages, claims, decisions


@pytest.fixture
def pipeline(local: tuple[Any, Any]) -> Iterator[Pipeline]:
    p = Pipeline(*local)
    yield p
    p.loop.close()


@pytest.fixture(autouse=True)
def _tasks() -> None:
    import load.tasks  # noqa: F401  (registers the load-* tasks)


# --- serialization ------------------------------------------------------------------------


def test_serialize_message_body(benchmark: Any) -> None:
    body = RunMessage("run_0123456789abcdef", "load-noop", 1, payload=dumps(PAYLOAD)).to_body()
    benchmark(lambda: loads(dumps(body)))


def test_parse_message_batch(benchmark: Any) -> None:
    bodies = [RunMessage(f"run_{i:016x}", "load-noop", 1).to_body() for i in range(BATCH)]
    benchmark(lambda: [RunMessage.from_body(b) for b in bodies])


# --- enqueue: one batch_trigger of 100 (validate, insert rows, send messages) -------------


def test_enqueue_batch_of_100(benchmark: Any, pipeline: Pipeline) -> None:
    requests = [TriggerRequest("load-noop", PAYLOAD)] * BATCH
    benchmark(lambda: pipeline.trigger(requests))


# --- claim-and-start: receive 100 messages, start their runs in the index -----------------


def test_claim_and_start_batch_of_100(benchmark: Any, pipeline: Pipeline) -> None:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        pipeline.trigger([TriggerRequest("load-noop", None)] * BATCH)
        return (), {}

    def claim_and_start() -> None:
        _, _, decisions = pipeline.claim_and_start()
        assert len(decisions) == BATCH and decisions[0]["decision"] == "start"

    benchmark.pedantic(claim_and_start, setup=setup, rounds=50, iterations=1)


# --- completion write: 100 outcomes in one finish_many, then the acks --------------------


def test_completion_write_batch_of_100(benchmark: Any, pipeline: Pipeline) -> None:
    state: dict[str, Any] = {}

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        pipeline.trigger([TriggerRequest("load-noop", None)] * BATCH)
        messages, claims, _ = pipeline.claim_and_start()
        state["messages"] = messages
        state["outcomes"] = [
            {"id": c[0], "attempt": 1, "state": "completed", "output": "null", "progress": 1.0}
            for c in claims
        ]
        return (), {}

    def complete() -> None:
        res = pipeline.loop.run_until_complete(
            pipeline.index.call(
                "finish_many", state["outcomes"], "bench", pipeline.platform.clock.now()
            )
        )
        assert len(res["applied"]) == BATCH
        for m in state["messages"]:
            m.ack()
        pipeline.queue.settle(state["messages"])

    benchmark.pedantic(complete, setup=setup, rounds=50, iterations=1)
