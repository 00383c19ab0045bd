"""The local queue's sends: refused whole, never in part."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_do.platform.local.platform import open_local


async def test_a_queue_message_over_a_row_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    from trigger_do.errors import MessageTooLargeError
    from trigger_do.ports import MAX_ROW_BYTES, OutMessage

    platform, sql = open_local(tmp_path / "q.db")
    with pytest.raises(MessageTooLargeError):
        await platform.queue.send_all(
            [OutMessage({"run_id": "small"}), OutMessage({"run_id": "x" * MAX_ROW_BYTES})]
        )
    assert sql.exec("SELECT count(*) FROM queue_messages") == [(0,)]


async def test_every_kind_of_body_is_delivered_as_sent_in_order(tmp_path: Path) -> None:
    """A batch's bodies travel as one JSON array that SQLite splits: objects, arrays,
    strings, numbers, booleans and null come back each as it was sent, in order, and a
    delayed one only once it is due."""
    from trigger_do.platform.local.queue import LocalQueueConsumer
    from trigger_do.ports import OutMessage

    platform, sql = open_local(tmp_path / "q.db")
    bodies = [{"run_id": "r", "n": [1, 2.5]}, [1, "two"], 'say "hi" \u00e9', 3, -2.5, 1e300,
              True, False, None, {}]  # fmt: skip
    await platform.queue.send_all(
        [OutMessage(b) for b in bodies] + [OutMessage({"later": 1}, delay_seconds=60)]
    )
    consumer = LocalQueueConsumer(sql, "runs", platform.clock, token="t")
    got = consumer.receive(100)
    assert [m.body for m in got] == bodies
    (later,) = sql.exec("SELECT body FROM queue_messages WHERE lease_token IS NULL")[0]
    assert later == '{"later":1}'
