"""Key expressions fail where they are declared or triggered; queue controls (pause,
resume, limit override) work through the engine. In-process driver, no worker processes."""

from __future__ import annotations

import pytest

import trigger_do
from tests.coordinator import coord_tasks as t
from tests.engine.driver import Driver
from trigger_do.errors import PayloadValidationError, TaskDefinitionError


@pytest.mark.parametrize(
    "key",
    [
        "payload.",
        "payload..a",
        "os.system('x')",
        "payload.a +",
        "+ payload.a",
        "payload.a b",
        "__import__",
        "payload[x]",
        "",
    ],
)
def test_malformed_key_expressions_fail_at_definition(key: str) -> None:
    with pytest.raises(TaskDefinitionError) as info:
        trigger_do.task(id="bad-key", run=lambda p: p, concurrency={"limit": 1, "key": key})
    assert "key" in str(info.value)


def test_bad_rate_limits_fail_at_definition() -> None:
    with pytest.raises(TaskDefinitionError):
        trigger_do.task(id="bad-rate", run=lambda p: p, rate_limit="lots/fortnight")
    with pytest.raises(TaskDefinitionError):
        trigger_do.task(id="bad-rate", run=lambda p: p, rate_limit={"limit": 0, "period": "1s"})


async def test_a_missing_key_path_fails_the_trigger(driver: Driver) -> None:
    with pytest.raises(PayloadValidationError) as info:
        await t.coord_org.trigger({"i": 1})
    assert "payload.org" in str(info.value)
    with pytest.raises(PayloadValidationError) as info:
        await t.coord_rate.trigger({"account": {}})
    assert "payload.account.id" in str(info.value)
    assert driver.count("runs") == 0


async def test_a_batch_with_missing_keys_is_rejected_naming_the_indexes(driver: Driver) -> None:
    items = [{"org": "a"}, {"nope": 1}, {"org": "b"}, {"org": {"nested": 1}}]
    with pytest.raises(PayloadValidationError) as info:
        await t.coord_org.batch_trigger(items)
    assert info.value.bad_indexes == [1, 3]
    assert driver.count("runs") == 0


async def test_keys_are_stored_and_a_trigger_can_override_them(driver: Driver) -> None:
    a = await t.coord_org.trigger({"org": 42, "i": 0})
    b = await t.coord_org.trigger({"org": 42, "i": 1}, concurrency_key="vip")
    got = await driver.engine.get_runs([a.id, b.id])
    assert got[a.id]["concurrency_key"] == "42" and got[b.id]["concurrency_key"] == "vip"
    assert got[a.id]["queue"] == "task/coord-org"


async def test_pause_resume_and_override_a_queue(driver: Driver) -> None:
    engine = driver.engine
    q = await engine.pause_queue("task/coord-noop")  # a queue with no declared limit
    assert q["paused"] is True
    driver.consumer.gate._controls.clear()  # the consumer's 1 s cache of controls
    h = await t.coord_noop.trigger({})
    await driver.step()
    assert (await h.status()).state == "queued"
    listed = {q["name"]: q for q in await engine.list_queues()}
    assert listed["task/coord-noop"]["paused"] and listed["task/coord-noop"]["queued"] == 1
    await engine.resume_queue("task/coord-noop")
    await driver.run_until_final([h.id])
    assert (await h.status()).state == "completed"

    q = await engine.set_queue_limit("coord-shared", 1)
    assert q["concurrency_limit"] == 1 and q["limit_override"] == 1
    runs = [await t.coord_shared_a.trigger({"sleep": 0.05}) for _ in range(3)]
    await driver.step()
    states = [(await r.status()).state for r in runs]
    assert states.count("completed") == 1
    await driver.run_until_final([r.id for r in runs])
    await driver.consumer.gate.drain()
    q = await engine.set_queue_limit("coord-shared", None)
    assert q["concurrency_limit"] == 3 and q["running"] == 0
    with pytest.raises(ValueError):
        await engine.set_queue_limit("coord-shared", 0)
