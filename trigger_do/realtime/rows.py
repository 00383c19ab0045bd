"""A run row as the Realtime API's wire shape: Electric's HTTP shape protocol, as the official
client (`@electric-sql/client` under `@trigger.dev/core`'s `SubscribeRunRawShape`) parses it.

Pure: no IO. Learned from Trigger.dev's own Electric-compatible server
(`apps/webapp/app/services/realtime/electricStreamProtocol.server.ts`): every column value is
a string or null, decoded by the client through the `electric-schema` header (`bool` as
`t`/`f`, `int4`/`float8` as numbers, `jsonb` parsed, `text[]` a Postgres array literal);
timestamps are ISO-8601 WITHOUT the trailing `Z` (the client appends it); `status` is the
internal status name (`COMPLETED_SUCCESSFULLY`, ...), which the client maps to the API's;
payload, output and metadata are packets: their text plus a `*Type`.

Offsets: `<updated ms>_<version>`, where the version is a CRC of what a subscriber can see
change in the row (or in every row of a set): equal offsets mean nothing visible changed, so
a live request compares the client's offset with the shape's current one, statelessly, in any
process."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..shared.options import user_key
from ..shared.serialization import dumps, loads
from ..shared.states import FINAL_STATES, RunState

INITIAL_OFFSET = "-1"
EMPTY_OFFSET = "0_0"

# (name, Electric type, dims): the columns of Trigger.dev's run feed, in its order
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "text", 0),
    ("taskIdentifier", "text", 0),
    ("createdAt", "timestamp", 0),
    ("updatedAt", "timestamp", 0),
    ("startedAt", "timestamp", 0),
    ("delayUntil", "timestamp", 0),
    ("queuedAt", "timestamp", 0),
    ("expiredAt", "timestamp", 0),
    ("completedAt", "timestamp", 0),
    ("friendlyId", "text", 0),
    ("number", "int4", 0),
    ("isTest", "bool", 0),
    ("status", "text", 0),
    ("usageDurationMs", "int4", 0),
    ("costInCents", "float8", 0),
    ("baseCostInCents", "float8", 0),
    ("ttl", "text", 0),
    ("payload", "text", 0),
    ("payloadType", "text", 0),
    ("metadata", "text", 0),
    ("metadataType", "text", 0),
    ("output", "text", 0),
    ("outputType", "text", 0),
    ("runTags", "text", 1),
    ("error", "jsonb", 0),
    ("realtimeStreams", "text", 1),
    ("idempotencyKey", "text", 0),
)
RESERVED = frozenset({"id", "taskIdentifier", "friendlyId", "status", "createdAt"})

# Our states as Trigger.dev's internal TaskRunStatus names (the client maps them to the API's:
# PENDING -> QUEUED, WAITING_TO_RESUME -> WAITING, COMPLETED_WITH_ERRORS -> FAILED, ...). A
# run waiting for its next attempt is PENDING, so that it reads QUEUED, as `runs.retrieve` says.
INTERNAL_STATUS: dict[RunState, str] = {
    RunState.QUEUED: "PENDING",
    RunState.DELAYED: "DELAYED",
    RunState.RUNNING: "EXECUTING",
    RunState.WAITING_FOR_RETRY: "PENDING",
    RunState.WAITING: "WAITING_TO_RESUME",
    RunState.COMPLETED: "COMPLETED_SUCCESSFULLY",
    RunState.FAILED: "COMPLETED_WITH_ERRORS",
    RunState.CANCELED: "CANCELED",
    RunState.TIMED_OUT: "TIMED_OUT",
    RunState.CRASHED: "CRASHED",
    RunState.EXPIRED: "EXPIRED",
    RunState.SYSTEM_FAILURE: "SYSTEM_FAILURE",
}
UP_TO_DATE: dict[str, Any] = {"headers": {"control": "up-to-date"}}


def timestamp(ts: float | None) -> str | None:
    """Epoch seconds as the shape's timestamp text: ISO-8601 UTC, milliseconds, no `Z`."""
    if ts is None:
        return None
    try:
        when = datetime.fromtimestamp(ts, tz=UTC)
    except (OverflowError, ValueError, OSError):
        when = datetime.max.replace(tzinfo=UTC) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def pg_array(values: Iterable[Any]) -> str:
    """A Postgres array literal, each element quoted (`{"a","b"}`)."""
    quoted = ('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


def schema_header(skip: frozenset[str] = frozenset()) -> str:
    """The `electric-schema` response header: each column's type (and `dims` for arrays)."""
    out: dict[str, Any] = {}
    for name, kind, dims in COLUMNS:
        if name not in skip:
            out[name] = {"type": kind, "dims": dims} if dims else {"type": kind}
    return dumps(out)


def skip_columns(raw: str | None) -> frozenset[str]:
    """The `skipColumns` query (comma-separated), without the columns that cannot be skipped."""
    names = {c.strip() for c in (raw or "").split(",")}
    return frozenset(n for n in names if n and n not in RESERVED)


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{int(value * 1000)}ms"


def _error(error: Any) -> str | None:
    if not error:
        return None
    if not isinstance(error, dict):
        return dumps({"type": "STRING_ERROR", "raw": str(error)})
    return dumps(
        {
            "type": "BUILT_IN_ERROR",
            "name": str(error.get("name") or "Error"),
            "message": str(error.get("message") or ""),
            "stackTrace": str(error.get("stackTrace") or ""),
        }
    )


def _packet(name: str, text: str | None, key: str | None) -> dict[str, str | None]:
    """`{name, nameType}`: the JSON text inline, a packet by its key, or nothing."""
    if key:
        return {name: key, f"{name}Type": "application/store"}
    if text is None:
        return {name: None, f"{name}Type": None}
    return {name: text, f"{name}Type": "application/json"}


def value(row: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """A run-index row (payload and output as stored: JSON text) as the shape's `value`."""
    state = RunState(row["state"])
    final = state in FINAL_STATES
    started, finished = row.get("started_at"), row.get("finished_at")
    delay = row.get("delay_until")
    duration = (finished or row["updated_at"]) - started if started else 0
    tags = row.get("tags") or []
    out: dict[str, str | None] = {
        "id": row["id"],
        "taskIdentifier": row["task"],
        "createdAt": timestamp(row["created_at"]),
        "updatedAt": timestamp(row["updated_at"]),
        "startedAt": timestamp(started),
        "delayUntil": timestamp(delay),
        "queuedAt": timestamp(row["created_at"] if delay is None else delay)
        if state != RunState.DELAYED
        else None,
        "expiredAt": timestamp(finished) if state == RunState.EXPIRED else None,
        "completedAt": timestamp(finished) if final and finished else None,
        "friendlyId": row["id"],
        "number": "0",
        "isTest": "f",
        "status": INTERNAL_STATUS[state],
        "usageDurationMs": str(int(max(0.0, duration) * 1000)),
        "costInCents": "0",
        "baseCostInCents": "0",
        "ttl": _seconds(row["ttl"]) if row.get("ttl") else None,
        # an offloaded payload or output (a packet) is named, as Trigger.dev's are, and the
        # client reads it through `GET /api/v1/runs/{id}/packets/{field}` (api/run_packets.py)
        **_packet("payload", row.get("payload"), row.get("payload_packet")),
        "metadata": dumps(row.get("metadata") or {}),
        "metadataType": "application/json",
        **_packet("output", row.get("output"), row.get("output_packet")),
        "runTags": pg_array(tags) if tags else None,
        "error": _error(row.get("error")),
        "realtimeStreams": "{}",
        "idempotencyKey": user_key(row["task"], row.get("idempotency_key")),
    }
    for name in skip:
        out.pop(name, None)
    return out


def version(row: dict[str, Any]) -> int:
    """A CRC of everything in `row` a subscriber can see change (payload never does; output
    only with the state). Cheap: computed for every watched run whenever the database moved."""
    seen = (
        row["id"], row["updated_at"], row["state"], row.get("attempt"), row.get("progress"),
        row.get("metadata"), row.get("tags"), row.get("finished_at"), row.get("started_at"),
        row.get("delay_until"), row.get("output_packet"), row.get("error") is not None,
    )  # fmt: skip
    return zlib.crc32(repr(seen).encode())


_LIGHT = (
    "id", "updated_at", "state", "attempt", "progress", "metadata", "tags", "finished_at",
    "started_at", "delay_until", "output_packet", "error", "created_at",
)  # fmt: skip
_REALS = ("updated_at", "progress", "finished_at", "started_at", "delay_until", "created_at")


def light_row(columns: list[Any]) -> dict[str, Any]:
    """A row of `runs.index_realtime.VERSION_COLUMNS` as `version` reads a whole row (JSON
    columns parsed, times as floats, `error` true when there is one): same version."""
    row = dict(zip(_LIGHT, columns, strict=True))
    row["metadata"] = loads(row["metadata"]) if row["metadata"] is not None else None
    row["tags"] = loads(row["tags"]) if row["tags"] is not None else None
    row["error"] = True if row["error"] else None
    for name in _REALS:
        if row[name] is not None:
            row[name] = float(row[name])
    return row


def offset(rows: list[dict[str, Any]]) -> str:
    """The shape's offset for these rows (`0_0` for none): newest update in ms, then a CRC
    of every row's version."""
    if not rows:
        return EMPTY_OFFSET
    newest = max(r["updated_at"] for r in rows)
    if len(rows) == 1:
        crc = version(rows[0])
    else:
        crc = zlib.crc32(repr(sorted((r["id"], version(r)) for r in rows)).encode())
    return f"{int(newest * 1000)}_{crc}"


def offset_floor(text: str) -> float:
    """The newest update (epoch seconds) an offset the client echoes saw; 0 if it is not one
    of ours."""
    first = text.split("_", 1)[0]
    try:
        ms = float(first)
    except ValueError:
        return 0.0
    return ms / 1000 if ms > 0 else 0.0


def change(row: dict[str, Any], operation: str, skip: frozenset[str]) -> dict[str, Any]:
    """One change message: the whole row (re-sending a full row is idempotent)."""
    return {
        "key": f'"public"."TaskRun"/"{row["id"]}"',
        "value": value(row, skip),
        "headers": {"operation": operation},
    }


def body(changes: list[tuple[dict[str, Any], str]], skip: frozenset[str]) -> list[Any]:
    """A response body: the change messages, then `up-to-date` (the only control message
    that makes the client emit what it has)."""
    return [*(change(row, op, skip) for row, op in changes), UP_TO_DATE]
