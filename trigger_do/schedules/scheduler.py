"""The scheduler object: every schedule's row and one timer at the next due instant.

One object (`scheduler`), hosted like every engine object: locally on the one database (the
runtime's supervisor fires its timer), on Cloudflare as the `Scheduler` Durable Object (its
alarm). Methods run in one transaction each, take and return JSON-native values, and never
trigger a run: the engine's `ScheduleService` claims what is due here, triggers the runs
through the producer, then completes the claims.

Each due instant is claimed under a lease, so two firers (two dev servers on one database,
a retried alarm) never both take it; a firer that dies leaves its claim to lapse and the
instant is taken again, its run deduplicated by the instant in its idempotency key.
"""

from __future__ import annotations

from typing import Any

from ..shared.ids import new_id
from ..shared.rows import RowReader
from ..shared.sqlbulk import json_chunks
from ..shared.timers import TimedObject
from .cron import Cron

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS schedules (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        task TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        dedup_key TEXT,
        decl_key TEXT,
        external_id TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        next_at REAL,
        last_at REAL,
        claimed_until REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS schedules_dedup ON schedules(dedup_key) "
    "WHERE dedup_key IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS schedules_decl ON schedules(decl_key) "
    "WHERE decl_key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS schedules_due ON schedules(next_at) "
    "WHERE active = 1 AND claimed_until IS NULL",
    "CREATE INDEX IF NOT EXISTS schedules_claimed ON schedules(claimed_until) "
    "WHERE claimed_until IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS schedules_created ON schedules(created_at, id)",
    # the tasks declared with `schedules.task` (only they take imperative schedules)
    """CREATE TABLE IF NOT EXISTS scheduled_tasks (
        task TEXT PRIMARY KEY, updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
]

DUE_TIMER = "due"  # the object's one timer: the earliest due instant (or lapsing claim)
COLUMNS = (
    "id, type, task, cron, timezone, dedup_key, external_id, active, next_at, last_at, "
    "created_at, updated_at"
)
_record = RowReader(
    COLUMNS, real=("next_at", "last_at", "created_at", "updated_at"), flags=("active",)
)


class SchedulerObject(TimedObject):
    """Schedules, declarative (synced from the tasks' `cron=`) and imperative (the API)."""

    KIND = "scheduler"
    OWN_SCHEMA = SCHEMA
    NAME = "scheduler"

    # --- reads -------------------------------------------------------------------------------

    def get(self, schedule_id: str) -> dict[str, Any] | None:
        rows = self.sql.exec(f"SELECT {COLUMNS} FROM schedules WHERE id = ?", schedule_id)
        return _record(rows[0]) if rows else None

    def page(self, offset: int, limit: int) -> dict[str, Any]:
        """Newest first: `{rows, count}` (`count`: every schedule)."""
        rows = self.sql.exec(
            f"SELECT {COLUMNS} FROM schedules ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            limit,
            offset,
        )
        (count,) = self.sql.exec("SELECT count(*) FROM schedules")[0]
        return {"rows": [_record(r) for r in rows], "count": int(count)}

    def is_scheduled_task(self, task: str) -> bool:
        return bool(self.sql.exec("SELECT 1 FROM scheduled_tasks WHERE task = ?", task))

    def next_due(self) -> float | None:
        """When the object's timer is due (None: nothing to fire)."""
        return self.timers.next_due()

    # --- declarative: synced from the tasks a worker (or the Worker) registers --------------

    def sync_declarative(
        self, tasks: list[str], entries: list[dict[str, Any]], now: float
    ) -> dict[str, int]:
        """Make the declarative schedules exactly `entries` (`{decl_key, task, cron,
        timezone}`, checked by the caller): a new key is created, a changed one updated in
        place (its id kept, its next instant computed again), a key no longer declared
        removed. `tasks`: every task declared with `schedules.task` (cron or not)."""
        existing = {
            key: (sid, task, cron, tz)
            for sid, key, task, cron, tz in self.sql.exec(
                "SELECT id, decl_key, task, cron, timezone FROM schedules "
                "WHERE type = 'DECLARATIVE'"
            )
        }
        counts = {"created": 0, "updated": 0, "removed": 0, "unchanged": 0}
        wanted = set()
        for e in entries:
            key = str(e["decl_key"])
            wanted.add(key)
            found = existing.get(key)
            spec = (e["task"], e["cron"], e["timezone"])
            if found is not None and found[1:] == spec:
                counts["unchanged"] += 1
                continue
            next_at = Cron(e["cron"], e["timezone"]).next_after(now)
            if found is None:
                self.sql.exec(
                    "INSERT INTO schedules (id, type, task, cron, timezone, decl_key, active, "
                    "next_at, created_at, updated_at) VALUES (?, 'DECLARATIVE', ?, ?, ?, ?, 1, "
                    "?, ?, ?)",
                    new_id("sched"), *spec, key, next_at, now, now,
                )  # fmt: skip
                counts["created"] += 1
            else:
                self.sql.exec(
                    "UPDATE schedules SET task = ?, cron = ?, timezone = ?, active = 1, "
                    "next_at = ?, claimed_until = NULL, updated_at = ? WHERE id = ?",
                    *spec, next_at, now, found[0],
                )  # fmt: skip
                counts["updated"] += 1
        gone = [sid for key, (sid, *_) in existing.items() if key not in wanted]
        for chunk in json_chunks(gone):
            self.sql.exec(
                "DELETE FROM schedules WHERE id IN (SELECT value FROM json_each(?))", chunk
            )
        counts["removed"] = len(gone)
        known = {str(r[0]) for r in self.sql.exec("SELECT task FROM scheduled_tasks")}
        if known != set(tasks):  # (unchanged: nothing written, as every heartbeat finds it)
            self.sql.exec("DELETE FROM scheduled_tasks")
            for chunk in json_chunks(sorted(set(tasks))):
                self.sql.exec(
                    "INSERT INTO scheduled_tasks (task, updated_at) "
                    "SELECT value, ? FROM json_each(?)",
                    now,
                    chunk,
                )
        if counts["created"] or counts["updated"] or counts["removed"]:
            self._rearm()
        return counts

    # --- imperative: the API ------------------------------------------------------------------

    def create(self, spec: dict[str, Any], now: float) -> dict[str, Any]:
        """A schedule for `spec` (`{task, cron, timezone, dedup_key, external_id}`, checked by
        the caller); the schedule holding `dedup_key` already is updated instead. Returns
        `{schedule, created}`."""
        found = self.sql.exec(
            "SELECT id FROM schedules WHERE dedup_key = ?", str(spec["dedup_key"])
        )
        if found:
            res = self.update(str(found[0][0]), spec, now)
            return {"schedule": res["schedule"], "created": False}
        schedule_id = new_id("sched")
        self.sql.exec(
            "INSERT INTO schedules (id, type, task, cron, timezone, dedup_key, external_id, "
            "active, next_at, created_at, updated_at) "
            "VALUES (?, 'IMPERATIVE', ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            schedule_id,
            spec["task"],
            spec["cron"],
            spec["timezone"],
            spec["dedup_key"],
            spec.get("external_id"),
            Cron(spec["cron"], spec["timezone"]).next_after(now),
            now,
            now,
        )
        self._rearm()
        return {"schedule": self.get(schedule_id), "created": True}

    def update(self, schedule_id: str, spec: dict[str, Any], now: float) -> dict[str, Any]:
        """Change an imperative schedule's task, cron, timezone and external id (its next
        instant is computed again if the cron or timezone changed). Returns `{found,
        declarative, schedule}`: a declarative schedule is not changed."""
        current = self.get(schedule_id)
        if current is None or current["type"] == "DECLARATIVE":
            return self._refused(current)
        changed = (current["cron"], current["timezone"]) != (spec["cron"], spec["timezone"])
        next_at = current["next_at"]
        if current["active"] and (changed or next_at is None):
            next_at = Cron(spec["cron"], spec["timezone"]).next_after(now)
        self.sql.exec(
            "UPDATE schedules SET task = ?, cron = ?, timezone = ?, external_id = ?, "
            "next_at = ?, claimed_until = CASE WHEN ? THEN NULL ELSE claimed_until END, "
            "updated_at = ? WHERE id = ?",
            spec["task"],
            spec["cron"],
            spec["timezone"],
            spec.get("external_id"),
            next_at,
            changed,
            now,
            schedule_id,
        )
        self._rearm()
        return {"found": True, "declarative": False, "schedule": self.get(schedule_id)}

    def set_active(self, schedule_id: str, active: bool, now: float) -> dict[str, Any]:
        """Activate (its next instant from now) or deactivate (no instant) an imperative
        schedule. Returns `{found, declarative, schedule}`."""
        current = self.get(schedule_id)
        if current is None or current["type"] == "DECLARATIVE":
            return self._refused(current)
        if bool(current["active"]) != bool(active):
            next_at = Cron(current["cron"], current["timezone"]).next_after(now) if active else None
            self.sql.exec(
                "UPDATE schedules SET active = ?, next_at = ?, claimed_until = NULL, "
                "updated_at = ? WHERE id = ?",
                1 if active else 0,
                next_at,
                now,
                schedule_id,
            )
            self._rearm()
        return {"found": True, "declarative": False, "schedule": self.get(schedule_id)}

    def delete(self, schedule_id: str) -> dict[str, Any]:
        """Delete an imperative schedule. Returns `{found, declarative, schedule}` (the
        schedule as it was)."""
        current = self.get(schedule_id)
        if current is None or current["type"] == "DECLARATIVE":
            return self._refused(current)
        self.sql.exec("DELETE FROM schedules WHERE id = ?", schedule_id)
        self._rearm()
        return {"found": True, "declarative": False, "schedule": current}

    @staticmethod
    def _refused(current: dict[str, Any] | None) -> dict[str, Any]:
        found = current is not None
        return {"found": found, "declarative": found, "schedule": current}

    # --- firing ---------------------------------------------------------------------------------

    def claim_due(self, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` schedules due at `now` (earliest first), each claimed for `lease`
        seconds: `{id, type, task, cron, timezone, external_id, dedup_key, instant, last}`
        (`instant`: the nominal instant due; `last`: the one fired before, or None). A claim
        that lapsed (its firer died) is taken again."""
        cols = "id, type, task, cron, timezone, external_id, dedup_key, next_at, last_at"
        rows = self.sql.exec(
            f"SELECT {cols} FROM schedules WHERE active = 1 AND claimed_until IS NULL "
            "AND next_at <= ? ORDER BY next_at LIMIT ?",
            now,
            limit,
        )
        if len(rows) < limit:
            rows += self.sql.exec(
                f"SELECT {cols} FROM schedules WHERE claimed_until IS NOT NULL "
                "AND claimed_until <= ? AND active = 1 AND next_at <= ? ORDER BY next_at LIMIT ?",
                now,
                now,
                limit - len(rows),
            )
        if not rows:
            self._rearm()
            return []
        ids = [r[0] for r in rows]
        for chunk in json_chunks(ids):
            self.sql.exec(
                "UPDATE schedules SET claimed_until = ? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                now + lease,
                chunk,
            )
        self._rearm()
        return [
            {
                "id": sid,
                "type": kind,
                "task": task,
                "cron": cron,
                "timezone": tz,
                "external_id": external_id,
                "dedup_key": dedup_key,
                "instant": float(instant),
                "last": None if last is None else float(last),
            }
            for sid, kind, task, cron, tz, external_id, dedup_key, instant, last in rows
        ]

    def complete(self, fired: list[list[Any]], now: float) -> int:
        """Record fired instants: `[id, instant, next_at]` each (the run of `instant` was
        triggered; `next_at` is the next instant to fire). A schedule changed, deactivated
        or deleted since its claim keeps what that change set. Returns how many applied."""
        done = 0
        for chunk in json_chunks(fired):
            done += len(
                self.sql.exec(
                    "UPDATE schedules SET last_at = f.value->>1, next_at = f.value->>2, "
                    "claimed_until = NULL, updated_at = ? "
                    "FROM (SELECT value FROM json_each(?)) AS f "
                    "WHERE schedules.id = f.value->>0 AND schedules.active = 1 "
                    "AND schedules.next_at = f.value->>1 RETURNING schedules.id",
                    now,
                    chunk,
                )
            )
        self._rearm()
        return done

    def _rearm(self) -> None:
        """Keep the object's one timer at its earliest due instant or lapsing claim."""
        (due,) = self.sql.exec(
            "SELECT min(next_at) FROM schedules "
            "WHERE active = 1 AND claimed_until IS NULL AND next_at IS NOT NULL"
        )[0]
        (lapse,) = self.sql.exec(
            "SELECT min(claimed_until) FROM schedules WHERE claimed_until IS NOT NULL"
        )[0]
        when = [float(t) for t in (due, lapse) if t is not None]
        if when:
            self.timers.set(DUE_TIMER, min(when))
        else:
            self.timers.cancel(DUE_TIMER)
