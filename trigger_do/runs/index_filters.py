"""The run index's filters, as SQL: what `list_runs` pages through and what a bulk action
selects, written once so that both always mean the same runs."""

from __future__ import annotations

from typing import Any

from ..shared.options import KEY_SEPARATOR
from ..shared.serialization import dumps
from .index_batches import VISIBLE

# The filters `RunIndexObject.list_runs` (and `Engine.list_runs`) take, besides paging.
RUN_FILTERS = (
    "tasks",
    "states",
    "tags",
    "batch_id",
    "bulk_action",
    "schedule_id",
    "idempotency_key",
    "created_from",
    "created_to",
)


def run_filter_sql(
    *,
    tasks: list[str] | None = None,
    states: list[str] | None = None,
    tags: list[str] | None = None,
    batch_id: str | None = None,
    bulk_action: str | None = None,
    schedule_id: str | None = None,
    idempotency_key: str | None = None,
    created_from: float | None = None,
    created_to: float | None = None,
) -> tuple[list[str], list[Any]]:
    """`(conditions, params)` on the `runs` table for these filters, to AND together; the
    runs of a batch not yet sealed are never selected (index_batches.py)."""
    where: list[str] = [VISIBLE]
    params: list[Any] = []
    if tasks:
        where.append("task IN (SELECT value FROM json_each(?))")
        params.append(dumps(tasks))
    if states:
        where.append("state IN (SELECT value FROM json_each(?))")
        params.append(dumps(states))
    if tags:
        where.append(
            "EXISTS (SELECT 1 FROM json_each(runs.tags) t WHERE t.value IN "
            "(SELECT value FROM json_each(?)))"
        )
        params.append(dumps(tags))
    if batch_id:
        where.append("batch_id = ?")
        params.append(batch_id)
    if bulk_action:  # the runs a bulk action marked (index_bulk.py)
        where.append("id IN (SELECT run_id FROM bulk_action_runs WHERE bulk_id = ?)")
        params.append(bulk_action)
    if schedule_id:  # the runs a schedule started (their options name it: schedules/)
        where.append("options->>'$.schedule.id' = ?")
        params.append(schedule_id)
    if idempotency_key:  # the caller's key: stored scoped by its task (shared/options.py)
        where.append("idempotency_key = task || ? || ?")
        params += [KEY_SEPARATOR, idempotency_key]
    if created_from is not None:
        where.append("created_at >= ?")
        params.append(created_from)
    if created_to is not None:
        where.append("created_at <= ?")
        params.append(created_to)
    return where, params
