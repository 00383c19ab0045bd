"""Schedules in Trigger.dev's shapes: the `ScheduleObject` of the schedules API and the
`schedule` of a run (`runs.retrieve`). Optional keys are omitted when empty (the official
client refuses `null` for most)."""

from __future__ import annotations

from typing import Any

from .cron import describe, iso

# the one environment trigger.do serves (Trigger.dev lists a schedule's environments)
ENVIRONMENTS = [{"id": "env_local", "type": "DEVELOPMENT"}]


def generator(cron: str) -> dict[str, str]:
    return {"type": "CRON", "expression": cron, "description": describe(cron)}


def schedule_object(rec: dict[str, Any]) -> dict[str, Any]:
    """A scheduler record (`SchedulerObject.get`) as a `ScheduleObject`."""
    out: dict[str, Any] = {
        "id": rec["id"],
        "type": rec["type"],
        "task": rec["task"],
        "active": bool(rec["active"]),
        "generator": generator(rec["cron"]),
        "timezone": rec["timezone"],
        "environments": ENVIRONMENTS,
    }
    if rec.get("dedup_key"):
        out["deduplicationKey"] = rec["dedup_key"]
    if rec.get("external_id"):
        out["externalId"] = rec["external_id"]
    if rec.get("next_at") is not None:
        out["nextRun"] = iso(rec["next_at"])
    return out


def run_schedule(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's `schedule` (from its row's `options["schedule"]`), or None."""
    if not ref or not ref.get("id"):
        return None
    out: dict[str, Any] = {"id": ref["id"]}
    if ref.get("external_id"):
        out["externalId"] = ref["external_id"]
    if ref.get("dedup_key"):
        out["deduplicationKey"] = ref["dedup_key"]
    out["generator"] = generator(str(ref.get("cron") or ""))
    # what only trigger.do shows (the official client strips it): for its own remote SDK
    out["triggerDo"] = {"timezone": ref.get("timezone") or "UTC", "type": ref.get("type")}
    return out


def run_ref_from_api(schedule: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's `schedule` as the API shows it, back into its row's form (the remote SDK)."""
    if not schedule or not schedule.get("id"):
        return None
    ref: dict[str, Any] = {"id": schedule["id"]}
    gen = schedule.get("generator") or {}
    ref["cron"] = gen.get("expression") or ""
    for api, key in (("externalId", "external_id"), ("deduplicationKey", "dedup_key")):
        if schedule.get(api):
            ref[key] = schedule[api]
    extra = schedule.get("triggerDo") or {}
    for key in ("timezone", "type"):
        if extra.get(key):
            ref[key] = extra[key]
    return ref
