"""Where SDK calls go. Inside `trigger_do.local(...)`: that engine. With an API URL
(`TRIGGER_API_URL` or `configure(api_url=...)`): a server over HTTP. Otherwise: the
embedded database (`TRIGGER_DO_DB`, default `.trigger-do/trigger.db`), directly."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..producer.producer import TriggerRequest
from ..shared.current import current_run, outside_run_options
from ..task import (
    Task,
    as_batch_item,
    batch_trigger_and_wait_of,
    batch_trigger_of,
    set_client_resolver,
)
from .handles import BatchHandle, Client, RunHandle


class EmbeddedClient:
    """SDK calls straight into an engine on a local database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def trigger(
        self, task_id: str, payload: Any, options: dict[str, Any], *, task: Task[Any] | None = None
    ) -> RunHandle:
        done = await self.engine.trigger(TriggerRequest(task_id, payload, options))
        return RunHandle(self, done.id, cached=done.cached)

    async def batch_trigger(
        self,
        items: list[tuple[str, Any]],
        *,
        idempotency_key: str | None = None,
        tasks: dict[str, Task[Any]] | None = None,
    ) -> BatchHandle:
        requests = []
        for task_id, item in items:
            payload, options = as_batch_item(item)
            requests.append(TriggerRequest(task_id, payload, options))
        done = await self.engine.batch_trigger(requests, idempotency_key=idempotency_key)
        runs = [RunHandle(self, r.id, cached=r.cached) for r in done.runs]
        return BatchHandle(self, done.id, runs, cached=done.cached)

    async def get_run(self, run_id: str) -> dict[str, Any]:
        return await self.engine.get_run(run_id)

    async def get_runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        return await self.engine.get_runs(run_ids)

    async def get_states(self, run_ids: list[str]) -> dict[str, list[Any]]:
        return await self.engine.get_states(run_ids)

    async def get_logs(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return await self.engine.logs(run_id, after)

    async def cancel(self, run_id: str) -> bool:
        res = await self.engine.cancel(run_id)
        return bool(res["canceled"])


_override: list[Client] = []
_configured: dict[str, Any] = {}
_embedded: dict[Path, EmbeddedClient] = {}


def configure(
    *, api_url: str | None = None, secret_key: str | None = None, db: str | None = None
) -> None:
    """Point SDK calls at a server (`api_url` + `secret_key`) or at a database file (`db`)."""
    _configured.clear()
    _configured.update(
        {k: v for k, v in {"api_url": api_url, "secret_key": secret_key, "db": db}.items() if v}
    )


# The client of one request or batch on Workers, where one isolate serves several at once: a
# context variable, so that tasks started inside the scope (a streaming response's body, which
# outlives the handler's return) keep it and concurrent requests never see each other's.
_scoped: ContextVar[Client | None] = ContextVar("trigger_do_client", default=None)


@contextlib.contextmanager
def client_scope(client: Client) -> Iterator[None]:
    """SDK calls made in this context (and in tasks started from it) go to `client`."""
    token = _scoped.set(client)
    try:
        yield
    finally:
        _scoped.reset(token)


def push_client(client: Client) -> None:
    _override.append(client)


def pop_client(client: Client) -> None:
    if client in _override:
        _override.remove(client)


def embedded_client(db: str | os.PathLike[str] | None = None) -> EmbeddedClient:
    from ..platform.local.platform import default_db_path, open_local

    path = Path(db).resolve() if db else default_db_path().resolve()
    client = _embedded.get(path)
    if client is None:
        platform, _ = open_local(path)
        client = _embedded[path] = EmbeddedClient(Engine(platform))
    return client


def current_client() -> Client:
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    if _override:
        return _override[-1]
    api_url = _configured.get("api_url") or os.environ.get("TRIGGER_API_URL")
    if api_url:
        from .remote import RemoteClient

        key = _configured.get("secret_key") or os.environ.get("TRIGGER_SECRET_KEY") or ""
        remote: Client = RemoteClient(api_url, key)
        return remote
    return embedded_client(_configured.get("db") or os.environ.get("TRIGGER_DO_DB"))


set_client_resolver(current_client)  # a task's own trigger calls go where this says


class TasksApi:
    """Trigger by id, without importing the task: `trigger_do.tasks.trigger("id", payload)`."""

    async def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        run = current_run.get()  # inside a run: a child of it (waits/)
        options = run.child_options(options) if run else outside_run_options(options)
        return await current_client().trigger(task_id, payload, options)

    async def trigger_and_wait(
        self,
        task_id: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        key: str | None = None,
        **options: Any,
    ) -> Any:
        """As `Task.trigger_and_wait`: inside an async task the caller suspends."""
        run = current_run.get()
        if run is not None:

            async def start(extra: list[dict[str, Any]], _: str | None) -> list[tuple[str, bool]]:
                made = await current_client().trigger(task_id, payload, extra[0])
                return [(made.id, made.is_cached)]

            return (await run.wait_children("run", 1, [options], start, key))[0]
        handle = await self.trigger(task_id, payload, **options)
        return await handle.result(timeout=timeout)

    async def batch_trigger(
        self, task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> BatchHandle:
        return await batch_trigger_of(task_id, items, idempotency_key, None)

    async def batch_trigger_and_wait(
        self,
        task_id: str,
        items: Iterable[Any],
        *,
        timeout: float | None = None,
        key: str | None = None,
    ) -> list[Any]:
        """As `Task.batch_trigger_and_wait`: inside an async task the caller suspends."""
        return await batch_trigger_and_wait_of(task_id, items, timeout, key, None)

    async def retrieve(self, run_id: str) -> Any:
        return await RunHandle(current_client(), run_id).status()

    def handle(self, run_id: str) -> RunHandle:
        """A handle to an existing run, by id."""
        return RunHandle(current_client(), run_id)

    def trigger_sync(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        from .sync import run_sync

        return run_sync(self.trigger(task_id, payload, **options))

    def trigger_and_wait_sync(
        self, task_id: str, payload: Any = None, *, timeout: float | None = None, **options: Any
    ) -> Any:
        from .sync import run_sync

        return run_sync(self.trigger_and_wait(task_id, payload, timeout=timeout, **options))

    def batch_trigger_sync(
        self, task_id: str, items: Iterable[Any], *, idempotency_key: str | None = None
    ) -> BatchHandle:
        from .sync import run_sync

        return run_sync(self.batch_trigger(task_id, items, idempotency_key=idempotency_key))


tasks = TasksApi()
