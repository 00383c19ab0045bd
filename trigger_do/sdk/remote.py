"""Remote SDK mode: every SDK call goes over HTTP to a trigger.do server
(`TRIGGER_API_URL` + `TRIGGER_SECRET_KEY`, or `configure(api_url=..., secret_key=...)`),
raising the same exceptions as embedded mode."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..errors import (
    ApiError,
    AuthenticationError,
    PayloadTooLargeError,
    PayloadValidationError,
    RunNotFoundError,
    TriggerDoError,
    UnknownTaskError,
)
from ..shared.options import TriggerOptions, parse_options
from ..shared.serialization import dumps, to_jsonable
from ..task import Task, as_batch_item
from .handles import BatchHandle, RunHandle

BULK = 1000  # ids per bulk read
RETRIES = 3  # connection failures before giving up (nothing was sent)
STREAM_AT = 1000  # a batch over this many items streams its items (v4's two-phase batch)
STREAM_LINES = 1000  # NDJSON lines per part of that stream

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


def _pool(base_url: str, key: str, timeout: float) -> Any:
    """One `httpx.AsyncClient` per event loop and server (connections are loop-bound)."""
    import httpx

    loop = asyncio.get_running_loop()
    clients = _pools.setdefault(loop, {})
    client = clients.get((base_url, key))
    if client is None or client.is_closed:
        client = clients[(base_url, key)] = httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": f"Bearer {key}", "x-trigger-source": "trigger-do-python"},
            timeout=timeout,
        )
    return client


def encode_options(opts: TriggerOptions) -> dict[str, Any]:
    """Validated options in the API's (Trigger.dev's) names."""
    out: dict[str, Any] = {}
    if opts.idempotency_key:
        out["idempotencyKey"] = opts.idempotency_key
    if opts.idempotency_key_ttl is not None:
        out["idempotencyKeyTTL"] = opts.idempotency_key_ttl
    if opts.delay is not None:
        out["delay"] = opts.delay.isoformat() if isinstance(opts.delay, datetime) else opts.delay
    if opts.ttl is not None:
        out["ttl"] = opts.ttl
    if opts.tags:
        out["tags"] = list(opts.tags)
    if opts.metadata is not None:
        out["metadata"] = to_jsonable(opts.metadata)
    if opts.max_attempts is not None:
        out["maxAttempts"] = opts.max_attempts
    if opts.max_duration is not None:
        out["maxDuration"] = opts.max_duration
    if opts.concurrency_key:
        out["concurrencyKey"] = opts.concurrency_key
    if opts.queue:
        out["queue"] = {"name": opts.queue}
    if opts.parent_run_id:  # a child of that run (the server works out its root and depth)
        out["parentRunId"] = opts.parent_run_id
    if opts.resume_parent is not None:
        out["resumeParentOnCompletion"] = opts.resume_parent
    return out


def _jsonable(payload: Any) -> Any:
    try:
        return to_jsonable(payload)
    except TypeError as exc:
        raise PayloadValidationError(f"payload is not JSON-serializable: {exc}") from None


def _with_message(exc: TriggerDoError, message: str) -> TriggerDoError:
    exc.args = (message,)
    return exc


def error_from(status: int, body: Any) -> TriggerDoError:
    """The exception embedded mode would have raised, from an error response."""
    body = body if isinstance(body, dict) else {}
    message = str(body.get("error") or f"HTTP {status}")
    code = body.get("code")
    if status == 401:
        return AuthenticationError(status, message)
    if status == 404 and code == "unknown_task":
        return _with_message(UnknownTaskError(str(body.get("taskId"))), message)
    if status == 404 and code == "run_not_found":
        return _with_message(RunNotFoundError(str(body.get("runId"))), message)
    if status == 413 and "size" in body:
        exc = PayloadTooLargeError(int(body["size"]), int(body["limit"]))
        return _with_message(exc, message)
    if status == 422:
        return PayloadValidationError(message, errors=body.get("errors") or [])
    return ApiError(status, message)


def run_ref_from_api(schedule: dict[str, Any] | None) -> dict[str, Any] | None:
    from ..schedules.shapes import run_ref_from_api as convert

    return convert(schedule)


def row_from(api: dict[str, Any]) -> dict[str, Any]:
    """A run as the engine's row shape, from a retrieve response (its `triggerDo` part)."""
    x = api.get("triggerDo") or {}
    return {
        "id": api["id"],
        "task": api["taskIdentifier"],
        "state": x["state"],
        "attempt": x.get("attempt") or 0,
        "progress": x.get("progress"),
        "checkpoints": x.get("checkpoints") or [],
        "metadata": api.get("metadata") or {},
        "tags": api.get("tags") or [],
        "error": x.get("error"),
        "payload": api.get("payload"),
        "output": api.get("output"),
        "created_at": x["createdAt"],
        "updated_at": x["updatedAt"],
        "started_at": x.get("startedAt"),
        "finished_at": x.get("finishedAt"),
        "delay_until": x.get("delayUntil"),
        "expires_at": x.get("expiresAt"),
        "batch_id": api.get("batchId"),
        "idempotency_key": x.get("idempotencyKey"),
        "options": {
            "schedule": run_ref_from_api(api.get("schedule")),
            "event": api.get("event"),
            "parent_run_id": x.get("parentRunId"),
            "root_run_id": x.get("rootRunId"),
        },
    }


