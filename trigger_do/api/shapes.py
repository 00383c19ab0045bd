"""Run rows as Trigger.dev's response shapes (RetrieveRunResponse, list items, batches).

Optional fields are omitted when there is no value (the official client rejects `null`).
`triggerDo` carries what only trigger.do has (lower-case state, progress, checkpoints, the
raw error); the official client strips unknown keys."""

from __future__ import annotations

import base64
import binascii
import re
import time
from datetime import UTC, datetime
from typing import Any

from ..schedules.shapes import run_schedule
from ..shared import options
from ..shared.states import FINAL_STATES, RunState
from .errors import HTTPError

ENV = {"id": "env_local", "name": "dev"}


def iso(ts: float) -> str:
    """Epoch seconds as ISO-8601 UTC; a time no date can hold (a row written before dates
    were bounded) as the nearest one that can, never an error."""
    try:
        when = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):
        when = datetime.max.replace(tzinfo=UTC) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    return when.isoformat().replace("+00:00", "Z")


def from_iso(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def flags(state: RunState) -> dict[str, bool]:
    final = state in FINAL_STATES
    status = state.api_status
    return {
        "isQueued": status in ("QUEUED", "DELAYED"),
        "isExecuting": status == "EXECUTING",
        "isWaiting": status == "WAITING",
        "isCompleted": final,
        "isSuccess": state == RunState.COMPLETED,
        "isFailed": final and state != RunState.COMPLETED,
        "isCancelled": state == RunState.CANCELED,
    }


def user_key(row: dict[str, Any]) -> str | None:
    """The caller's idempotency key (stored scoped by its task)."""
    return options.user_key(row["task"], row.get("idempotency_key"))


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{int(value * 1000)}ms"


def list_item(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A `runs.list` item (ListRunResponseItem)."""
    state = RunState(row["state"])
    started, finished = row.get("started_at"), row.get("finished_at")
    duration = ((finished or now) - started) * 1000 if started else 0
    out: dict[str, Any] = {
        "id": row["id"],
        "status": state.api_status,
        "taskIdentifier": row["task"],
        **flags(state),
        "isTest": False,
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "tags": row.get("tags") or [],
        "costInCents": 0,
        "baseCostInCents": 0,
        "durationMs": int(max(0, duration)),
        "env": ENV,
        "metadata": row.get("metadata") or {},
    }
    key = user_key(row)
    if key:
        out["idempotencyKey"] = key
    if row.get("ttl"):
        out["ttl"] = _seconds(row["ttl"])
    if started:
        out["startedAt"] = iso(started)
    if finished:
        out["finishedAt"] = iso(finished)
    if row.get("delay_until"):
        out["delayedUntil"] = iso(row["delay_until"])
    if state == RunState.EXPIRED and finished:
        out["expiredAt"] = iso(finished)
    return out


def retrieve(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A `runs.retrieve` response (RetrieveRunResponse), payload and output decoded."""
    out = list_item(row, now)
    del out["env"]
    state = RunState(row["state"])
    out.update(
        depth=0,
        triggerFunction="batchTrigger" if row.get("batch_id") else "trigger",
        relatedRuns={},
        attemptCount=row.get("attempt") or 0,
    )
    if row.get("batch_id"):
        out["batchId"] = row["batch_id"]
    schedule = run_schedule((row.get("options") or {}).get("schedule"))
    if schedule is not None:  # a run a schedule started
        out["schedule"] = schedule
    event = (row.get("options") or {}).get("event")
    if event:  # a run an event or a webhook delivery started: `{id, name, source?}`
        out["event"] = event
    # every run has a payload, and a completed one an output: `null` is sent as `null`
    # (the client reads a missing key as `undefined`)
    out["payload"] = row.get("payload")
    if state == RunState.COMPLETED or row.get("output") is not None:
        out["output"] = row.get("output")
    error = row.get("error")
    if error:
        err: dict[str, Any] = {"message": str(error.get("message") or "")}
        if error.get("name"):
            err["name"] = str(error["name"])
        if error.get("stackTrace"):
            err["stackTrace"] = str(error["stackTrace"])
        out["error"] = err
    out["triggerDo"] = {
        "state": row["state"],
        "attempt": row.get("attempt") or 0,
        "progress": row.get("progress"),
        "checkpoints": row.get("checkpoints") or [],
        "error": error,
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "startedAt": row.get("started_at"),
        "finishedAt": row.get("finished_at"),
        "delayUntil": row.get("delay_until"),
        "expiresAt": row.get("expires_at"),
        "idempotencyKey": row.get("idempotency_key"),
    }
    return out


def batch(found: dict[str, Any]) -> dict[str, Any]:
    """A `batch.retrieve` response (RetrieveBatchV2Response)."""
    sealed = bool(found.get("sealed", len(found["runs"]) >= found["run_count"]))
    out: dict[str, Any] = {
        "id": found["id"],
        "status": "COMPLETED" if sealed else "PENDING",
        "createdAt": iso(found["created_at"]),
        "updatedAt": iso(found["updated_at"]),
        "runCount": found["run_count"],
        "runs": found["runs"],
        "processing": {"errors": []},
    }
    if found.get("idempotency_key"):
        out["idempotencyKey"] = found["idempotency_key"]
    if sealed:
        out["processing"]["completedAt"] = iso(found["updated_at"])
    return out


# --- cursors: opaque to clients, a (created_at, id) position to the index --------------------
# The official client merges a page's params into the next request, so after going back a
# page it sends both `page[after]` and `page[before]`; each cursor carries when it was
# issued, and the newer one is the caller's latest move.


def cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at']!r}|{time.time_ns()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_CURSOR = re.compile(
    r"([0-9]{1,12}(?:\.[0-9]{1,17})?(?:e[+-]?[0-9]{1,3})?)\|([0-9]{1,20})\|(\w{1,64})", re.ASCII
)


def parse_cursor(text: str) -> tuple[list[Any], int]:
    """`([created_at, id], issued_ns)`; 400 for anything `cursor` does not make."""
    try:
        if len(text) > 200 or not text.isascii():
            raise ValueError(text)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        found = _CURSOR.fullmatch(raw)
        if found is None:
            raise ValueError(raw)
        created, issued, run_id = found.groups()
        return [float(created), run_id], int(issued)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HTTPError(400, f"invalid page cursor {text[:100]!r}") from None
