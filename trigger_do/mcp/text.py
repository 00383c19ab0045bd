"""What the MCP tools say: short text an agent reads well, from the API's JSON shapes."""

from __future__ import annotations

import json
from typing import Any

MAX_VALUE = 2000  # characters of a payload or output shown inline


def value(v: Any) -> str:
    out = json.dumps(v, default=str, ensure_ascii=False)
    return out if len(out) <= MAX_VALUE else out[:MAX_VALUE] + f"... ({len(out)} characters)"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def tasks(items: list[dict[str, Any]]) -> str:
    if not items:
        return "No tasks are registered (is the worker running with --tasks?)."
    lines = [f"{len(items)} task(s):"]
    for t in items:
        parts = [f"queue {t['queue']}"]
        if t.get("queueConcurrencyLimit"):
            parts.append(f"queue concurrency {t['queueConcurrencyLimit']}")
        if t.get("concurrency"):
            c = t["concurrency"]
            parts.append(f"concurrency {c['limit']}" + (f" per {c['key']}" if c["key"] else ""))
        if t.get("rateLimit"):
            r = t["rateLimit"]
            key = f" per {r['key']}" if r["key"] else ""
            parts.append(f"rate {r['limit']} per {_duration(r['period'])}{key}")
        r = t["retry"]
        parts.append(f"retry {r['maxAttempts']} attempts, {r['backoff']} backoff")
        if t.get("maxDuration"):
            parts.append(f"max duration {_duration(t['maxDuration'])}")
        for s in t.get("schedules") or []:
            parts.append(f"cron {s['cron']} ({s['timezone']})")
        has_schema = " (typed payload: see get_task_schema)" if t.get("payloadSchema") else ""
        lines.append(f"- {t['id']}: {'; '.join(parts)}{has_schema}")
    return "\n".join(lines)


def schema(task: dict[str, Any]) -> str:
    s = task.get("payloadSchema") or {}
    if not s:
        return f"Task {task['id']} takes any JSON payload (no type annotation)."
    return f"Payload JSON Schema of task {task['id']}:\n{json.dumps(s, indent=2)}"


def _when(run: dict[str, Any]) -> str:
    return str(run.get("createdAt", ""))[:19].replace("T", " ")


def runs(page: dict[str, Any]) -> str:
    data = page["data"]
    if not data:
        return "No runs match."
    lines = [f"{len(data)} run(s), newest first:"]
    for r in data:
        tags = f" tags={','.join(r['tags'])}" if r.get("tags") else ""
        lines.append(
            f"- {r['id']} {r['taskIdentifier']} {r['status']} created {_when(r)}"
            f" ({r.get('durationMs', 0)} ms){tags}"
        )
    nxt = (page.get("pagination") or {}).get("next")
    if nxt:
        lines.append(f"More: call again with cursor={nxt!r}")
    return "\n".join(lines)


def details(run: dict[str, Any], logs: list[dict[str, Any]]) -> str:
    extra = run.get("triggerDo") or {}
    lines = [
        f"Run {run['id']} of task {run['taskIdentifier']}: {run['status']}",
        f"attempts: {run.get('attemptCount', 0)}; created {_when(run)}; "
        f"duration {run.get('durationMs', 0)} ms",
    ]
    if run.get("tags"):
        lines.append(f"tags: {', '.join(run['tags'])}")
    lines.append(f"payload: {value(run.get('payload'))}")
    if "output" in run:
        lines.append(f"output: {value(run['output'])}")
    if run.get("error"):
        err = run["error"]
        name = f"{err['name']}: " if err.get("name") else ""
        lines.append(f"error: {name}{err.get('message', '')}")
    lines += family(run)
    checkpoints = extra.get("checkpoints") or []
    if checkpoints:
        lines.append(f"checkpoints ({len(checkpoints)}):")
        lines += [f"  - {c.get('name')}: {value(c.get('data'))}" for c in checkpoints]
    if logs:
        lines.append(f"last {len(logs)} log line(s):")
        lines += [f"  [{rec['level']}] (attempt {rec['attempt']}) {rec['message']}" for rec in logs]
    return "\n".join(lines)


def family(run: dict[str, Any]) -> list[str]:
    """A run's parent, root, children and waits (child runs and durable waits)."""
    extra = run.get("triggerDo") or {}
    related = run.get("relatedRuns") or {}
    lines = []
    if extra.get("parentRunId"):
        root = extra.get("rootRunId")
        top = f" (root {root})" if root and root != extra["parentRunId"] else ""
        lines.append(f"parent: {extra['parentRunId']}{top}")
    children = related.get("children") or []
    if children:
        lines.append(f"children ({len(children)}):")
        lines += [f"  - {c['id']} {c['taskIdentifier']} {c['status']}" for c in children]
    waits = extra.get("waits") or []
    if waits:
        lines.append(f"waits ({len(waits)}):")
        for w in waits:
            key = f" key {w['key']!r}" if w.get("key") else ""
            ended = "".join(f", {e['id']} {e['state']}" for e in w.get("ended") or [])
            lines.append(
                f"  {w['position']}. {w['kind']}{key}: {'done' if w['done'] else 'open'}{ended}"
            )
    return lines


def queues(items: list[dict[str, Any]]) -> str:
    if not items:
        return "No queues yet."
    lines = [f"{len(items)} queue(s):"]
    for q in items:
        limit = q.get("concurrencyLimit")
        name = q["name"] if q["type"] == "custom" else f"task/{q['name']}"
        lines.append(
            f"- {name}: {q['running']} running, {q['queued']} queued, "
            f"limit {limit if limit is not None else 'none'}{', PAUSED' if q['paused'] else ''}"
        )
    return "\n".join(lines)


def dead_letters(items: list[dict[str, Any]]) -> str:
    if not items:
        return "No dead letters."
    lines = [f"{len(items)} dead letter(s):"]
    lines += [
        f"- {d['runId']} {d['taskIdentifier']}: {d['deliveries']} deliveries, {d['reason']} "
        f"(dead at {d['deadAt']})"
        for d in items
    ]
    return "\n".join(lines)


def schedules(items: list[dict[str, Any]]) -> str:
    if not items:
        return "No schedules."
    lines = []
    for s in items:
        state = "active" if s.get("active") else "inactive"
        nxt = f", next {s['nextRun']}" if s.get("nextRun") else ""
        gen = s.get("generator") or {}
        lines.append(
            f"schedule {s['id']} ({s['type']}, {state}): task {s['task']}, cron "
            f"{gen.get('expression')} ({s.get('timezone')}){nxt}"
        )
    return "\n".join(lines)
