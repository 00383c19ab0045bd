"""The Python SDK, the same tests in both modes: embedded (straight into the database) and
remote (`configure(api_url=..., secret_key=...)`, every call over HTTP to the server)."""

from __future__ import annotations

import pytest

import trigger_do
from examples.tasks import add, send_email, validate_order
from tests.http.conftest import Server
from trigger_do import (
    BatchItem,
    PayloadTooLargeError,
    PayloadValidationError,
    RunFailedError,
    RunNotFoundError,
    RunState,
    UnknownTaskError,
)
from trigger_do.errors import AuthenticationError
from trigger_do.sdk.client import configure, current_client
from trigger_do.sdk.remote import RemoteClient

pytestmark = pytest.mark.timeout(120)


async def test_trigger_result_status(mode: str) -> None:
    handle = await add.trigger({"a": 2, "b": 3}, tags=["sdk"])
    assert await handle.result(timeout=30) == {"sum": 5}
    status = await handle.status()
    assert status.state == RunState.COMPLETED and status.api_status == "COMPLETED"
    assert status.task_id == "add" and status.tags == ["sdk"] and status.attempt == 1
    assert status.output == {"sum": 5} and status.is_final
    assert status.finished_at is not None and status.started_at is not None
    assert isinstance(current_client(), RemoteClient) == (mode == "remote")


async def test_trigger_by_id_with_idempotency_key(mode: str) -> None:
    first = await trigger_do.tasks.trigger("add", {"a": 1, "b": 1}, idempotency_key=f"k-{mode}")
    again = await trigger_do.tasks.trigger("add", {"a": 9, "b": 9}, idempotency_key=f"k-{mode}")
    assert again.id == first.id and again.is_cached and not first.is_cached
    assert await again.result(timeout=30) == {"sum": 2}
    assert (await again.status()).idempotency_key == f"k-{mode}"


async def test_batch_trigger_results_in_order(mode: str) -> None:
    batch = await add.batch_trigger(
        [{"a": i, "b": i} for i in range(5)] + [BatchItem({"a": 100, "b": 1}, tags=["x"])]
    )
    assert len(batch) == 6
    assert await batch.results(timeout=30) == [{"sum": 2 * i} for i in range(5)] + [{"sum": 101}]
    assert (await batch.runs[5].status()).tags == ["x"]
    assert (await batch.runs[0].status()).batch_id == batch.id


async def test_a_large_batch_streams_and_keeps_its_order(mode: str) -> None:
    """Over HTTP a batch past `STREAM_AT` items goes as v4's two-phase NDJSON stream."""
    from trigger_do.sdk.remote import STREAM_AT

    n = STREAM_AT * 2 + 7
    batch = await add.batch_trigger(
        [{"a": i, "b": 0} for i in range(n)], idempotency_key=f"big-{mode}"
    )
    assert len(batch) == n and not batch.is_cached
    assert await batch.results(timeout=60) == [{"sum": i} for i in range(n)]
    again = await add.batch_trigger(
        [{"a": i, "b": 0} for i in range(n)], idempotency_key=f"big-{mode}"
    )
    assert again.is_cached and [r.id for r in again.runs] == [r.id for r in batch.runs]


async def test_batch_idempotency_key(mode: str) -> None:
    a = await add.batch_trigger([{"a": 1, "b": 2}], idempotency_key=f"b-{mode}")
    b = await add.batch_trigger([{"a": 1, "b": 2}], idempotency_key=f"b-{mode}")
    assert b.id == a.id and b.is_cached and [r.id for r in b.runs] == [r.id for r in a.runs]


async def test_logs_of_a_finished_run(mode: str) -> None:
    handle = await send_email.trigger({"to": "a@example.com", "subject": "hi", "body": "."})
    await handle.result(timeout=30)
    records = [r async for r in handle.logs()]
    assert [r.message for r in records] == ["sending email"]
    assert records[0].level == "info" and records[0].extras == {"to": "a@example.com"}


async def test_logs_follow_a_live_run(mode: str) -> None:
    handle = await trigger_do.tasks.trigger("http-ticks", {"count": 4, "interval": 0.05})
    messages = [r.message async for r in handle.logs()]
    assert messages == [f"tick {i}" for i in range(4)]
    assert (await handle.status()).state == RunState.COMPLETED


async def test_cancel(mode: str) -> None:
    handle = await add.trigger({"a": 1, "b": 2}, delay="1h")
    assert (await handle.status()).state == RunState.DELAYED
    assert await handle.cancel() is True
    assert (await handle.status()).state == RunState.CANCELED
    assert await handle.cancel() is False  # already final
    with pytest.raises(RunFailedError) as info:
        await handle.result(timeout=10)
    assert info.value.state == "canceled"


async def test_failed_run_raises_run_failed(mode: str) -> None:
    handle = await validate_order.trigger({"items": []})
    with pytest.raises(RunFailedError, match="an order needs items") as info:
        await handle.result(timeout=30)
    assert info.value.error["name"] == "AbortTaskRunError"


async def test_unknown_task(mode: str) -> None:
    with pytest.raises(UnknownTaskError, match="no-such-task") as info:
        await trigger_do.tasks.trigger("no-such-task", {})
    assert info.value.task_id == "no-such-task"


async def test_schema_failure_names_the_field(mode: str) -> None:
    with pytest.raises(PayloadValidationError, match="subject") as info:
        await send_email.trigger({"to": "a@example.com", "body": "."})
    assert [e["loc"] for e in info.value.errors] == ["subject"]


async def test_batch_schema_failure_names_the_index(mode: str) -> None:
    items = [{"to": "a@x", "subject": "s", "body": "b"}, {"to": "b@x"}]
    with pytest.raises(PayloadValidationError) as info:
        await send_email.batch_trigger(items)
    assert info.value.bad_indexes == [1]


async def test_bad_option(mode: str) -> None:
    with pytest.raises(PayloadValidationError, match="max_attempts"):
        await add.trigger({"a": 1, "b": 2}, max_attempts=0)


async def test_oversized_payload(mode: str, server: Server) -> None:
    before = len(await server.runtime.engine.list_runs(limit=1000, tasks=["http-echo"]))
    with pytest.raises(PayloadTooLargeError) as info:
        await trigger_do.tasks.trigger("http-echo", {"blob": "x" * (300 * 1024)})
    assert info.value.limit == 256 * 1024 and info.value.size > info.value.limit
    after = len(await server.runtime.engine.list_runs(limit=1000, tasks=["http-echo"]))
    assert after == before  # nothing written


async def test_unknown_run(mode: str) -> None:
    handle = trigger_do.tasks.handle("run_doesnotexist")
    with pytest.raises(RunNotFoundError):
        await handle.status()
    with pytest.raises(RunNotFoundError):
        await handle.cancel()


async def test_wrong_key_is_refused(server: Server) -> None:
    configure(api_url=server.url, secret_key="tr_dev_wrong")
    try:
        with pytest.raises(AuthenticationError) as info:
            await add.trigger({"a": 1, "b": 2})
        assert info.value.status == 401
    finally:
        configure()


async def test_env_vars_select_remote_mode(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", server.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", server.key)
    assert isinstance(current_client(), RemoteClient)
    assert await add.trigger_and_wait({"a": 20, "b": 22}, timeout=30) == {"sum": 42}
