"""What Realtime watchers read of the run index (`realtime/watcher.py`): a run's version
columns only, never its payload or output, to tell cheaply whether anything a subscriber
sees has changed; the whole rows are read only for the feeds that did."""

from __future__ import annotations

from typing import Any

from ..ports import reads
from ..shared.sqlbulk import json_chunks
from .index_filters import run_filter_sql
from .index_schema import IndexBase

# what `realtime.rows.version` reads (error: whether there is one), and the creation time
# that orders a feed
VERSION_COLUMNS = (
    "id, updated_at, state, attempt, progress, metadata, tags, finished_at, started_at, "
    "delay_until, output_packet, error IS NOT NULL, created_at"
)


class RealtimeReads(IndexBase):
    @reads
    def run_versions(self, run_ids: list[str]) -> list[list[Any]]:
        """The version columns (`VERSION_COLUMNS`) of these runs; unknown ids are absent."""
        out: list[list[Any]] = []
        for chunk in json_chunks(run_ids):
            out += [
                list(r)
                for r in self.sql.exec(
                    f"SELECT {VERSION_COLUMNS} FROM runs "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    chunk,
                )
            ]
        return out

    @reads
    def feed_versions(
        self,
        *,
        tags: list[str] | None = None,
        batch_id: str | None = None,
        created_from: float | None = None,
        limit: int = 1000,
    ) -> list[list[Any]]:
        """The version columns of the runs `list_runs` would list for these filters, newest
        first, at most `limit`."""
        where, params = run_filter_sql(tags=tags, batch_id=batch_id, created_from=created_from)
        return [
            list(r)
            for r in self.sql.exec(
                f"SELECT {VERSION_COLUMNS} FROM runs WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                *params,
                limit,
            )
        ]
