"""Schedules as the engine serves them (`Engine.schedules`): checking and CRUD over the
scheduler object, declarative sync, and firing what is due through the producer.

Firing, wherever it runs (the local supervisor's timer tick, the Scheduler Durable Object's
alarm): claim up to `CHUNK` due schedules under a lease, trigger one run each through the
producer (its idempotency key names the schedule and the instant, so a claim taken again
after its firer died adds no second run), then complete the claims with each schedule's
next instant, computed from the instant that fired (never from the clock, unless that next
one is already past: then the missed ones are skipped and the first after now is next).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import (
    InvalidScheduleError,
    PayloadTooLargeError,
    PayloadValidationError,
    ScheduleNotFoundError,
    UnknownTaskError,
)
from ..ports import Platform, Remote
from ..producer.producer import Producer, TriggerRequest
from ..runs.client import Registry
from ..shared.serialization import dumps
from ..task import Task
from .cron import UPCOMING, Cron, iso, parse_cron
from .scheduler import SchedulerObject

log = logging.getLogger("trigger_do.schedules")

CHUNK = 1000  # schedules claimed, and runs triggered, at once
LEASE = 60.0  # seconds a claim holds its instants before another firer may take them
MAX_KEY = 512  # characters of a deduplication key or an external id
MAX_PER_PAGE = 100


def run_key(schedule_id: str, instant: float) -> str:
    """The idempotency key of the run a schedule starts at `instant`."""
    return f"{schedule_id}:{int(instant)}"


def run_ref(due: dict[str, Any]) -> dict[str, Any]:
    """What a run started by a schedule carries of it (its row's `options["schedule"]`)."""
    ref = {"id": due["id"], "type": due["type"], "cron": due["cron"], "timezone": due["timezone"]}
    if due.get("external_id"):
        ref["external_id"] = due["external_id"]
    if due.get("dedup_key"):
        ref["dedup_key"] = due["dedup_key"]
    return ref


def event_payload(due: dict[str, Any], instant: float, upcoming: list[float]) -> dict[str, Any]:
    """Trigger.dev's scheduled payload (camelCase, ISO dates; absent keys omitted)."""
    out: dict[str, Any] = {
        "type": due["type"],
        "timestamp": iso(instant),
        "timezone": due["timezone"],
        "scheduleId": due["id"],
        "upcoming": [iso(t) for t in upcoming],
    }
    if due.get("last") is not None:
        out["lastTimestamp"] = iso(due["last"])
    if due.get("external_id"):
        out["externalId"] = due["external_id"]
    return out


def _text(value: Any, name: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_KEY:
        raise InvalidScheduleError(f"{name} must be a string of 1 to {MAX_KEY} characters")
    return value


def is_scheduled(task: Task[Any] | None) -> bool:
    from .declare import ScheduledTask

    return isinstance(task, ScheduledTask)


def declared(tasks: Iterable[Task[Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The scheduled tasks among `tasks`, and their declarative schedules: one per task and
    cron (`decl_key` `<task>#<n>`: the n-th cron of the task keeps its schedule's id when
    its expression changes)."""
    from .declare import ScheduledTask

    ids: list[str] = []
    entries: list[dict[str, Any]] = []
    for t in tasks:
        if isinstance(t, ScheduledTask):
            ids.append(t.id)
            for n, cron in enumerate(t.crons):
                entries.append(
                    {
                        "decl_key": f"{t.id}#{n}",
                        "task": t.id,
                        "cron": cron.expression,
                        "timezone": cron.timezone,
                    }
                )
    return ids, entries


class ScheduleService:
    """The engine's schedules (`Engine.schedules`)."""

    def __init__(
        self,
        platform: Platform,
        producer: Producer,
        scheduler: Remote[SchedulerObject] | None = None,
    ) -> None:
        self.platform = platform
        self.producer = producer
        self.find: Callable[[str], Task[Any] | None] = producer.find_task
        if scheduler is None:
            ns = platform.objects(SchedulerObject.KIND)
            scheduler = Remote[SchedulerObject](ns.get(SchedulerObject.NAME))
        self.object = scheduler

    def now(self) -> float:
        return self.platform.clock.now()

    # --- checks -----------------------------------------------------------------------------

    async def _check_task(self, task: Any) -> str:
        """`task`, if it is a scheduled task (declared with `schedules.task` here, or by the
        workers that registered it); else `InvalidScheduleError`."""
        if not isinstance(task, str) or not task:
            raise InvalidScheduleError("task must be a task id (a string)")
        found = self.find(task)
        if is_scheduled(found) or (
            found is None and await self.object(SchedulerObject.is_scheduled_task, task)
        ):
            return task
        if found is not None or task in {r["id"] for r in await Registry(self.platform).tasks()}:
            raise InvalidScheduleError(
                f"task {task!r} is not a scheduled task: declare it with @schedules.task "
                "to give it schedules"
            )
        raise InvalidScheduleError(f"no task {task!r} (a scheduled task's id)")

    def _spec(
        self, cron: Any, timezone: Any, dedup_key: Any, external_id: Any, *, dedup: bool
    ) -> dict[str, Any]:
        checked = parse_cron(cron, timezone)
        spec: dict[str, Any] = {"cron": checked.expression, "timezone": checked.timezone}
        if dedup:
            spec["dedup_key"] = _text(dedup_key, "deduplicationKey", required=True)
        spec["external_id"] = _text(external_id, "externalId", required=False)
        return spec

    # --- CRUD -------------------------------------------------------------------------------

    async def create(
        self,
        task: str,
        cron: str,
        deduplication_key: str,
        *,
        external_id: str | None = None,
        timezone: str | None = None,
    ) -> dict[str, Any]:
        """An imperative schedule (the same `deduplication_key` again updates that one).
        Returns its record; `InvalidScheduleError` for a bad cron, timezone or task."""
        spec = self._spec(cron, timezone, deduplication_key, external_id, dedup=True)
        spec["task"] = await self._check_task(task)
        res = await self.object(SchedulerObject.create, spec, self.now())
        return dict(res["schedule"])

    async def get(self, schedule_id: str) -> dict[str, Any]:
        found = await self.object(SchedulerObject.get, str(schedule_id))
        if found is None:
            raise ScheduleNotFoundError(str(schedule_id))
        return found

    async def page(self, page: int = 1, per_page: int = 20) -> tuple[list[dict[str, Any]], int]:
        """One page of schedules (newest first) and how many there are in all."""
        page = max(1, int(page))
        per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
        got = await self.object(SchedulerObject.page, (page - 1) * per_page, per_page)
        return list(got["rows"]), int(got["count"])

    async def update(
        self,
        schedule_id: str,
        task: str,
        cron: str,
        *,
        external_id: str | None = None,
        timezone: str | None = None,
    ) -> dict[str, Any]:
        spec = self._spec(cron, timezone, None, external_id, dedup=False)
        current = await self.get(schedule_id)  # 404 before anything else
        if current["type"] == "DECLARATIVE":
            raise InvalidScheduleError("Cannot update a declarative schedule")
        spec["task"] = await self._check_task(task)
        res = await self.object(SchedulerObject.update, str(schedule_id), spec, self.now())
        return self._applied(schedule_id, res, "update")

    async def delete(self, schedule_id: str) -> dict[str, Any]:
        res = await self.object(SchedulerObject.delete, str(schedule_id))
        return self._applied(schedule_id, res, "delete")

    async def activate(self, schedule_id: str) -> dict[str, Any]:
        res = await self.object(SchedulerObject.set_active, str(schedule_id), True, self.now())
        return self._applied(schedule_id, res, "activate")

    async def deactivate(self, schedule_id: str) -> dict[str, Any]:
        res = await self.object(SchedulerObject.set_active, str(schedule_id), False, self.now())
        return self._applied(schedule_id, res, "deactivate")

    @staticmethod
    def _applied(schedule_id: str, res: dict[str, Any], verb: str) -> dict[str, Any]:
        if not res["found"]:
            raise ScheduleNotFoundError(str(schedule_id))
        if res["declarative"]:
            raise InvalidScheduleError(f"Cannot {verb} a declarative schedule")
        return dict(res["schedule"])

    async def sync_declarative(self, tasks: Iterable[Task[Any]]) -> dict[str, int]:
        """Make the declarative schedules those `tasks` declare (workers call this when they
        register their tasks; on Cloudflare the cron heartbeat does)."""
        ids, entries = declared(tasks)
        return await self.object(SchedulerObject.sync_declarative, ids, entries, self.now())

    # --- firing -------------------------------------------------------------------------------

    async def fire_due(self) -> int:
        """Trigger the run of every schedule due now, once each. Returns how many instants
        fired (their runs created now, or found created by an earlier firer)."""
        fired = 0
        while True:
            now = self.now()
            due = await self.object(SchedulerObject.claim_due, now, LEASE, CHUNK)
            if not due:
                return fired
            fired += await self._fire(due, now)
            if len(due) < CHUNK:
                return fired

    async def _fire(self, due: list[dict[str, Any]], now: float) -> int:
        requests: list[TriggerRequest] = []
        completions: list[list[Any]] = []
        for d in due:
            cron = Cron(d["cron"], d["timezone"])
            instant = d["instant"]
            following = cron.next_fire(instant, now)
            upcoming = [following, *cron.upcoming(following, UPCOMING - 1)]
            requests.append(
                TriggerRequest(
                    d["task"],
                    None,
                    {"idempotency_key": run_key(d["id"], instant)},
                    payload_text=dumps(event_payload(d, instant, upcoming)),
                    schedule=run_ref(d),
                )
            )
            completions.append([d["id"], instant, following])
        try:
            await self.producer.trigger_many(requests, batch=False)
        except (UnknownTaskError, PayloadValidationError, PayloadTooLargeError):
            # one schedule's task is gone (or refuses the payload): the others still fire
            for req in requests:
                try:
                    await self.producer.trigger(req)
                except (UnknownTaskError, PayloadValidationError, PayloadTooLargeError) as exc:
                    log.warning("schedule %s skipped an instant: %s", req.schedule, exc)
        await self.object(SchedulerObject.complete, completions, self.now())
        return len(due)
