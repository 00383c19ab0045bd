"""Where a load run goes: the embedded runtime (worker processes on a fresh SQLite file)
or a running server through its HTTP API (`--target URL`).

A driver submits items, counts finished runs, reads every run's row back at the end and,
when it owns the workers, reports their peak RSS and where their execution traces are.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .measure import FINAL, RunRecord
from .scenarios import Item
from .tasks import TRACE_ENV

CHUNK = 5000  # ids per read
HTTP_BATCH = 1000  # items per batch request over HTTP
HTTP_BULK = 1000  # ids per bulk read over HTTP (the API's maximum)


class Driver(Protocol):
    label: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, items: Sequence[Item], *, batch: bool) -> list[str]: ...
    async def finished(self) -> int: ...
    async def collect(self, ids: Sequence[str], keys: dict[str, str | None]) -> list[RunRecord]: ...
    def rss(self) -> dict[str, Any] | None: ...
    def trace_lines(self) -> list[str] | None: ...


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `/proc/PID/status` field in KiB (VmRSS now, VmHWM peak), None where unavailable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class EmbeddedDriver:
    """The embedded runtime: `workers` worker processes on a database under a temporary
    folder (or `db`), serving `load.tasks`; triggers go straight into its engine."""

    def __init__(self, workers: int, db: str | None = None, **runtime_options: Any) -> None:
        self.workers = workers
        self.label = f"embedded ({workers} workers)"
        self._tmp = Path(tempfile.mkdtemp(prefix="trigger-do-load-"))
        self.db = Path(db) if db else self._tmp / "load.db"
        self.trace_dir = self._tmp / "trace"
        self.trace_dir.mkdir()
        self.options = runtime_options
        self.runtime: Any = None
        self._peak: dict[int, int] = {}

    async def start(self) -> None:
        from trigger_do.platform.local.runtime import LocalRuntime

        self.runtime = LocalRuntime(
            "load.tasks",
            self.db,
            workers=self.workers,
            env={TRACE_ENV: str(self.trace_dir)},
            **self.options,
        )
        await self.runtime.start()

    async def stop(self) -> None:
        if self.runtime is not None:
            self.sample_rss()
            await self.runtime.stop()

    def cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def submit(self, items: Sequence[Item], *, batch: bool) -> list[str]:
        from trigger_do.producer.producer import TriggerRequest

        requests = [TriggerRequest(i.task, i.payload) for i in items]
        engine = self.runtime.engine
        if batch:
            done = await engine.batch_trigger(requests)
        else:  # separate triggers, written together (what a busy web app's requests add up to)
            done = await engine.producer.trigger_many(requests, batch=False)
        return [r.id for r in done.runs]

    async def finished(self) -> int:
        rows = self.runtime.sql.exec("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL")
        return int(rows[0][0])

    async def collect(self, ids: Sequence[str], keys: dict[str, str | None]) -> list[RunRecord]:
        out: list[RunRecord] = []
        for i in range(0, len(ids), CHUNK):
            rows = self.runtime.sql.exec(
                "SELECT id, task, state, attempt, created_at, started_at, finished_at FROM runs "
                "WHERE id IN (SELECT value FROM json_each(?))",
                json.dumps(list(ids[i : i + CHUNK])),
            )
            out += [
                RunRecord(rid, task, state, attempt, created, started, finished, keys.get(rid))
                for rid, task, state, attempt, created, started, finished in rows
            ]
        return out

    def sample_rss(self) -> None:
        if self.runtime is None:
            return
        for p in self.runtime.procs:
            peak = proc_status_kib(p.pid, "VmHWM")
            if peak is not None:
                self._peak[p.pid] = max(self._peak.get(p.pid, 0), peak)

    def rss(self) -> dict[str, Any] | None:
        self.sample_rss()
        driver = proc_status_kib(os.getpid(), "VmHWM")
        workers = sorted(self._peak.values())
        return {
            "worker_peak_mib": [round(k / 1024, 1) for k in workers],
            "worker_peak_max_mib": round(max(workers) / 1024, 1) if workers else None,
            "driver_peak_mib": round(driver / 1024, 1) if driver else None,
        }

    def trace_lines(self) -> list[str] | None:
        lines: list[str] = []
        for f in sorted(self.trace_dir.glob("*.tsv")):
            lines += f.read_text(encoding="utf-8").splitlines()
        return lines


class HttpDriver:
    """A running trigger.do server (`trigger-do serve --tasks load.tasks`), through its API.
    One batch (`fanout`, `per-org`, `mixed`) goes as the SDK's remote client sends it: up
    to 1,000 items in one POST /api/v2/tasks/batch, a larger one streamed (v4's two-phase
    batch: POST /api/v3/batches, then its items as NDJSON to /api/v3/batches/{id}/items,
    written while they arrive), so the accept time is the streamed intake's. Paced
    scenarios send each tick's runs as one POST /api/v2/tasks/batch. States and rows come
    from the bulk reads POST /api/v1/runs/_states and /_retrieve."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.label = f"server {self.url}"
        self.client: Any = None
        self._pending: list[str] = []
        self._done = 0
        self.intake = "none yet"  # how the last submission went: streamed or chunked

    async def start(self) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - httpx ships with the api/load extras
            raise SystemExit("--target needs httpx: pip install 'trigger-do[load]'") from None
        self.client = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=120.0,
            limits=httpx.Limits(max_connections=16),
        )
        r = await self.client.get("/healthz")
        r.raise_for_status()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    def cleanup(self) -> None:
        pass

    async def _post(self, path: str, body: Any) -> Any:
        r = await self.client.post(path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{path}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    async def submit(self, items: Sequence[Item], *, batch: bool) -> list[str]:
        if batch:  # one batch, as the SDK sends it (streamed over STREAM_AT items)
            from trigger_do.sdk.remote import STREAM_AT, RemoteClient

            client = RemoteClient(self.url, self.key, timeout=600.0)
            done = await client.batch_trigger([(i.task, i.payload) for i in items])
            self.intake = (
                "streamed (POST /api/v3/batches + NDJSON items)"
                if len(items) > STREAM_AT
                else "one POST /api/v2/tasks/batch"
            )
            ids = [r.id for r in done.runs]
            self._pending += ids
            return ids
        self.intake = f"POST /api/v2/tasks/batch per tick (up to {HTTP_BATCH:,} items)"
        chunks = [items[i : i + HTTP_BATCH] for i in range(0, len(items), HTTP_BATCH)]
        sem = asyncio.Semaphore(4)

        async def send(chunk: Sequence[Item]) -> list[str]:
            body = {"items": [{"task": i.task, "payload": i.payload} for i in chunk]}
            async with sem:
                got = await self._post("/api/v2/tasks/batch", body)
            return [r["id"] for r in got["runs"]]

        ids = [i for part in await asyncio.gather(*(send(c) for c in chunks)) for i in part]
        self._pending += ids
        return ids

    async def finished(self) -> int:
        """Looks at up to 5,000 of the oldest unfinished runs per call."""
        look, rest = self._pending[:5000], self._pending[5000:]
        still: list[str] = []
        for i in range(0, len(look), HTTP_BULK):
            chunk = look[i : i + HTTP_BULK]
            states = (await self._post("/api/v1/runs/_states", {"ids": chunk}))["states"]
            still += [r for r in chunk if r not in states or states[r][0] not in FINAL]
        self._done += len(look) - len(still)
        self._pending = still + rest
        return self._done

    async def collect(self, ids: Sequence[str], keys: dict[str, str | None]) -> list[RunRecord]:
        out: list[RunRecord] = []
        for i in range(0, len(ids), HTTP_BULK):
            got = await self._post("/api/v1/runs/_retrieve", {"ids": list(ids[i : i + HTTP_BULK])})
            for run in got["data"]:
                t = run["triggerDo"]
                out.append(
                    RunRecord(
                        run["id"],
                        run["taskIdentifier"],
                        t["state"],
                        t["attempt"],
                        t["createdAt"],
                        t["startedAt"],
                        t["finishedAt"],
                        key=keys.get(run["id"]),
                    )
                )
        return out

    def rss(self) -> dict[str, Any] | None:
        return None  # the server's processes are not ours to read

    def trace_lines(self) -> list[str] | None:
        return None
