# ruff: noqa: E402  (imports are grouped with the check of each dependency)
"""Smoke test of the Pyodide runtime and trigger.do's third-party deps.

Run with: node tests/pyodide/run.mjs tests/pyodide/smoke.py
"""

import asyncio
import sys
import time
from datetime import UTC, datetime

assert sys.platform == "emscripten", sys.platform
assert sys.version_info >= (3, 14), sys.version

# pydantic (+ pydantic-core's Pyodide wheel)
import pydantic
from pydantic import BaseModel, ValidationError


class Job(BaseModel):
    name: str
    attempts: int = 0


assert Job.model_validate({"name": "send-email", "attempts": "3"}).attempts == 3
try:
    Job.model_validate({"attempts": "x"})
except ValidationError as e:
    assert e.error_count() == 2
else:
    raise AssertionError("pydantic accepted an invalid payload")

# croniter (+ python-dateutil)
from croniter import croniter

start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
nxt = croniter("0 3 * * *", start).get_next(datetime)
assert nxt == datetime(2025, 1, 2, 3, 0, tzinfo=UTC), nxt

# zoneinfo with the tzdata wheel
from zoneinfo import ZoneInfo

paris = datetime(2025, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
assert paris.utcoffset().total_seconds() == 2 * 3600

# limits (+ deprecated, pure-python wrapt, packaging)
import limits
import limits.strategies
from limits.storage import MovingWindowSupport, Storage

rate = limits.parse("100/minute")
assert (rate.amount, rate.get_expiry()) == (100, 60), rate


class ListStorage(Storage, MovingWindowSupport):
    """Minimal single-threaded storage: limits' MemoryStorage starts a threading.Timer,
    which Pyodide cannot do (no threads)."""

    STORAGE_SCHEME = ["pyodide-smoke"]

    def __init__(self, uri: str | None = None, **options):
        super().__init__(uri, **options)
        self.events: dict[str, list[float]] = {}

    @property
    def base_exceptions(self):
        return ValueError

    def incr(self, key, expiry, amount=1):
        raise NotImplementedError

    def get(self, key):
        return 0

    def get_expiry(self, key):
        return time.time()

    def check(self):
        return True

    def reset(self):
        self.events.clear()
        return None

    def clear(self, key):
        self.events.pop(key, None)

    def acquire_entry(self, key, limit, expiry, amount=1):
        now = time.time()
        live = [t for t in self.events.get(key, []) if t > now - expiry]
        if len(live) + amount > limit:
            self.events[key] = live
            return False
        self.events[key] = live + [now] * amount
        return True

    def get_moving_window(self, key, limit, expiry):
        now = time.time()
        live = [t for t in self.events.get(key, []) if t > now - expiry]
        return (min(live) if live else now, len(live))


limiter = limits.strategies.MovingWindowRateLimiter(ListStorage())
two_per_minute = limits.parse("2/minute")
assert limiter.hit(two_per_minute, "k") and limiter.hit(two_per_minute, "k")
assert not limiter.hit(two_per_minute, "k")
assert limiter.get_window_stats(two_per_minute, "k").remaining == 0

# sqlite3 (part of Pyodide's stdlib; no loadPackage needed in 314)
import sqlite3

db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT)")
db.execute("INSERT INTO jobs (name) VALUES (?)", ("send-email",))
assert db.execute("SELECT id, name FROM jobs").fetchall() == [(1, "send-email")]
db.close()

# orjson must be absent (no Pyodide wheel)
try:
    import orjson  # noqa: F401
except ImportError:
    pass
else:
    raise AssertionError("orjson should not be importable under Pyodide")

# top-level await works
await asyncio.sleep(0)  # noqa: F704

print(f"python {sys.version.split()[0]}, pydantic {pydantic.VERSION}, limits {limits.__version__}")
print("pyodide smoke ok")
