"""Rate windows: the `limits` library's strategies on a storage written on the `Sql` port.

`limits`' bundled storages use threads and timers (they do not run on Workers) and read
`time.time()`; this one is synchronous, keeps its rows in the coordinator's database
(a Durable Object's storage, or the local SQLite file), and reads the time the caller set
(`storage.now`), so one object call makes all its decisions at one instant.
"""

from __future__ import annotations

import math
from typing import Any, cast

from limits import RateLimitItem
from limits.storage import MovingWindowSupport, SlidingWindowCounterSupport, Storage
from limits.strategies import STRATEGIES, RateLimiter

from ..ports import Sql
from .decide import WindowState

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS coord_rate_entries (
        scope TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS coord_rate_entries_key ON coord_rate_entries(scope, key, at)",
    """CREATE TABLE IF NOT EXISTS coord_rate_counters (
        scope TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
        expires_at REAL NOT NULL, PRIMARY KEY (scope, key)
    ) WITHOUT ROWID""",
]


class SqlStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """A `limits` storage on the `Sql` port, scoped to one coordinator object.

    Moving windows keep one row per acquired entry (pruned as they leave the window);
    fixed windows and sliding-window counters keep one counter row per window."""

    STORAGE_SCHEME = None

    def __init__(self, sql: Sql, scope: str, now: float = 0.0) -> None:
        super().__init__()
        self.sql = sql
        self.scope = scope
        self.now = now

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    # --- counters (fixed window) ----------------------------------------------------------

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        rows = self.sql.exec(
            """INSERT INTO coord_rate_counters (scope, key, value, expires_at)
            VALUES (?1, ?2, ?3, ?4 + ?5)
            ON CONFLICT (scope, key) DO UPDATE SET
              value = CASE WHEN expires_at <= ?4 THEN ?3 ELSE value + ?3 END,
              expires_at = CASE WHEN expires_at <= ?4 THEN ?4 + ?5 ELSE expires_at END
            RETURNING value""",
            self.scope,
            key,
            amount,
            self.now,
            expiry,
        )
        return int(rows[0][0])

    def decr(self, key: str, amount: int = 1) -> int:
        rows = self.sql.exec(
            "UPDATE coord_rate_counters SET value = max(0, value - ?) WHERE scope = ? "
            "AND key = ? AND expires_at > ? RETURNING value",
            amount,
            self.scope,
            key,
            self.now,
        )
        return int(rows[0][0]) if rows else 0

    def get(self, key: str) -> int:
        rows = self.sql.exec(
            "SELECT value FROM coord_rate_counters WHERE scope = ? AND key = ? AND expires_at > ?",
            self.scope,
            key,
            self.now,
        )
        return int(rows[0][0]) if rows else 0

    def get_expiry(self, key: str) -> float:
        rows = self.sql.exec(
            "SELECT expires_at FROM coord_rate_counters WHERE scope = ? AND key = ? "
            "AND expires_at > ?",
            self.scope,
            key,
            self.now,
        )
        return float(rows[0][0]) if rows else self.now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        n = 0
        for table in ("coord_rate_counters", "coord_rate_entries"):
            n += len(self.sql.exec(f"DELETE FROM {table} WHERE scope = ? RETURNING 1", self.scope))
        return n

    def clear(self, key: str) -> None:
        for table in ("coord_rate_counters", "coord_rate_entries"):
            self.sql.exec(f"DELETE FROM {table} WHERE scope = ? AND key = ?", self.scope, key)

    # --- moving window --------------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: float, amount: int = 1) -> bool:
        if amount > limit:
            return False
        self.sql.exec(
            "DELETE FROM coord_rate_entries WHERE scope = ? AND key = ? AND at <= ?",
            self.scope,
            key,
            self.now - expiry,
        )
        _, count = self.get_moving_window(key, limit, expiry)
        if count + amount > limit:
            return False
        self.sql.exec(
            "INSERT INTO coord_rate_entries (scope, key, at) SELECT ?, ?, ? FROM json_each(?)",
            self.scope,
            key,
            self.now,
            "[" + ",".join("0" * amount) + "]",
        )
        return True

    def get_moving_window(self, key: str, limit: int, expiry: float) -> tuple[float, int]:
        """(the oldest entry still in the window, or now; entries in the window)."""
        oldest, count = self.sql.exec(
            "SELECT min(at), count(*) FROM coord_rate_entries WHERE scope = ? AND key = ? "
            "AND at > ?",
            self.scope,
            key,
            self.now - expiry,
        )[0]
        return (float(oldest) if oldest is not None else self.now), int(count)

    # --- sliding window counter -----------------------------------------------------------

    def _window_keys(self, key: str, expiry: float) -> tuple[str, str]:
        n = math.floor(self.now / expiry)
        return f"{key}/{n - 1}", f"{key}/{n}"

    def get_sliding_window(self, key: str, expiry: float) -> tuple[int, float, int, float]:
        prev_key, cur_key = self._window_keys(key, expiry)
        prev, cur = self.get(prev_key), self.get(cur_key)
        elapsed = (self.now / expiry) % 1
        prev_ttl = (1 - elapsed) * expiry if prev else 0.0
        cur_ttl = (1 - elapsed) * expiry + expiry
        return prev, prev_ttl, cur, cur_ttl

    def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: float, amount: int = 1
    ) -> bool:
        if amount > limit:
            return False
        prev, prev_ttl, cur, _ = self.get_sliding_window(key, expiry)
        if math.floor(prev * prev_ttl / expiry + cur) + amount > limit:
            return False
        self.incr(self._window_keys(key, expiry)[1], 2 * expiry, amount)
        return True

    def clear_sliding_window(self, key: str, expiry: float) -> None:
        for k in self._window_keys(key, expiry):
            self.clear(k)


