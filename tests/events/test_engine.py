"""Events in the engine, on a fake clock (`fake_driver`: the engine in this process on a real
SQLite file, one batch at a time): fan-out to every subscriber, the `user.*` family, id
deduplication for 24 hours, a subscriber whose schema refuses the payload (a run created
directly in FAILED, the others still run), the store's lookup by name and time, replay,
retention, a fan-out its sender left half done, and every bad input (nothing written)."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import pytest

import trigger_do
from tests.engine.driver import Driver, FakeClock
from tests.events import tasks_events as t
from trigger_do import RunState, events
from trigger_do.errors import (
    EventNotFoundError,
    InvalidEventError,
    InvariantError,
    PayloadTooLargeError,
    PayloadValidationError,
    TaskDefinitionError,
)
from trigger_do.events.service import run_key
from trigger_do.events.store import EventStoreObject
from trigger_do.runs.index import RunIndexObject
from trigger_do.shared.states import CREATED_IN, TRANSITIONS
from trigger_do.shared.subscriptions import matches

T0 = 1_800_000_000.0


@pytest.fixture
def driver(fake_driver: Driver, clock: FakeClock) -> Driver:
    clock.t = T0
    return fake_driver


async def drain(d: Driver) -> None:
    while await d.step():
        pass


async def states(d: Driver, run_ids: list[str]) -> dict[str, str]:
    rows = await d.engine.get_runs(run_ids)
    return {rows[r]["task"]: rows[r]["state"] for r in run_ids}


def table(d: Driver, sql: str) -> list[Any]:
    conn = sqlite3.connect(f"file:{d.sql.path}?mode=ro", uri=True)  # type: ignore[attr-defined]
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_an_event_runs_every_subscriber_once(driver: Driver) -> None:
    sent = await events.send("user.created", {"user_id": "u1"}, id="evt-123")
    assert sent.id == "evt-123" and not sent.cached and len(sent.runs) == 2
    assert await states(driver, sent.runs) == {"ev-audit": "queued", "ev-welcome": "queued"}
    await drain(driver)
    rows = await driver.engine.get_runs(sent.runs)
    by_task = {r["task"]: r for r in rows.values()}
    assert by_task["ev-welcome"]["output"] == "welcome u1"
    assert by_task["ev-audit"]["output"] == {"audited": {"user_id": "u1"}}
    assert by_task["ev-welcome"]["options"]["event"] == {"id": "evt-123", "name": "user.created"}
    status = await driver.client.get_run(sent.runs[0])
    assert status["options"]["event"]["id"] == "evt-123"
    handle_status = await trigger_do.tasks.handle(sent.runs[0]).status()
    assert handle_status.event == {"id": "evt-123", "name": "user.created"}
    assert sorted(name for name, _ in t.SEEN) == ["ev-audit", "ev-welcome"]
    assert isinstance(dict(t.SEEN)["ev-welcome"], t.UserCreated)  # the annotation's model


async def test_a_family_pattern_takes_every_name_under_it(driver: Driver) -> None:
    sent = await events.send("user.deleted", {"user_id": "u2"})
    assert sent.id.startswith("evt_")
    assert list((await states(driver, sent.runs)).keys()) == ["ev-audit"]
    none = await events.send("account.created", {})
    assert none.runs == []  # stored all the same, with no run
    assert (await events.retrieve(none.id)).runs == []
    assert matches("user.*", "user.created") and matches("user.*", "user.a.b")
    assert not matches("user.*", "user") and not matches("user.*", "users.created")
    assert matches("*", "anything") and not matches("user.created", "user.created.x")


async def test_the_same_id_within_24_hours_starts_nothing(driver: Driver, clock: FakeClock) -> None:
    first = await events.send("user.created", {"user_id": "u1"}, id="evt-dup")
    clock.advance(23 * 3600)
    again = await events.send("user.created", {"user_id": "other"}, id="evt-dup")
    assert again.cached and again.runs == first.runs and again.id == "evt-dup"
    assert len(table(driver, "SELECT * FROM runs")) == 2
    clock.advance(3600 + 1)  # the window has passed: a new event, new runs
    later = await events.send("user.created", {"user_id": "u1"}, id="evt-dup")
    assert not later.cached and set(later.runs).isdisjoint(first.runs)
    assert len(table(driver, "SELECT * FROM runs")) == 4


async def test_a_subscriber_whose_schema_refuses_gets_a_failed_run(driver: Driver) -> None:
    sent = await events.send("order.placed", {"order_id": "o1", "amount": "lots"})
    got = await states(driver, sent.runs)
    assert got == {"ev-order-log": "queued", "ev-order-mail": "failed"}
    rows = {r["task"]: r for r in (await driver.engine.get_runs(sent.runs)).values()}
    failed = rows["ev-order-mail"]
    assert failed["error"]["name"] == "PayloadValidationError"
    assert "amount" in failed["error"]["message"]
    assert failed["error"]["errors"][0]["loc"] == "amount"
    assert failed["finished_at"] == T0 and failed["attempt"] == 0
    assert failed["payload"] == {"order_id": "o1", "amount": "lots"}  # kept, as sent
    await drain(driver)
    assert [name for name, _ in t.SEEN] == ["ev-order-log"]  # the refused one never ran
    assert (await states(driver, sent.runs))["ev-order-log"] == "completed"
    # the same id again: no second FAILED run either
    again = await events.send("order.placed", {"order_id": "o1", "amount": "lots"}, id=sent.id)
    assert again.runs == sent.runs and len(table(driver, "SELECT * FROM runs")) == 2
    handle = driver.client
    assert (await handle.get_run(rows["ev-order-mail"]["id"]))["state"] == "failed"


def test_creation_in_failed_is_a_path_of_the_state_table(driver: Driver) -> None:
    """FAILED is entered from nothing (`CREATED_IN`), not through QUEUED: a run made that
    way was never queued, and no write can take it anywhere (FAILED is final)."""
    assert CREATED_IN == {RunState.QUEUED, RunState.DELAYED, RunState.FAILED}
    assert RunState.FAILED not in TRANSITIONS[RunState.QUEUED]  # not QUEUED -> FAILED
    assert all(s.is_final or s in (RunState.QUEUED, RunState.DELAYED) for s in CREATED_IN)
    index = RunIndexObject(driver.sql, "0")
    row = {"id": "run_created_failed", "task": "ev-order-mail", "payload": "{}"}
    with pytest.raises(InvariantError):
        index.insert_failed([{**row, "state": "queued", "error": {}}], T0)
    driver.sql.transaction(
        lambda: index.insert_failed([{**row, "state": "failed", "error": {"name": "X"}}], T0)
    )
    assert index.start_many([["run_created_failed", 1]], "token", T0, 30.0) is not None
    assert index.get("run_created_failed")["state"] == "failed"  # type: ignore[index]
    assert index.cancel("run_created_failed", T0)["canceled"] is False


async def test_bad_events_are_refused_and_write_nothing(driver: Driver) -> None:
    before = table(driver, "SELECT count(*) FROM events")
    with pytest.raises(InvalidEventError, match="event name"):
        await events.send("user created", {})
    with pytest.raises(InvalidEventError, match="event name"):
        await events.send("user.*", {})
    with pytest.raises(InvalidEventError, match="event id"):
        await events.send("user.created", {}, id="")
    with pytest.raises(InvalidEventError, match="event id"):
        await events.send("user.created", {}, id="x" * 300)
    with pytest.raises(PayloadValidationError):
        await events.send("user.created", {"n": float("nan")})
    with pytest.raises(PayloadValidationError):
        await events.send("user.created", {"n": object()})
    driver.engine.events.config = driver.config.__class__(payload_limit=100)
    with pytest.raises(PayloadTooLargeError):
        await events.send("user.created", {"user_id": "x" * 200})
    assert table(driver, "SELECT count(*) FROM events") == before == [(0,)]
    assert table(driver, "SELECT count(*) FROM runs") == [(0,)]
    with pytest.raises(EventNotFoundError):
        await events.replay("evt-nope")


def test_a_bad_subscription_fails_where_the_task_is_declared() -> None:
    from trigger_do import task

    def fn(p: Any) -> None: ...

    for bad, match in (
        ({"event": "user created"}, "event="),
        ({"event": "us*er"}, "event="),
        ({"event": ""}, "event="),
        ({"source": "GitHub"}, "source="),
        ({"secret": "s"}, "needs source"),
        ({"source": "github", "secret": ""}, "secret="),
    ):
        with pytest.raises(TaskDefinitionError, match=match):
            task(id="ev-bad", run=fn, **bad)


async def test_lookup_by_name_and_time_and_pages(driver: Driver, clock: FakeClock) -> None:
    sent = []
    for i in range(5):
        sent.append(await events.send("user.created", {"user_id": f"u{i}"}, id=f"e{i}"))
        clock.advance(10)
    await events.send("user.deleted", {"user_id": "u9"})
    found = await driver.engine.events.lookup("user.created", T0 + 10, T0 + 30)
    assert [e["id"] for e in found] == ["e1", "e2", "e3"]
    assert found[0]["payload"] == {"user_id": "u1"}
    page = await events.list(name="user.created", limit=2)
    assert [e.id for e in page] == ["e4", "e3"] and page.next_cursor
    rest = await events.list(name="user.created", limit=2, cursor=page.next_cursor)
    assert [e.id for e in rest] == ["e2", "e1"]
    last = await events.list(name="user.created", limit=2, cursor=rest.next_cursor)
    assert [e.id for e in last] == ["e0"] and last.next_cursor is None
    assert len(await events.list()) == 6


async def test_replay_starts_new_runs(driver: Driver) -> None:
    first = await events.send("user.created", {"user_id": "u1"}, id="evt-r")
    again = await events.replay("evt-r")
    assert set(again.runs).isdisjoint(first.runs) and len(again.runs) == 2
    replayed = await events.retrieve(again.id)
    assert replayed.replay_of == "evt-r" and replayed.payload == {"user_id": "u1"}
    await drain(driver)
    assert len(t.SEEN) == 4


async def test_a_fan_out_its_sender_left_is_finished_once(driver: Driver, clock: FakeClock) -> None:
    """The sender died between claiming the event and recording its runs (some made): a
    resend, or housekeeping, finishes it, and the runs already made are not made again."""
    store = driver.engine.events.store
    event = {
        "uid": "evt_left",
        "id": "evt-left",
        "name": "user.created",
        "payload": '{"user_id":"u"}',
    }
    await store(EventStoreObject.claim, event, T0)
    made = await driver.engine.trigger(
        __import__("trigger_do.producer.producer", fromlist=["x"]).TriggerRequest(
            "ev-welcome", {"user_id": "u"}, {"idempotency_key": run_key("evt_left")}
        )
    )
    clock.advance(120)
    totals = await driver.engine.housekeeping()
    assert totals["events_finished"] == 1
    got = await events.retrieve("evt-left")
    assert got.status == "delivered" and made.id in got.runs and len(got.runs) == 2
    again = await events.send("user.created", {"user_id": "u"}, id="evt-left")
    assert again.cached and again.runs == got.runs
    assert len(table(driver, "SELECT * FROM runs")) == 2


async def test_events_are_kept_as_long_as_runs(driver: Driver, clock: FakeClock) -> None:
    service = driver.engine.events
    service.config = dataclasses.replace(service.config, packet_threshold=64 * 1024)
    big = {"user_id": "u", "pad": "x" * (100 * 1024)}  # over the packet threshold
    sent = await events.send("user.created", big, id="evt-big")
    assert (await events.retrieve("evt-big")).payload == big
    packets = list((driver.sql.path.parent / "packets").rglob("*.json"))  # type: ignore[attr-defined]
    assert any("events" in str(p) for p in packets)
    clock.advance(driver.config.retention + 1)
    totals = await driver.engine.housekeeping()
    assert totals["events_purged"] == 1
    with pytest.raises(EventNotFoundError):
        await events.retrieve("evt-big")
    left = list((driver.sql.path.parent / "packets").rglob("events/*"))  # type: ignore[attr-defined]
    assert left == [] and sent.runs


async def test_tasks_only_the_workers_registered_are_subscribers(driver: Driver) -> None:
    """A sender that does not import a task finds it in the registry (its workers put it
    there, without the secret); its run gets the payload as sent."""
    entry = {"id": "ev-remote", "module": "elsewhere", "queue": "task/ev-remote"}
    registered = [
        {**entry, "options": {"event": "user.*"}},
        {**entry, "id": "ev-remote-hook", "options": {"source": "github"}},
        {**entry, "id": "ev-plain", "options": {}},
    ]
    await driver.engine.registry.register(registered, T0)
    sent = await events.send("user.created", {"user_id": "u1"})
    tasks_of = await states(driver, sent.runs)
    assert tasks_of == {"ev-audit": "queued", "ev-remote": "queued", "ev-welcome": "queued"}
    row = next(
        r for r in (await driver.engine.get_runs(sent.runs)).values() if r["task"] == "ev-remote"
    )
    assert row["payload"] == {"user_id": "u1"}
    subs = await driver.engine.registry.subscriptions()
    assert [s["id"] for s in subs] == ["ev-remote", "ev-remote-hook"]


def test_the_registry_never_holds_a_secret() -> None:
    from trigger_do.shared.subscriptions import Subscription, registry_options

    assert registry_options(Subscription("push", "github", "s3cret")) == {
        "event": "push",
        "source": "github",
    }
    assert registry_options(None) == {}


async def test_a_subscriber_whose_run_cannot_be_made_harms_no_other(driver: Driver) -> None:
    """Its schema's defaults make its payload too large: its run is created FAILED, saying
    so, and the other subscriber's run is made (the producer validates all, then writes)."""
    small = dataclasses.replace(driver.config, payload_limit=2048)
    driver.engine.producer.config = small
    driver.engine.events.config = small
    sent = await events.send("bloat.happened", {"note": "hi"})
    rows = {r["task"]: r for r in (await driver.engine.get_runs(sent.runs)).values()}
    assert {t: r["state"] for t, r in rows.items()} == {
        "ev-bloat": "failed",
        "ev-bloat-log": "queued",
    }
    assert rows["ev-bloat"]["error"]["name"] == "PayloadTooLargeError"
    assert (await events.retrieve(sent.id)).status == "delivered"


def test_the_events_load_scenario_runs() -> None:
    """`python -m load events` end to end, tiny (real worker process, real SQLite): every
    event makes its two runs (asserted inside), and the report has both sides."""
    from load.cli import main

    assert main(["events", "--count", "20", "--rounds", "1"]) == 0


def test_send_sync_for_code_outside_an_event_loop(driver: Driver) -> None:
    sent = events.send_sync("user.created", {"user_id": "s1"}, id="evt-sync")
    assert sent.id == "evt-sync" and len(sent.runs) == 2
    assert events.send_sync("user.created", {}, id="evt-sync").cached
