"""`insert_runs` sends only the fields some row of an insert has: whatever mix of fields a
call carries, every row must be stored exactly as written, the rest at the columns'
defaults, on a real SQLite file."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from trigger_do.platform.local.platform import open_local
from trigger_do.runs.index import RunIndexObject
from trigger_do.runs.index_schema import INSERT_FIELDS, insert_rows

NOW = 1_900_000_000.0
SAMPLES: dict[str, Any] = {
    "queue": "q", "concurrency_key": "org-1", "payload": '{"a": 1}', "payload_packet": "p/x",
    "tags": '["t"]', "metadata": '{"m": 1}', "options": '{"max_attempts": 2}',
    "idempotency_key": "k", "batch_id": "batch_1", "replay_of": "run_old",
    "delay_until": NOW + 60, "ttl": 30.0, "expires_at": NOW + 90,
}  # fmt: skip
COLUMNS = ("id", "task", "state", *INSERT_FIELDS, "dispatch", "created_at", "due_at")


def _row(i: int, fields: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"run_{i:04d}", "task": "t", "state": "queued"}
    for f in fields:
        row[f] = i if f == "batch_index" else SAMPLES[f]
    if "idempotency_key" in fields:
        row["idempotency_key"] = f"k{i}"
    return row


def _expected(row: dict[str, Any]) -> tuple[Any, ...]:
    defaults = {"tags": "[]", "metadata": "{}", "options": "{}"}
    values = [row.get(f, defaults.get(f)) for f in COLUMNS[:-3]]
    return (*values, 1, NOW, row.get("delay_until") or NOW)


def test_every_mix_of_fields_is_stored_as_written(tmp_path: Path) -> None:
    _, sql = open_local(tmp_path / "i.db")
    idx = RunIndexObject(sql, "shard-0")
    n = 0
    # rows of one insert carry different fields: pairs of every field with every other,
    # beside a row with none of them
    for a, b in itertools.combinations_with_replacement(INSERT_FIELDS, 2):
        fields = tuple(f for f in INSERT_FIELDS if f in (a, b))
        if "batch_index" in fields and "batch_id" not in fields:
            fields = (*fields, "batch_id")
        rows = [_row(n, fields), _row(n + 1, ())]
        n += 2
        sql.transaction(lambda rows=rows: idx.insert_runs(rows, NOW))  # type: ignore[misc]
        for row in rows:
            (stored,) = sql.exec(
                f"SELECT {', '.join(COLUMNS)} FROM runs WHERE id = ?", row["id"]
            )
            assert stored == _expected(row), (fields, row["id"])


def test_a_field_nobody_set_is_not_sent() -> None:
    statement, values = insert_rows(
        [{"id": "run_a", "task": "t", "state": "queued", "tags": "[]", "payload": "null"}]
    )
    assert values == [["run_a", "t", "queued", "null"]]
    assert "tags" not in statement and "payload" in statement
