"""Waits and child runs through the Cloudflare adapters, on the bindings' fakes: a wait is
timed by its run-index shard's alarm, which resumes the run and sends its message; children
resume their parent across shards."""

from __future__ import annotations

import math

import pytest
from cf_fakes import make_cloud
from cf_scenario import EXPECTED_WAITS, run_waits

from trigger_do.producer.producer import TriggerRequest
from trigger_do.shared.ids import shard_of


@pytest.mark.parametrize("shards", [1, 16])
async def test_waits_and_children_on_cloudflare(shards: int) -> None:
    cloud = make_cloud(shards=shards)
    ns = cloud.namespaces["RUN_INDEX"]
    got = await run_waits(cloud.engine(), cloud.drain, ns.fire_alarms, cloud.clock.advance)
    assert got == EXPECTED_WAITS


async def test_a_waiting_run_arms_only_its_own_shards_alarm() -> None:
    cloud = make_cloud(shards=4)
    engine = cloud.engine()
    run = await engine.trigger(TriggerRequest("cf-wait-parent", {}))
    await cloud.drain()
    ns = cloud.namespaces["RUN_INDEX"]
    shard = ns.idFromName(f"shard-{shard_of(run.id, 4)}")
    armed = [i for i, s in ns.storages.items() if s.alarm_ms is not None]
    assert armed == [shard]
    due = ns.storages[shard].alarm_ms
    started = (await engine.get_run(run.id))["started_at"]
    assert due == math.ceil((started + 3600) * 1000) or abs(due / 1000 - started - 3600) < 1
    assert cloud.queues.queues["trigger-do-runs"].messages == []  # nothing held meanwhile