class RemoteClient:
    """The SDK's `Client` over HTTP."""

    def __init__(self, api_url: str, secret_key: str, *, timeout: float = 60.0) -> None:
        if not api_url.startswith(("http://", "https://")):
            raise TriggerDoError(f"TRIGGER_API_URL must be an http(s) URL, not {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.secret_key = secret_key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<RemoteClient {self.api_url}>"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        http = _pool(self.api_url, self.secret_key, self.timeout)
        content = kwargs.pop("content", None)
        for attempt in range(RETRIES + 1):
            if callable(content):  # a streamed body: a fresh stream for each attempt
                kwargs["content"] = content()
            elif content is not None:
                kwargs["content"] = content
            try:
                resp = await http.request(method, path, **kwargs)
                break
            except httpx.ConnectError as exc:  # nothing was sent: safe to try again
                if attempt == RETRIES:
                    raise TriggerDoError(
                        f"cannot reach the trigger.do server at {self.api_url}: {exc}"
                    ) from None
                await asyncio.sleep(0.2 * 2**attempt)
            except httpx.HTTPError as exc:
                raise TriggerDoError(f"request to {self.api_url}{path} failed: {exc!r}") from None
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:500]}
        if resp.status_code >= 400:
            raise error_from(resp.status_code, body)
        return body

    # --- the Client protocol -----------------------------------------------------------------

    async def trigger(
        self, task_id: str, payload: Any, options: dict[str, Any], *, task: Task[Any] | None = None
    ) -> RunHandle:
        opts = encode_options(parse_options(options))
        body = {"payload": _jsonable(payload), "options": opts}
        done = await self._call(
            "POST", f"/api/v1/tasks/{quote(task_id, safe='')}/trigger", json=body
        )
        return RunHandle(self, done["id"], cached=bool(done.get("isCached")))

    async def batch_trigger(
        self,
        items: list[tuple[str, Any]],
        *,
        idempotency_key: str | None = None,
        tasks: dict[str, Task[Any]] | None = None,
    ) -> BatchHandle:
        encoded: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for i, (task_id, item) in enumerate(items):
            payload, options = as_batch_item(item)
            try:
                opts = encode_options(parse_options(options))
                encoded.append({"task": task_id, "payload": _jsonable(payload), "options": opts})
            except PayloadValidationError as exc:
                sub = exc.errors or [{"loc": "$", "msg": str(exc)}]
                errors += [{"index": i, **e} for e in sub]
        if errors:
            raise PayloadValidationError.for_batch(errors)
        if len(encoded) > STREAM_AT:
            return await self._stream_batch(encoded, idempotency_key)
        body: dict[str, Any] = {"items": encoded}
        if idempotency_key:
            body["idempotencyKey"] = idempotency_key
        done = await self._call("POST", "/api/v2/tasks/batch", json=body)
        runs = [RunHandle(self, r["id"], cached=bool(r.get("isCached"))) for r in done["runs"]]
        return BatchHandle(self, done["id"], runs, cached=bool(done.get("isCached")))

    async def _stream_batch(
        self, encoded: list[dict[str, Any]], idempotency_key: str | None
    ) -> BatchHandle:
        """A large batch as v4's client sends one: the batch first, then its items as an
        NDJSON stream the server writes while it arrives (a resend after a failure skips
        the items already written); the run ids are read back from the batch."""
        create: dict[str, Any] = {"runCount": len(encoded)}
        if idempotency_key:
            create["idempotencyKey"] = idempotency_key
        made = await self._call("POST", "/api/v3/batches", json=create)
        batch_id = quote(made["id"], safe="")
        cached = bool(made.get("isCached"))
        done = cached and (await self._call("GET", f"/api/v2/batches/{batch_id}"))["status"]
        if done != "COMPLETED":  # a new batch, or one a failed call left unfinished

            async def lines() -> AsyncIterator[bytes]:
                for start in range(0, len(encoded), STREAM_LINES):
                    part = encoded[start : start + STREAM_LINES]
                    yield b"".join(
                        dumps({"index": start + i, **item}).encode() + b"\n"
                        for i, item in enumerate(part)
                    )

            await self._call(
                "POST",
                f"/api/v3/batches/{batch_id}/items",
                content=lines,  # a new stream for each attempt
                headers={"content-type": "application/x-ndjson"},
            )
        found = await self._call("GET", f"/api/v2/batches/{batch_id}")
        runs = [RunHandle(self, r, cached=cached) for r in found["runs"]]
        return BatchHandle(self, made["id"], runs, cached=cached)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return row_from(await self._call("GET", f"/api/v3/runs/{quote(run_id, safe='')}"))

    async def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(run_ids), BULK):
            chunk = run_ids[start : start + BULK]
            got = await self._call("POST", "/api/v1/runs/_retrieve", json={"ids": chunk})
            out.update({r["id"]: row_from(r) for r in got["data"]})
        return out

    async def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for start in range(0, len(run_ids), BULK):
            chunk = run_ids[start : start + BULK]
            got = await self._call("POST", "/api/v1/runs/_states", json={"ids": chunk})
            out.update(got["states"])
        return out

    async def get_logs(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        got = await self._call(
            "GET", f"/api/v1/runs/{quote(run_id, safe='')}/logs", params={"after": after}
        )
        return list(got["data"])

    async def cancel(self, run_id: str) -> bool:
        got = await self._call("POST", f"/api/v2/runs/{quote(run_id, safe='')}/cancel")
        return bool(got.get("canceled"))
