"""Runs waiting on tokens and events (the durable waits of issue 18 plus the token hook), in
the engine on a fake clock and a real SQLite file: `ctx.wait_token` + `token.wait()`
suspends the run (WAITING, no delivery, no slot) until the token completes by the API, its
callback's same call, or its timeout; the replay returns the `WaitResult` at once; a token
complete before the wait goes on without suspending; `ctx.wait_for_event` with match,
lookback and timeout; 1,000 runs on 1,000 tokens completed in one burst all resume once."""

from __future__ import annotations

import pytest

from tests.engine.driver import Driver, FakeClock
from tests.tokens import tasks_tokens as t
from tests.waits.drive import settle, state
from trigger_do import RunState
from trigger_do.platform.local.platform import RUN_QUEUE


@pytest.fixture(autouse=True)
def _clear() -> None:
    t.CALLS.clear()
    t.TOKENS.clear()


async def test_a_run_waits_on_a_token_and_resumes_with_its_output(fake_driver: Driver) -> None:
    d = fake_driver
    handle = await t.approve.trigger({})
    await settle(d)
    assert state(d, handle.id) == "waiting"
    assert d.count("queue_messages", "queue = ?", RUN_QUEUE) == 0  # holds nothing
    token = t.TOKENS[handle.id]
    assert (await d.engine.tokens.get(token))["status"] == "WAITING"
    await d.engine.tokens.complete(token, {"approved": True})
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.COMPLETED, status
    assert status.output["ok"] is True and status.output["output"] == {"approved": True}
    assert status.output["token"] == token  # the replay found the token it made
    assert t.CALLS["started"] == 2 and t.CALLS["resumed"] == 1
    await d.engine.tokens.complete(token, "again")  # nothing more happens
    await settle(d)
    assert t.CALLS["resumed"] == 1


async def test_a_timeout_resumes_with_ok_false(fake_driver: Driver, clock: FakeClock) -> None:
    d = fake_driver
    handle = await t.approve.trigger({"timeout": "10m"})
    await settle(d)
    assert state(d, handle.id) == "waiting"
    clock.advance(600)
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.COMPLETED, status
    assert status.output["ok"] is False and status.output["output"] is None
    assert status.output["error"]["code"] == "TRIGGER_WAITPOINT_TIMEOUT"


async def test_a_token_completed_before_the_wait(fake_driver: Driver) -> None:
    """The same idempotency key, completed already: the run goes on without suspending."""
    d = fake_driver
    token, _ = await d.engine.tokens.create(idempotency_key="approve-doc-1")
    await d.engine.tokens.complete(token["id"], "yes")
    handle = await t.approve.trigger({"key": "approve-doc-1"})
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.COMPLETED and status.output["output"] == "yes"
    assert t.CALLS["started"] == 1  # never suspended, never replayed


async def test_two_tokens_in_order(fake_driver: Driver) -> None:
    d = fake_driver
    handle = await t.two.trigger({})
    await settle(d)
    first = t.TOKENS[handle.id + ":1"]
    await d.engine.tokens.complete(first, "a")
    await settle(d)
    assert state(d, handle.id) == "waiting"
    second = t.TOKENS[handle.id + ":2"]
    assert second != first
    await d.engine.tokens.complete(second, "b")
    await settle(d)
    status = await handle.status()
    assert status.state == RunState.COMPLETED and status.output == ["a", "b"]
    assert t.TOKENS[handle.id + ":1"] == first  # each replay made the same first token


async def test_wait_for_event_with_match_lookback_and_timeout(
    fake_driver: Driver, clock: FakeClock
) -> None:
    d = fake_driver
    # sent 3 minutes before the wait: inside its 5 minute lookback
    await d.engine.events.send("invoice.paid", {"account": "early"}, id="inv-0")
    clock.advance(180)
    early = await t.paid.trigger({"account": "early", "lookback": "5m"})
    waiting = await t.paid.trigger({"account": "a1"})
    never = await t.paid.trigger({"account": "nobody"})
    await settle(d)
    assert (await early.status()).output["output"]["id"] == "inv-0"
    assert state(d, waiting.id) == "waiting" and state(d, never.id) == "waiting"
    await d.engine.events.send("invoice.paid", {"account": "a2"})
    await settle(d)
    assert state(d, waiting.id) == "waiting"
    await d.engine.events.send("invoice.paid", {"account": "a1", "total": 9}, id="inv-1")
    await settle(d)
    got = (await waiting.status()).output
    assert got["ok"] and got["output"]["payload"] == {"account": "a1", "total": 9}
    clock.advance(7 * 86400)
    await settle(d)
    timed_out = (await never.status()).output
    assert timed_out["ok"] is False and timed_out["error"]["code"] == "TRIGGER_WAITPOINT_TIMEOUT"


async def test_a_thousand_runs_on_a_thousand_tokens_resume_once(fake_driver: Driver) -> None:
    d = fake_driver
    batch = await t.approve.batch_trigger([{} for _ in range(1000)])
    await settle(d)
    ids = [r.id for r in batch.runs]
    assert d.count("runs", "state = 'waiting'") == 1000 and len(t.TOKENS) == 1000
    for run_id in ids:  # one burst: every token completed before any run moves
        await d.engine.tokens.complete(t.TOKENS[run_id], {"run": run_id})
    await settle(d)
    states = await d.engine.get_states(ids)
    assert {s for s, _ in states.values()} == {"completed"}
    assert t.CALLS["resumed"] == 1000 and t.CALLS["started"] == 2000
    outputs = await d.engine.get_runs(ids)
    assert all(outputs[r]["output"]["output"] == {"run": r} for r in ids)