class _Item:
    """`limit` per `period` seconds, as the strategies see a `RateLimitItem` (any float
    period: `limits`' own items count whole seconds). Not a subclass: `limits` registers
    every `RateLimitItem` subclass as a granularity for its string parser."""

    def __init__(self, amount: int, period: float) -> None:
        self.amount = amount
        self.period = float(period)

    def get_expiry(self) -> Any:
        return self.period

    def key_for(self, *identifiers: str | int | float | bytes) -> str:
        return "/".join(["rate", *map(str, identifiers), str(self.amount), repr(self.period)])


class Window:
    """One rate limit (a spec `{"limit", "period", "strategy"}`) over a `SqlStorage`."""

    def __init__(self, storage: SqlStorage, spec: dict[str, Any]) -> None:
        self.storage = storage
        self.item = _Item(int(spec["limit"]), float(spec["period"]))
        self._as_item = cast(RateLimitItem, self.item)
        self.strategy = spec.get("strategy") or "moving-window"
        self.limiter: RateLimiter = STRATEGIES[self.strategy](storage)

    def state(self, rate_id: str) -> WindowState:
        """The window for `rate_id` now, as the decisions read it (`WindowState.room`
        after k more hits is what this window's strategy would allow)."""
        key = self.item.key_for(rate_id)
        if self.strategy == "sliding-window-counter":
            prev, ttl, cur, _ = self.storage.get_sliding_window(key, self.item.period)
            return WindowState(self.item.amount, cur, prev * ttl / self.item.period)
        if self.strategy == "moving-window":
            _, count = self.storage.get_moving_window(key, self.item.amount, self.item.period)
            return WindowState(self.item.amount, count)
        return WindowState(self.item.amount, self.storage.get(key))  # fixed window

    def room(self, rate_id: str) -> int:
        """How many more starts the window allows now."""
        return self.state(rate_id).room()

    def hit(self, rate_id: str, times: int = 1) -> bool:
        """Count `times` starts now, if the window has room for them all."""
        if self.strategy == "sliding-window-counter":  # one at a time: its float arithmetic
            return all(self.limiter.hit(self._as_item, rate_id) for _ in range(times))
        return bool(self.limiter.hit(self._as_item, rate_id, cost=times))

    def opens_at(self, rate_id: str) -> float:
        """When the window next has room (an estimate for the sliding counter)."""
        now = self.storage.now
        if self.strategy == "moving-window":
            return float(self.limiter.get_window_stats(self._as_item, rate_id).reset_time) + 1e-3
        if self.strategy == "fixed-window":
            return max(now, self.storage.get_expiry(self.item.key_for(rate_id))) + 1e-3
        return now + self.item.period / self.item.amount
