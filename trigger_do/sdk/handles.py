"""Run and batch handles: status, result, logs, cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import RunFailedError, RunNotFoundError
from ..shared.checkpoints import Checkpoint
from ..shared.options import user_key
from ..shared.states import FINAL_STATES, RunState
from .sync import run_sync

if TYPE_CHECKING:
    from ..schedules.event import RunSchedule

POLL_START, POLL_MAX = 0.005, 0.25


class Client(Protocol):
    """Where SDK calls go: an engine on a database (`EmbeddedClient`) or a server over HTTP
    (`RemoteClient`); `sdk/client.py` picks one. (`task`: the `Task` when the caller has it.)"""

    async def trigger(
        self, task_id: str, payload: Any, options: dict[str, Any], *, task: Any = None
    ) -> RunHandle: ...

    async def batch_trigger(
        self,
        items: list[tuple[str, Any]],
        *,
        idempotency_key: str | None = None,
        tasks: dict[str, Any] | None = None,
    ) -> BatchHandle: ...

    async def get_run(self, run_id: str) -> dict[str, Any]: ...

    async def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    async def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]: ...

    async def get_logs(self, run_id: str, after: int = 0) -> list[dict[str, Any]]: ...

    async def cancel(self, run_id: str) -> bool: ...



def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


@dataclass(frozen=True)
class LogRecord:
    seq: int
    level: str
    message: str
    at: datetime
    attempt: int
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogRecord:
        at = d["at"]
        when = datetime.fromisoformat(at) if isinstance(at, str) else _dt(at)
        return cls(
            d["seq"],
            d["level"],
            d["message"],
            when or datetime.now(UTC),
            d["attempt"],
            d.get("extras") or {},
        )


@dataclass(frozen=True)
class RunStatus:
    """A snapshot of a run."""

    id: str
    task_id: str
    state: RunState
    attempt: int
    progress: float | None
    checkpoints: list[Checkpoint]
    metadata: dict[str, Any]
    tags: list[str]
    error: dict[str, Any] | None
    output: Any
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    delay_until: datetime | None
    expires_at: datetime | None
    batch_id: str | None = None
    idempotency_key: str | None = None
    schedule: RunSchedule | None = None  # the schedule that started it (schedules/)
    event: dict[str, Any] | None = None  # the event that started it: `{id, name, source?}`
    parent_run_id: str | None = None  # the run that triggered it from inside a task (waits/)
    root_run_id: str | None = None  # the top of its tree of runs

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def api_status(self) -> str:
        return self.state.api_status

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunStatus:
        key = row.get("idempotency_key")
        return cls(
            id=row["id"],
            task_id=row["task"],
            state=RunState(row["state"]),
            attempt=row["attempt"],
            progress=row.get("progress"),
            checkpoints=[Checkpoint.from_record(c) for c in row.get("checkpoints") or []],
            metadata=row.get("metadata") or {},
            tags=row.get("tags") or [],
            error=row.get("error"),
            output=row.get("output"),
            created_at=_dt(row["created_at"]),  # type: ignore[arg-type]
            updated_at=_dt(row["updated_at"]),  # type: ignore[arg-type]
            started_at=_dt(row.get("started_at")),
            finished_at=_dt(row.get("finished_at")),
            delay_until=_dt(row.get("delay_until")),
            expires_at=_dt(row.get("expires_at")),
            batch_id=row.get("batch_id"),
            idempotency_key=user_key(row["task"], key),
            schedule=_schedule_of(row),
            event=(row.get("options") or {}).get("event"),
            parent_run_id=(row.get("options") or {}).get("parent_run_id"),
            root_run_id=(row.get("options") or {}).get("root_run_id"),
        )


def _schedule_of(row: dict[str, Any]) -> RunSchedule | None:
    from ..schedules.event import RunSchedule  # (the schedules package imports this module)

    return RunSchedule.of((row.get("options") or {}).get("schedule"))


def _failed(row: dict[str, Any]) -> RunFailedError:
    return RunFailedError(row["id"], row["state"], row.get("error"))


class RunHandle:
    def __init__(self, client: Client, run_id: str, *, cached: bool = False) -> None:
        self._client = client
        self.id = run_id
        self.is_cached = cached

    def __repr__(self) -> str:
        return f"<RunHandle {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    async def status(self) -> RunStatus:
        return RunStatus.from_row(await self._client.get_run(self.id))

    async def result(self, timeout: float | None = None) -> Any:
        """The run's output once it completes. Raises `RunFailedError` if it ended any
        other way, `TimeoutError` if `timeout` seconds pass first."""
        row = (await wait_for_runs(self._client, [self.id], timeout))[self.id]
        if row["state"] != RunState.COMPLETED:
            raise _failed(row)
        return row["output"]

    async def logs(self, *, follow: bool = True, poll: float = 0.05) -> AsyncIterator[LogRecord]:
        """Log records so far, then (with `follow`) new ones live until the run ends."""
        after = 0
        while True:
            batch = await self._client.get_logs(self.id, after)
            for rec in batch:
                after = rec["seq"]
                yield LogRecord.from_dict(rec)
            if batch:
                continue
            if not follow:
                return
            state = (await self._client.get_states([self.id])).get(self.id)
            if state is None or state[0] in FINAL_STATES:
                for rec in await self._client.get_logs(self.id, after):  # the last ones
                    after = rec["seq"]
                    yield LogRecord.from_dict(rec)
                return
            await asyncio.sleep(poll)

    async def cancel(self) -> bool:
        """Cancel the run; False if it had already finished."""
        return await self._client.cancel(self.id)

    def status_sync(self) -> RunStatus:
        return run_sync(self.status())

    def result_sync(self, timeout: float | None = None) -> Any:
        return run_sync(self.result(timeout))

    def cancel_sync(self) -> bool:
        return run_sync(self.cancel())


class BatchHandle:
    def __init__(
        self, client: Client, batch_id: str, runs: list[RunHandle], *, cached: bool = False
    ) -> None:
        self._client = client
        self.id = batch_id
        self.runs = runs
        self.is_cached = cached

    def __repr__(self) -> str:
        return f"<BatchHandle {self.id} runs={len(self.runs)}>"

    def __len__(self) -> int:
        return len(self.runs)

    async def results(self, timeout: float | None = None) -> list[Any]:
        """Every run's output, in input order; raises `RunFailedError` for the first run
        (in input order) that did not complete."""
        rows = await wait_for_runs(self._client, [r.id for r in self.runs], timeout)
        out = []
        for r in self.runs:
            row = rows[r.id]
            if row["state"] != RunState.COMPLETED:
                raise _failed(row)
            out.append(row["output"])
        return out

    def results_sync(self, timeout: float | None = None) -> list[Any]:
        return run_sync(self.results(timeout))


async def wait_for_runs(
    client: Client, run_ids: list[str], timeout: float | None
) -> dict[str, dict[str, Any]]:
    """Poll (with backoff) until every run is final; return their rows."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(dict.fromkeys(run_ids))
    delay = POLL_START
    while pending:
        states = await client.get_states(pending)
        missing = [r for r in pending if r not in states]
        if missing:
            raise RunNotFoundError(missing[0])
        pending = [r for r in pending if states[r][0] not in FINAL_STATES]
        if not pending:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{len(pending)} run(s) not finished after {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)
    return await client.get_runs(list(dict.fromkeys(run_ids)))
