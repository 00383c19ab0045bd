"""Re-dispatched messages keep their queue and keys; housekeeping leaves the runs a
coordinator holds alone; a release grants parked runs to the releasing consumer directly,
and a grant whose consumer dies, or a hand-back whose message is lost, comes back.

In one process on a real database with a fake clock (the consumer is driven by hand),
and the coordinator object alone for the recovery paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.coordinator.test_coordinator_object import T0, Coord, handed
from trigger_do.consumer.consumer import Consumer
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import RUN_QUEUE, open_local
from trigger_do.platform.local.queue import LocalQueueConsumer
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.shared.serialization import dumps
from trigger_do.shared.specs import queue
from trigger_do.task import Task

GATE: dict[str, asyncio.Event] = {}


async def _blocked(payload: Any) -> Any:
    """Holds its slot until the test lets it go."""
    await GATE.setdefault("open", asyncio.Event()).wait()
    return payload


SHARED = queue("rd-shared", concurrency_limit=1)
FREE = Task(id="rd-free", run=_blocked)  # no limits of its own
HOLDER = Task(id="rd-holder", run=_blocked, queue=SHARED)  # declares the shared queue
ONE = Task(id="rd-one", run=_blocked, concurrency={"limit": 1})
RATED = Task(
    id="rd-rated", run=_blocked, rate_limit={"limit": 5, "period": "1s", "key": "payload.a"}
)
TASKS = {t.id: t for t in (FREE, HOLDER, ONE, RATED)}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


class Env:
    def __init__(self, tmp_path: Path) -> None:
        platform, sql = open_local(tmp_path / "rd.db")
        self.clock = FakeClock()
        platform.clock = self.clock
        platform.queue.clock = self.clock  # type: ignore[attr-defined]
        self.sql = sql
        self.config = EngineConfig(stale_after=60, lease_seconds=300)
        self.engine = Engine(platform, self.config, find=TASKS.get)
        self.consumer = Consumer(platform, TASKS, self.config)
        self.queue = LocalQueueConsumer(
            sql, RUN_QUEUE, self.clock, token=self.consumer.token, visibility=600
        )

    def started(self) -> int:
        return int(self.sql.exec("SELECT count(*) FROM runs WHERE started_at IS NOT NULL")[0][0])

    async def settled(self, check: Any, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.01)


@pytest.fixture
def env(tmp_path: Path) -> Any:
    GATE["open"] = asyncio.Event()
    return Env(tmp_path)


async def test_a_rescheduled_run_keeps_its_queue_and_respects_its_limit(env: Env) -> None:
    runs = [
        await env.engine.trigger(
            TriggerRequest("rd-free", i, {"queue": "rd-shared", "delay": "1h"})
        )
        for i in range(2)
    ]
    env.queue.sql.exec("DELETE FROM queue_messages")  # the delayed messages: not needed
    for r in runs:
        assert await env.engine.reschedule(r.id, env.clock.now())
    batch = env.queue.receive(10)
    assert sorted(m.body["q"] for m in batch) == ["rd-shared", "rd-shared"]
    work = asyncio.ensure_future(env.consumer.handle_batch(batch))
    await env.settled(lambda: env.started() == 1)
    await asyncio.sleep(0.1)
    assert env.started() == 1  # the shared queue's limit of 1 holds for re-dispatched runs
    GATE["open"].set()
    await work
    await env.settled(lambda: env.started() == 2)  # the parked one was granted on release
    await env.consumer.shutdown(1.0)


async def test_requeued_and_overdue_runs_keep_their_keys(env: Env) -> None:
    rated = await env.engine.trigger(TriggerRequest("rd-rated", {"a": "acct-1"}))
    keyed = await env.engine.trigger(
        TriggerRequest("rd-free", 1, {"queue": "rd-shared", "concurrency_key": "k-1"})
    )
    env.queue.sql.exec("DELETE FROM queue_messages")
    env.sql.exec("UPDATE runs SET state = 'crashed' WHERE id = ?", keyed.id)
    assert await env.engine.requeue_dead([keyed.id]) == [keyed.id]
    env.clock.t += 61
    assert (await env.engine.housekeeping())["redispatched"] == 2  # nobody holds them
    bodies = {m.body["run_id"]: m.body for m in env.queue.receive(10)}
    assert bodies[keyed.id]["q"] == "rd-shared" and bodies[keyed.id]["k"] == "k-1"
    assert bodies[rated.id]["q"] == "task/rd-rated" and bodies[rated.id]["rk"] == "acct-1"


async def test_housekeeping_leaves_parked_runs_to_their_coordinator(env: Env) -> None:
    first = await env.engine.trigger(TriggerRequest("rd-one", 1))
    second = await env.engine.trigger(TriggerRequest("rd-one", 2))
    work = asyncio.ensure_future(env.consumer.handle_batch(env.queue.receive(10)))
    await env.settled(lambda: env.started() == 1)
    stats = await env.engine.get_queue("task/rd-one")
    assert stats["parked"] == 1
    env.clock.t += 61  # the parked run is queued and overdue, but its coordinator holds it
    assert (await env.engine.housekeeping())["redispatched"] == 0
    assert env.queue.receive(10) == []
    GATE["open"].set()
    await work
    await env.settled(lambda: env.started() == 2)  # handed to this consumer on release
    for r in (first, second):
        assert (await env.engine.get_run(r.id))["state"] in ("running", "completed")
    await env.consumer.shutdown(1.0)
    assert env.sql.exec("SELECT count(*) FROM coord_slots")[0][0] == 0
    assert env.sql.exec("SELECT count(*) FROM coord_parked")[0][0] == 0


async def test_the_outcome_write_hands_the_slot_to_the_parked_run_and_starts_it(
    env: Env,
) -> None:
    """Limit 1: the second run is parked. The first run's outcome write frees its slot,
    grants it to the parked run and starts that run, in one transaction: the parked run
    never goes back through the queue."""
    first = await env.engine.trigger(TriggerRequest("rd-one", 1))
    second = await env.engine.trigger(TriggerRequest("rd-one", 2))
    work = asyncio.ensure_future(env.consumer.handle_batch(env.queue.receive(10)))
    await env.settled(lambda: env.started() == 1)
    assert (await env.engine.get_queue("task/rd-one"))["parked"] == 1
    writes = env.sql.writes
    GATE["open"].set()
    await work
    await env.settled(lambda: env.started() == 2)
    await env.consumer.shutdown(1.0)
    for r in (first, second):
        assert (await env.engine.get_run(r.id))["state"] == "completed"
    assert env.queue.receive(10) == []  # nothing went back through the queue
    assert env.sql.exec("SELECT count(*) FROM coord_slots")[0][0] == 0
    assert env.sql.exec("SELECT count(*) FROM coord_parked")[0][0] == 0
    # first's outcome + second's grant and start: 1; second's outcome: 1; acks: 1
    assert env.sql.writes - writes <= 3


# --- the coordinator object alone -------------------------------------------------------


@pytest.fixture
def coord(tmp_path: Path) -> Coord:
    return Coord(tmp_path / "c.db")


def test_a_release_grants_parked_runs_to_the_caller(coord: Coord) -> None:
    coord.acquire(["a", "b", "c", "d"], T0)  # limit 2: c and d parked
    res = coord("release", ["a"], T0 + 1, 1, 10.0)
    assert [b["run_id"] for b in res["direct"]] == ["c"] and res["handback"] == []
    assert "h" not in res["direct"][0]
    assert res["at"] == T0 + 1
    # the granted run holds its slot: a duplicate delivery is granted, no second slot
    assert coord.acquire(["c"], T0 + 2)["granted"] == ["c"]
    assert coord.count("coord_slots") == 2
    # taking fewer than are handed back: the rest go through the queue
    res = coord("release", ["b", "c"], T0 + 3, 0, 10.0)
    assert res["direct"] == [] and handed(res) == ["d"]
    coord.acquire(["d"], T0 + 4)
    coord("release", ["d"], T0 + 5)
    assert coord.count("coord_slots") == 0 and coord.count("coord_parked") == 0


def test_a_direct_grant_whose_consumer_dies_is_handed_back(coord: Coord) -> None:
    coord.acquire(["a", "b", "c"], T0)  # c parked
    assert [b["run_id"] for b in coord("release", ["a"], T0 + 1, 5, 10.0)["direct"]] == ["c"]
    # c's consumer dies: nobody renews its slot; once the lease lapses c is handed back
    res = coord("wake", T0 + 12)
    assert handed(res) == ["c"]
    assert coord.acquire(["c"], T0 + 13)["granted"] == ["c"]
    coord("release", ["b", "c"], T0 + 14)
    assert coord.count("coord_slots") == 0 and coord.count("coord_parked") == 0


def test_a_lost_hand_back_is_recovered_when_housekeeping_asks(coord: Coord) -> None:
    coord.acquire(["a", "b", "c"], T0)
    assert handed(coord("release", ["a"], T0 + 1)) == ["c"]  # ... and that message is lost
    res = coord("holding", ["c", "zz"], T0 + 5)
    assert res["held"] == ["c"] and res["handback"] == []  # reserved for it, still held
    res = coord("holding", ["c"], T0 + 12)  # the reservation lapsed: handed back again
    assert res["held"] == ["c"] and handed(res) == ["c"]


def test_a_long_backlog_is_handed_back_in_order_across_many_keys(coord: Coord) -> None:
    spec = {"key_limit": 40}
    for key in ("k1", "k2", "k3"):
        coord.acquire([f"{key}-{i:03}" for i in range(100)], T0, key=key, spec=spec)
    held = [f"{k}-{i:03}" for k in ("k1", "k2", "k3") for i in range(40)]
    out: list[str] = []
    for step in range(8):
        res = coord("release", held[:30], T0 + 1 + step, 10, 10.0)
        held = held[30:]
        got = [b["run_id"] for b in res["direct"]] + handed(res)
        coord.acquire(handed(res), T0 + 1 + step, key="?", spec=spec)
        held += got
        out += got
    for key in ("k1", "k2", "k3"):  # FIFO within each key, nobody twice, nobody skipped
        mine = [r for r in out if r.startswith(key)]
        assert mine == [f"{key}-{i:03}" for i in range(40, 40 + len(mine))]
    assert len(out) == len(set(out)) == 180
    counts = [sum(1 for r in out if r.startswith(k)) for k in ("k1", "k2", "k3")]
    assert max(counts) - min(counts) <= 1  # round-robin across the keys


def test_a_run_parked_again_keeps_its_place_with_the_newer_dispatch(coord: Coord) -> None:
    """A stale message of a run (redelivered after its consumer died) was parked, then its
    retry's message is parked too: the run's row keeps its place but takes the newer body,
    since a stale message granted later would be skipped and leave the run with none."""

    def acquire(body: dict[str, Any]) -> dict[str, Any]:
        request = {"id": "c", "task": "t", "key": "", "rate_key": None, "body": body}
        return coord("acquire", [request], {"tasks": {"t": {"key_limit": 2}}}, T0, 10.0)  # type: ignore[no-any-return]

    coord.acquire(["a", "b"], T0)  # limit 2: full
    assert acquire({"run_id": "c", "d": 2})["parked"] == ["c"]
    acquire({"run_id": "c", "d": 1})  # an older message after it: ignored
    assert acquire({"run_id": "c", "d": 3})["parked"] == ["c"]
    res = coord("release", ["a"], T0 + 1, 1, 10.0)
    assert [(b["run_id"], b["d"]) for b in res["direct"]] == [("c", 3)]


async def test_a_stale_and_a_current_message_in_one_batch_start_the_run(env: Env) -> None:
    """Two messages of one run in one batch (its first, redelivered after its consumer
    died, and its retry's): the one of the run's current dispatch is the one kept."""
    run = (await env.engine.trigger(TriggerRequest(FREE.id, 1))).id
    env.sql.exec("UPDATE runs SET dispatch = 2, state = 'waiting_for_retry' WHERE id = ?", run)
    env.sql.exec("DELETE FROM queue_messages")
    for d in (1, 2):  # the stale one first
        body = {"v": 1, "run_id": run, "task": FREE.id, "attempt": d, "d": d}
        env.sql.exec(
            "INSERT INTO queue_messages (queue, body, visible_at, enqueued_at) "
            "VALUES (?, ?, 0, 0)", RUN_QUEUE, dumps(body),
        )  # fmt: skip
    GATE["open"].set()
    await env.consumer.handle_batch(env.queue.receive(10))
    assert env.sql.exec("SELECT state FROM runs WHERE id = ?", run) == [("completed",)]
