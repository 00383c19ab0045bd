"""A queue in the SQLite file, with Cloudflare Queues' semantics: at-least-once batches,
visibility leases, `retry(delay)`, at most `max_retries` retries, then the dead-letter
queue (`<name>-dlq`), delayed messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import MessageTooLargeError
from ...ports import MAX_ROW_BYTES, MAX_SEND_BATCH, OutMessage
from ...shared.serialization import loads
from ...shared.sqlbulk import json_chunks
from .database import LocalSql
from .doorbell import Doorbell

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS queue_messages (
        id INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        body TEXT NOT NULL,
        visible_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        enqueued_at REAL NOT NULL,
        lease_token TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS queue_visible ON queue_messages(queue, visible_at)",
]


# a batch of messages, their bodies one JSON array (`?4`): each element stored as its JSON
# text (`json_each` gives an object's or an array's text, and the SQL value of the others)
_INSERT_BODIES = """INSERT INTO queue_messages (queue, body, visible_at, enqueued_at)
    SELECT ?1, CASE type WHEN 'object' THEN value WHEN 'array' THEN value WHEN 'true'
      THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' ELSE json_quote(value)
      END, ?2, ?3 FROM json_each(?4)"""


class LocalQueue:
    """The producer side (the `Queue` port)."""

    def __init__(
        self, sql: LocalSql, name: str, clock: Any, doorbell: Doorbell | None = None
    ) -> None:
        self.sql = sql
        self.name = name
        self.clock = clock
        self.doorbell = doorbell  # rung once messages that are visible at once are committed

    async def send_batch(self, messages: Sequence[OutMessage]) -> None:
        if len(messages) > MAX_SEND_BATCH:
            raise MessageTooLargeError(f"send_batch takes at most {MAX_SEND_BATCH} messages")
        self._insert(messages)

    async def send_all(self, messages: Sequence[OutMessage]) -> None:
        if messages:
            self._insert(messages)  # (one transaction of its own, or the caller's)

    def _insert(self, messages: Sequence[OutMessage]) -> None:
        """The messages in order, in one transaction (the caller's, if it has one): their
        bodies, by delay, as JSON arrays that SQLite splits, one serialization per array."""
        now = self.clock.now()
        by_delay: dict[float, list[Any]] = {}
        for m in messages:
            by_delay.setdefault(m.delay_seconds, []).append(m.body)

        def insert() -> None:
            for delay, bodies in by_delay.items():
                for chunk in json_chunks(bodies):  # (a body too large for one goes alone)
                    if len(chunk) > MAX_ROW_BYTES:  # as a DO row would refuse
                        raise MessageTooLargeError(f"a queue message over {MAX_ROW_BYTES} bytes")
                    self.sql.exec(_INSERT_BODIES, self.name, now + delay, now, chunk)

        self.sql.transaction(insert)
        if self.doorbell is not None and any(m.delay_seconds <= 0 for m in messages):
            self.sql.after_commit(self.doorbell.ring)


@dataclass
class LocalMessage:
    """One delivered message (the `Message` port). ack/retry are applied in bulk by
    `LocalQueueConsumer.settle`."""

    id: str
    attempts: int
    timestamp: float
    body: Any
    outcome: tuple[str, float] | None = field(default=None, repr=False)

    def ack(self) -> None:
        self.outcome = ("ack", 0.0)

    def retry(self, delay_seconds: float = 0.0) -> None:
        self.outcome = ("retry", max(0.0, float(delay_seconds)))


class LocalQueueConsumer:
    """The consumer side: receive a batch under a visibility lease, settle acks/retries."""

    def __init__(
        self,
        sql: LocalSql,
        name: str,
        clock: Any,
        *,
        token: str,
        visibility: float = 30.0,
        max_retries: int = 3,
    ) -> None:
        self.sql = sql
        self.name = name
        self.clock = clock
        self.token = token
        self.visibility = visibility
        self.max_retries = max_retries

    def has_visible(self) -> bool:
        """A cheap read (no write lock): is anything deliverable now?"""
        return bool(
            self.sql.exec(
                "SELECT 1 FROM queue_messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
                self.name,
                self.clock.now(),
            )
        )

    def receive(self, max_messages: int, settle: Sequence[LocalMessage] = ()) -> list[LocalMessage]:
        """Claim up to `max_messages` visible messages; first apply the acks and retries of
        `settle` in the same transaction (one write instead of two)."""

        def claim() -> list[tuple[Any, ...]]:
            if settle:
                self.settle(settle)
            now = self.clock.now()
            rows = self.sql.exec(
                "UPDATE queue_messages SET visible_at = ?1, attempts = attempts + 1, "
                "lease_token = ?2 WHERE id IN (SELECT id FROM queue_messages WHERE queue = ?3 "
                "AND visible_at <= ?4 ORDER BY visible_at LIMIT ?5) "
                "RETURNING id, attempts, enqueued_at, body",
                now + self.visibility,
                self.token,
                self.name,
                now,
                max_messages,
            )
            # past its last allowed delivery: to the dead-letter queue, as Cloudflare does
            dead = [r[0] for r in rows if r[1] > self.max_retries + 1]
            for chunk in json_chunks(dead):
                self.sql.exec(
                    "UPDATE queue_messages SET queue = ? || '-dlq', attempts = 0, "
                    "visible_at = ?, lease_token = NULL WHERE id IN "
                    "(SELECT value FROM json_each(?))",
                    self.name,
                    now,
                    chunk,
                )
            return [r for r in rows if r[1] <= self.max_retries + 1]

        rows = self.sql.transaction(claim)
        return [LocalMessage(str(i), a, t, loads(b)) for i, a, t, b in rows]

    def extend(self, messages: Sequence[LocalMessage]) -> None:
        """Keep in-flight messages invisible while their consumer is alive."""
        ids = [int(m.id) for m in messages if m.outcome is None]
        for chunk in json_chunks(ids):
            self.sql.exec(
                "UPDATE queue_messages SET visible_at = ? WHERE id IN "
                "(SELECT value FROM json_each(?)) AND lease_token = ?",
                self.clock.now() + self.visibility,
                chunk,
                self.token,
            )

    def settle(self, messages: Sequence[LocalMessage]) -> list[LocalMessage]:
        """Apply the acks and retries decided so far; return the messages still pending.
        A message its consumer neither acked nor retried stays leased (and is redelivered
        when the lease lapses, as at a crash)."""
        acks = [int(m.id) for m in messages if m.outcome and m.outcome[0] == "ack"]
        retries = [
            [int(m.id), m.outcome[1]] for m in messages if m.outcome and m.outcome[0] == "retry"
        ]
        if not acks and not retries:
            return list(messages)
        now = self.clock.now()

        def apply() -> None:
            for chunk in json_chunks(acks):
                self.sql.exec(
                    "DELETE FROM queue_messages WHERE id IN (SELECT value FROM json_each(?)) "
                    "AND lease_token = ?",
                    chunk,
                    self.token,
                )
            for chunk in json_chunks(retries):
                self.sql.exec(
                    "UPDATE queue_messages SET visible_at = ?1 + j.delay, lease_token = NULL "
                    "FROM (SELECT value->>0 AS id, value->>1 AS delay FROM json_each(?2)) AS j "
                    "WHERE queue_messages.id = j.id AND lease_token = ?3",
                    now,
                    chunk,
                    self.token,
                )

        self.sql.transaction(apply)
        return [m for m in messages if m.outcome is None]

    def depth(self) -> dict[str, int]:
        rows = self.sql.exec("SELECT queue, count(*) FROM queue_messages GROUP BY queue")
        return {q: n for q, n in rows}
