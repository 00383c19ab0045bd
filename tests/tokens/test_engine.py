"""Wait tokens in the engine, on a fake clock (`fake_driver`: the engine in this process on
a real SQLite file; `Engine.fire_due_timers` is what the runtime's supervisor calls): the
store, idempotency keys and their TTL, timeouts through the Timers port, filters and pages,
and the completion hook that tells each waiter once, by every road."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.engine.driver import Driver, FakeClock
from trigger_do.errors import InvalidWaitTokenError, PayloadTooLargeError, WaitTokenNotFoundError
from trigger_do.shared.serialization import loads
from trigger_do.waitpoints import TokenCompletion, callback_hash
from trigger_do.waitpoints.service import MAX_OUTPUT
from trigger_do.waitpoints.store import TokenStoreObject

T0 = datetime(2026, 5, 4, 8, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def driver(fake_driver: Driver, clock: FakeClock) -> Driver:
    clock.t = T0
    return fake_driver


class Told:
    """A completion hook that records what it was told."""

    def __init__(self) -> None:
        self.calls: list[list[TokenCompletion]] = []

    async def __call__(self, done: list[TokenCompletion]) -> None:
        self.calls.append(done)

    @property
    def flat(self) -> list[TokenCompletion]:
        return [c for call in self.calls for c in call]


async def test_create_complete_retrieve(driver: Driver) -> None:
    tokens = driver.engine.tokens
    token, cached = await tokens.create(tags=["approval", "doc:1"])
    assert token["id"].startswith("waitpoint_") and not cached
    assert token["status"] == "WAITING" and token["tags"] == ["approval", "doc:1"]
    assert token["created_at"] == T0 and token["timeout_at"] is None
    done = await tokens.complete(token["id"], {"approved": True})
    assert done["status"] == "COMPLETED" and loads(done["output"]) == {"approved": True}
    assert done["completed_at"] == T0 and not done["output_is_error"]
    # again: success, nothing changes
    again = await tokens.complete(token["id"], {"approved": False})
    assert loads(again["output"]) == {"approved": True}
    with pytest.raises(WaitTokenNotFoundError):
        await tokens.get("waitpoint_nope")
    with pytest.raises(WaitTokenNotFoundError):
        await tokens.complete("waitpoint_nope", 1)


async def test_idempotency_key_before_and_after_completion(
    driver: Driver, clock: FakeClock
) -> None:
    tokens = driver.engine.tokens
    first, cached = await tokens.create(idempotency_key="approve-doc-1", idempotency_key_ttl="1h")
    assert not cached and first["idempotency_key_expires_at"] == T0 + 3600
    same, cached = await tokens.create(idempotency_key="approve-doc-1")
    assert cached and same["id"] == first["id"]
    await tokens.complete(first["id"], "yes")
    after, cached = await tokens.create(idempotency_key="approve-doc-1")
    assert cached and after["id"] == first["id"] and after["status"] == "COMPLETED"
    clock.t += 3601  # the key expired: a new token
    fresh, cached = await tokens.create(idempotency_key="approve-doc-1")
    assert not cached and fresh["id"] != first["id"] and fresh["status"] == "WAITING"
    listed = await tokens.list(idempotency_key="approve-doc-1")
    assert [t["id"] for t in listed] == [fresh["id"], first["id"]]


async def test_timeout_through_the_timers_port(driver: Driver, clock: FakeClock) -> None:
    tokens = driver.engine.tokens
    told = Told()
    tokens.hooks.append(told)
    token, _ = await tokens.create(timeout="10m")
    other, _ = await tokens.create(timeout="1h")
    assert token["timeout_at"] == T0 + 600
    assert await tokens.wait_on(token["id"], "run_a:1") is None
    assert await driver.engine.fire_due_timers() == 0
    clock.t = T0 + 600
    assert await driver.engine.fire_due_timers() == 1
    got = await tokens.get(token["id"])
    assert got["status"] == "TIMED_OUT" and got["output_is_error"]
    assert loads(got["output"]) == {
        "code": "TRIGGER_WAITPOINT_TIMEOUT",
        "message": "Waitpoint timed out at 2026-05-04T08:10:00.000Z",
    }
    assert [(c.waitpoint, c.ok) for c in told.flat] == [("run_a:1", False)]
    assert (await tokens.get(other["id"]))["status"] == "WAITING"
    # a completion before the timeout cancels its timer
    await tokens.complete(other["id"], 1)
    clock.t = T0 + 7200
    assert await driver.engine.fire_due_timers() == 0
    assert (await tokens.get(other["id"]))["status"] == "COMPLETED"


async def test_hook_tells_each_waiter_once(driver: Driver) -> None:
    tokens = driver.engine.tokens
    told = Told()
    tokens.hooks.append(told)
    token, _ = await tokens.create()
    assert await tokens.wait_on(token["id"], "run_a:1") is None
    assert await tokens.wait_on(token["id"], "run_a:1") is None  # again: still one waiter
    assert await tokens.wait_on(token["id"], "run_b:2") is None
    await tokens.complete(token["id"], {"n": 1})
    assert sorted((c.waitpoint, c.ok, c.value()) for c in told.flat) == [
        ("run_a:1", True, {"n": 1}),
        ("run_b:2", True, {"n": 1}),
    ]
    await tokens.complete(token["id"], {"n": 2})  # completed again: nobody is told twice
    assert len(told.flat) == 2
    # waiting on a completed token: its completion at once, nothing recorded
    late = await tokens.wait_on(token["id"], "run_c:1")
    assert late is not None and late.ok and late.value() == {"n": 1}
    assert len(told.flat) == 2
    with pytest.raises(WaitTokenNotFoundError):
        await tokens.wait_on("waitpoint_nope", "run_d:1")


async def test_a_delivery_cut_short_is_made_again(driver: Driver, clock: FakeClock) -> None:
    tokens = driver.engine.tokens
    token, _ = await tokens.create()
    await tokens.wait_on(token["id"], "run_a:1")

    async def dies(done: list[TokenCompletion]) -> None:
        raise RuntimeError("the process died here")

    tokens.hooks.append(dies)
    with pytest.raises(RuntimeError):
        await tokens.complete(token["id"], "ok")
    tokens.hooks.clear()
    told = Told()
    tokens.hooks.append(told)
    clock.t += 120
    assert await tokens.redeliver() == 1
    assert [(c.waitpoint, c.value()) for c in told.flat] == [("run_a:1", "ok")]
    assert await tokens.redeliver() == 0  # told: forgotten


async def test_housekeeping_redelivers(driver: Driver, clock: FakeClock) -> None:
    tokens = driver.engine.tokens
    token, _ = await tokens.create()
    await tokens.wait_on(token["id"], "run_h:1")
    told = Told()
    tokens.hooks.append(told)

    async def dies(done: list[TokenCompletion]) -> None:
        raise RuntimeError("the process died here")

    tokens.hooks.append(dies)
    with pytest.raises(RuntimeError):
        await tokens.complete(token["id"], 7)  # told, but not forgotten
    tokens.hooks.remove(dies)
    told.calls.clear()
    assert (await driver.engine.housekeeping())["tokens_redelivered"] == 0  # not stale yet
    clock.t += 61
    assert (await driver.engine.housekeeping())["tokens_redelivered"] == 1
    assert [(c.waitpoint, c.value()) for c in told.flat] == [("run_h:1", 7)]


async def test_list_filters_and_pages(driver: Driver, clock: FakeClock) -> None:
    tokens = driver.engine.tokens
    made = []
    for n in range(7):
        clock.t = T0 + n
        tok, _ = await tokens.create(tags=["even" if n % 2 == 0 else "odd", f"n:{n}"])
        made.append(tok["id"])
    await tokens.complete(made[0], 0)
    newest = made[::-1]
    assert [t["id"] for t in await tokens.list(limit=3)] == newest[:3]
    page2 = await tokens.list(limit=3, after=[T0 + 4, made[4]])
    assert [t["id"] for t in page2] == newest[3:6]
    back = await tokens.list(limit=2, before=[T0 + 3, made[3]])
    assert [t["id"] for t in back] == newest[1:3]
    assert [t["id"] for t in await tokens.list(statuses=["COMPLETED"])] == [made[0]]
    assert len(await tokens.list(statuses=["waiting"])) == 6
    assert [t["id"] for t in await tokens.list(tags=["odd"])] == [made[5], made[3], made[1]]
    assert [t["id"] for t in await tokens.list(tags=["n:2", "n:4"])] == [made[4], made[2]]
    ranged = await tokens.list(created_from=T0 + 2, created_to=T0 + 3)
    assert [t["id"] for t in ranged] == [made[3], made[2]]
    with pytest.raises(InvalidWaitTokenError, match="status"):
        await tokens.list(statuses=["DONE"])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": "11000d"}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"idempotency_key": ""}, "idempotencyKey"),
        ({"idempotency_key": "k" * 2049}, "idempotencyKey"),
        ({"idempotency_key": "k", "idempotency_key_ttl": "forever"}, "idempotencyKeyTTL"),
        ({"tags": [f"t{n}" for n in range(11)]}, "at most 10 tags"),
        ({"tags": ["x" * 129]}, "tag"),
        ({"tags": [1]}, "tags"),
    ],
)
async def test_bad_requests_name_the_field(
    driver: Driver, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(InvalidWaitTokenError, match=words):
        await driver.engine.tokens.create(**kwargs)  # type: ignore[arg-type]
    assert await driver.engine.tokens.list() == []  # nothing written


async def test_dates_and_output_bounds(driver: Driver) -> None:
    tokens = driver.engine.tokens
    token, _ = await tokens.create(timeout="2026-05-04T09:00:00Z")
    assert token["timeout_at"] == T0 + 3600
    with pytest.raises(PayloadTooLargeError):
        await tokens.complete(token["id"], "x" * MAX_OUTPUT)
    assert (await tokens.get(token["id"]))["status"] == "WAITING"


def test_callback_url_is_signed_per_token(driver: Driver) -> None:
    tokens = driver.engine.tokens
    url = tokens.url("waitpoint_abc", "http://h:1/", "tr_dev_key")
    assert url == (
        "http://h:1/api/v1/waitpoints/tokens/waitpoint_abc/callback/"
        + callback_hash("tr_dev_key", "waitpoint_abc")
    )
    assert callback_hash("tr_dev_key", "waitpoint_abc") != callback_hash("other", "waitpoint_abc")
    assert len(callback_hash("k", "t")) == 64


def test_store_kind_is_served_locally() -> None:
    from trigger_do.platform.local.platform import OBJECT_CLASSES

    assert OBJECT_CLASSES[TokenStoreObject.KIND] is TokenStoreObject
