"""Waiting for an event (`Engine.tokens.wait_for_event`), in the engine on a fake clock and a
real SQLite file: the token the first matching event completes (dotted paths over the
event), the lookback that closes the race between send and wait, the timeout, one event for
many waits and each wait once, and housekeeping's recheck of a send that never reached its
waits. A run waits for an event as it waits for a token: these tokens are what it waits on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.engine.driver import Driver, FakeClock
from trigger_do.errors import InvalidWaitTokenError
from trigger_do.shared.serialization import loads
from trigger_do.waitpoints import TokenCompletion

T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def driver(fake_driver: Driver, clock: FakeClock) -> Driver:
    clock.t = T0
    return fake_driver


async def _status(d: Driver, token_id: str) -> str:
    return str((await d.engine.tokens.get(token_id))["status"])


async def test_the_first_matching_event_completes_the_wait(
    driver: Driver, clock: FakeClock
) -> None:
    engine = driver.engine
    told: list[TokenCompletion] = []

    async def hook(done: list[TokenCompletion]) -> None:
        told.extend(done)

    engine.tokens.hooks.append(hook)
    token = await engine.tokens.wait_for_event(
        "invoice.paid", match={"payload.account": "a1", "payload.meta.kind": "card"}
    )
    await engine.tokens.wait_on(token["id"], "run_w:1")
    clock.t += 1
    await engine.events.send("invoice.paid", {"account": "a2", "meta": {"kind": "card"}})
    await engine.events.send("invoice.sent", {"account": "a1", "meta": {"kind": "card"}})
    await engine.events.send("invoice.paid", {"account": "a1", "meta": {"kind": "wire"}})
    assert await _status(driver, token["id"]) == "WAITING"
    clock.t += 1
    sent = await engine.events.send(
        "invoice.paid", {"account": "a1", "meta": {"kind": "card"}}, id="inv-9"
    )
    got = await engine.tokens.get(token["id"])
    assert got["status"] == "COMPLETED"
    assert loads(got["output"]) == {
        "id": sent["id"],
        "name": "invoice.paid",
        "payload": {"account": "a1", "meta": {"kind": "card"}},
        "timestamp": "2026-05-04T08:00:02.000Z",
    }
    assert [(c.waitpoint, c.value()["id"]) for c in told] == [("run_w:1", "inv-9")]
    await engine.events.send("invoice.paid", {"account": "a1", "meta": {"kind": "card"}})
    assert loads((await engine.tokens.get(token["id"]))["output"])["id"] == "inv-9"  # once
    assert len(told) == 1


async def test_match_by_id_and_no_match_at_all(driver: Driver) -> None:
    engine = driver.engine
    by_id = await engine.tokens.wait_for_event("order.shipped", match={"id": "order-7"})
    anything = await engine.tokens.wait_for_event("order.shipped")
    await engine.events.send("order.shipped", {"n": 1}, id="order-6")
    assert await _status(driver, by_id["id"]) == "WAITING"
    assert loads((await engine.tokens.get(anything["id"]))["output"])["id"] == "order-6"
    await engine.events.send("order.shipped", {"n": 2}, id="order-7")
    assert loads((await engine.tokens.get(by_id["id"]))["output"])["payload"] == {"n": 2}


async def test_lookback_closes_the_race(driver: Driver, clock: FakeClock) -> None:
    engine = driver.engine
    await engine.events.send("user.verified", {"user": "u1"}, id="early")
    clock.t += 180
    await engine.events.send("user.verified", {"user": "u2"}, id="recent")
    clock.t += 60
    # sent 4 minutes ago: inside a 5 minute lookback; the 1 minute ago one too (first wins)
    five = await engine.tokens.wait_for_event(
        "user.verified", match={"payload.user": "u1"}, lookback="5m"
    )
    assert five["status"] == "COMPLETED" and loads(five["output"])["id"] == "early"
    two = await engine.tokens.wait_for_event(
        "user.verified", match={"payload.user": "u1"}, lookback="2m"
    )
    assert two["status"] == "WAITING"  # too far back
    none = await engine.tokens.wait_for_event("user.verified", match={"payload.user": "u2"})
    assert none["status"] == "WAITING"  # no lookback: only events from now on


async def test_one_event_many_waits_and_timeouts(driver: Driver, clock: FakeClock) -> None:
    engine = driver.engine
    waits = [
        await engine.tokens.wait_for_event("deploy.done", match={"payload.env": "prod"})
        for _ in range(3)
    ]
    late = await engine.tokens.wait_for_event(
        "deploy.done", match={"payload.env": "prod"}, timeout="10m"
    )
    clock.t += 600
    await engine.fire_due_timers()
    assert await _status(driver, late["id"]) == "TIMED_OUT"
    await engine.events.send("deploy.done", {"env": "prod"}, id="d1")
    await engine.events.send("deploy.done", {"env": "prod"}, id="d2")
    for w in waits:
        assert loads((await engine.tokens.get(w["id"]))["output"])["id"] == "d1"
    assert await _status(driver, late["id"]) == "TIMED_OUT"  # the event came too late
    # a wait that timed out with no event at all: housekeeping drops it
    lonely = await engine.tokens.wait_for_event("never.sent", timeout="1m")
    clock.t += 120
    await engine.fire_due_timers()
    assert await _status(driver, lonely["id"]) == "TIMED_OUT"
    assert (await engine.housekeeping())["event_waits_rechecked"] == 1
    assert (await engine.housekeeping())["event_waits_rechecked"] == 0


async def test_a_send_that_never_reached_its_waits(driver: Driver, clock: FakeClock) -> None:
    engine = driver.engine
    token = await engine.tokens.wait_for_event("payment.settled", match={"payload.id": 5})
    hooks = list(engine.events.on_sent)
    engine.events.on_sent.clear()  # the sender died after its fan-out
    await engine.events.send("payment.settled", {"id": 5}, id="p5")
    engine.events.on_sent.extend(hooks)
    assert await _status(driver, token["id"]) == "WAITING"
    totals = await engine.housekeeping()
    assert totals["event_waits_rechecked"] == 1
    assert loads((await engine.tokens.get(token["id"]))["output"])["id"] == "p5"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"name": ""}, "event name"),
        ({"name": "x", "match": {"account": 1}}, "dotted path"),
        ({"name": "x", "match": ["payload.a"]}, "match"),
        ({"name": "x", "lookback": "yesterday"}, "lookback"),
        ({"name": "x", "timeout": "never"}, "timeout"),
    ],
)
async def test_bad_waits_name_the_field(
    driver: Driver, kwargs: dict[str, object], words: str
) -> None:
    name = kwargs.pop("name")
    with pytest.raises(InvalidWaitTokenError, match=words):
        await driver.engine.tokens.wait_for_event(name, **kwargs)  # type: ignore[arg-type]
    assert await driver.engine.tokens.list() == []
