"""What a batch of runs costs the database, counted (never timed): write transactions per
batch of 100 noop runs in a worker's steady state, from the claim to the settled acks."""

from __future__ import annotations

from pathlib import Path

from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.worker import Worker
from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.config import EngineConfig
from trigger_do.task import Task

BATCHES, SIZE = 10, 100
# write transactions per batch of 100: the claim, the previous batch's acks and the starts
# are one (`Platform.unit`); the outcomes another
BUDGET = 2.5


async def _noop(payload: object) -> None:
    return None


NOOP = Task(id="budget-noop", run=_noop)


async def test_a_batch_of_100_noop_runs_costs_a_fixed_number_of_writes(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    platform, sql = open_local(db)
    engine = Engine(platform)
    made = await engine.batch_trigger([TriggerRequest(NOOP.id, i) for i in range(BATCHES * SIZE)])
    worker = Worker(str(db), EngineConfig(), batch_size=SIZE)
    worker.consumer.tasks[NOOP.id] = NOOP
    wsql = worker.sql
    start = wsql.writes
    for _ in range(BATCHES):
        messages, launch = await worker._receive(SIZE)
        assert len(messages) == SIZE and launch is not None
        await worker._batch(messages, launch)
    worker._settle_all()
    spent = (wsql.writes - start) / BATCHES
    states = await engine.get_states([r.id for r in made.runs])
    assert {s[0] for s in states.values()} == {"completed"}
    (left,) = sql.exec("SELECT count(*) FROM queue_messages")[0]
    assert left == 0  # every message settled
    assert spent <= BUDGET, f"{spent:.1f} write transactions per batch of {SIZE}"
    print(f"write transactions per batch of {SIZE}: {spent:.2f}")
