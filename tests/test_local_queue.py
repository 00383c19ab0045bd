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
