"""Wait tokens as the engine serves them (`Engine.tokens`): checking requests, routing to the
token store's shards, timeouts, and the completion hook.

The completion hook is how a waiting run resumes. Whatever waits on a token registers a
waitpoint id with `wait_on` (a run's waits do, `runs/index_waits.py`'s `run_id:seq` ids);
when the token completes, by any road (`complete`, the callback URL, its timeout), every
hook in `hooks` is awaited with one `TokenCompletion` per waiter: "complete waitpoint <id>
with <output>". Only after every hook returned are the waiters forgotten; a delivery cut
short is made again by `redeliver` (housekeeping), so a hook must treat a repeat as a no-op
(the waits' `complete_items` does: one item per waitpoint, written once). A waiter that
registers after the token completed gets its completion back from `wait_on` at once.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import heapq
import hmac
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import (
    InvalidDurationError,
    InvalidWaitTokenError,
    PayloadTooLargeError,
    WaitTokenNotFoundError,
)
from ..ports import Platform, Remote
from ..shared.durations import MAX_DURATION_SECONDS, parse_duration
from ..shared.ids import new_sharded_id, shard_of
from ..shared.serialization import dumps, loads
from .events import check_match, event_output, matches
from .store import STATUSES, TokenStoreObject

MAX_KEY = 2048  # characters of an idempotency key (the official client's own bound)
MAX_TAGS = 10
MAX_TAG = 128
MAX_OUTPUT = 1_000_000  # bytes of a token's output (JSON text), inline in its row
DEFAULT_KEY_TTL = 30 * 86400.0  # an idempotency key lives 30 days unless told otherwise
PREFIX = "waitpoint"
KEY_FILE = "secret-key"  # beside the database: the key `trigger-do dev` serves (api/keys.py)
API_URL_FILE = "api-url"  # beside the database: where `trigger-do dev` serves it


@dataclass(frozen=True)
class TokenCompletion:
    """ "Complete waitpoint `waitpoint` with this": a token's outcome, for one waiter.
    `output` is JSON text; `ok` false means it timed out (`output` is then the
    TRIGGER_WAITPOINT_TIMEOUT error)."""

    token_id: str
    waitpoint: str
    ok: bool
    output: str | None

    def value(self) -> Any:
        return loads(self.output) if self.output is not None else None


Hook = Callable[[list[TokenCompletion]], Awaitable[None]]
EventLookup = Callable[[str, float], Awaitable[list[dict[str, Any]]]]


def callback_hash(secret_key: str, token_id: str) -> str:
    """The callback URL's last segment: hex HMAC-SHA256 of the token id under the secret
    key. Whoever holds the URL may complete that one token, and nothing else."""
    return hmac.new(secret_key.encode(), token_id.encode(), hashlib.sha256).hexdigest()


def callback_path(secret_key: str, token_id: str) -> str:
    return f"/api/v1/waitpoints/tokens/{token_id}/callback/{callback_hash(secret_key, token_id)}"


def check_callback(secret_key: str, token_id: str, given: str) -> bool:
    """Whether `given` is the token's callback hash (compared in constant time)."""
    if not given.isascii() or not token_id.isascii():
        return False
    return hmac.compare_digest(callback_hash(secret_key, token_id), given.lower())


def record_api_url(db_path: Path, url: str) -> None:
    """Note where a server serves the database at `db_path`, so that tokens made straight
    into it (embedded) get callback URLs that reach that server."""
    try:
        (Path(db_path).parent / API_URL_FILE).write_text(url + "\n")
    except OSError:  # a read-only folder: embedded tokens get a path alone
        pass


def _period(value: Any, name: str, now: float) -> float:
    """`value` as an instant: a duration from now ("1h", "3d", seconds) or a date."""
    if isinstance(value, datetime):
        when = value.timestamp()
    elif isinstance(value, str) and ("T" in value or "-" in value[1:]):
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            bad = f"{name}: not a duration or a date: {value[:60]!r}"
            raise InvalidWaitTokenError(bad) from None
    else:
        try:
            when = now + parse_duration(value)
        except InvalidDurationError as exc:
            raise InvalidWaitTokenError(f"{name}: {exc}") from None
    if not math.isfinite(when) or when - now > MAX_DURATION_SECONDS:
        raise InvalidWaitTokenError(f"{name}: more than 10 years ahead")
    return when


def check_tags(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InvalidWaitTokenError("tags must be a string or a list of strings")
    if len(tags) > MAX_TAGS:
        raise InvalidWaitTokenError(f"at most {MAX_TAGS} tags, not {len(tags)}")
    for t in tags:
        if not t or len(t) > MAX_TAG:
            raise InvalidWaitTokenError(f"a tag is 1 to {MAX_TAG} characters: {t[:40]!r}")
    return list(dict.fromkeys(tags))


def output_text(data: Any) -> str:
    """A completion's data as the JSON text stored (413 past `MAX_OUTPUT`)."""
    text = dumps(data)
    if len(text.encode()) > MAX_OUTPUT:
        raise PayloadTooLargeError(len(text.encode()), MAX_OUTPUT)
    return text


class TokenService:
    """The engine's wait tokens (`Engine.tokens`)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.count = platform.index_shards
        ns = platform.objects(TokenStoreObject.KIND)
        self._shards = [Remote[TokenStoreObject](ns.get(f"shard-{i}")) for i in range(self.count)]
        self.hooks: list[Hook] = []
        # the events sent named `name` since a time, oldest first (`EventService.lookup`)
        self.lookup_events: EventLookup | None = None

    def now(self) -> float:
        return self.platform.clock.now()

    def on(self, token_id: str) -> Remote[TokenStoreObject]:
        return self._shards[shard_of(token_id, self.count)]

    def shard(self, n: int) -> Remote[TokenStoreObject]:
        return self._shards[n]

    # --- where a token's callback URL points -------------------------------------------------

    def _beside_db(self, name: str) -> str | None:
        """A file `trigger-do dev` keeps beside its database (`TRIGGER_DO_DB`), stripped."""
        db = self.platform.settings.get("TRIGGER_DO_DB")
        if not db:
            return None
        try:
            return (Path(db).parent / name).read_text().strip() or None
        except OSError:
            return None

    def secret_key(self) -> str | None:
        """The secret key callback URLs are signed with, outside an HTTP request (which
        knows its own): `TRIGGER_SECRET_KEY`, else the key `trigger-do dev` keeps beside
        its database."""
        return self.platform.settings.get("TRIGGER_SECRET_KEY") or self._beside_db(KEY_FILE)

    def url(self, token_id: str, base: str | None = None, secret_key: str | None = None) -> str:
        """The token's callback URL: under `base` (else `TRIGGER_PUBLIC_URL`, else
        `TRIGGER_API_URL`, else where `trigger-do dev` last served this database; else a path
        alone), signed with `secret_key` (else `secret_key()`; without any key, the
        authenticated complete path)."""
        settings = self.platform.settings
        base = (
            base
            or settings.get("TRIGGER_PUBLIC_URL")
            or settings.get("TRIGGER_API_URL")
            or self._beside_db(API_URL_FILE)
            or ""
        )
        key = secret_key or self.secret_key()
        if key is None:
            return f"{base.rstrip('/')}/api/v1/waitpoints/tokens/{token_id}/complete"
        return base.rstrip("/") + callback_path(key, token_id)

    # --- the API -----------------------------------------------------------------------------

    async def create(
        self,
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Any = None,
        timeout: Any = None,
        tags: Any = None,
    ) -> tuple[dict[str, Any], bool]:
        """A token (or, with a live `idempotency_key`, the one it names: `cached` True).
        `timeout`/`idempotency_key_ttl`: "30s", "1h", "3d", "4w", seconds, or a date."""
        now = self.now()
        spec: dict[str, Any] = {"tags": check_tags(tags)}
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= MAX_KEY:
                raise InvalidWaitTokenError(
                    f"idempotencyKey must be a string of 1 to {MAX_KEY} characters"
                )
            spec["idempotency_key"] = idempotency_key
            spec["idempotency_key_expires_at"] = (
                now + DEFAULT_KEY_TTL
                if idempotency_key_ttl is None
                else _period(idempotency_key_ttl, "idempotencyKeyTTL", now)
            )
        if timeout is not None:
            spec["timeout_at"] = _period(timeout, "timeout", now)
        spec["id"] = new_sharded_id(PREFIX, idempotency_key, self.count)
        res = await self.on(spec["id"])(TokenStoreObject.create, spec, now)
        token = dict(res["token"])
        if res["cached"] and token["status"] != "WAITING":
            await self.redeliver_token(token["id"])
        return token, bool(res["cached"])

    async def get(self, token_id: str) -> dict[str, Any]:
        found = await self.on(str(token_id))(TokenStoreObject.get, str(token_id))
        if found is None:
            raise WaitTokenNotFoundError(str(token_id))
        return found

    async def list(
        self,
        *,
        limit: int = 25,
        statuses: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        tags: Iterable[str] | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
        after: builtins.list[Any] | None = None,
        before: builtins.list[Any] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Newest first across the shards (merged on `(created_at, id)`); `after`/`before` a
        `[created_at, id]` cursor."""
        wanted = [s.upper() for s in statuses] if statuses else None
        if wanted and any(s not in STATUSES for s in wanted):
            bad = next(s for s in wanted if s not in STATUSES)
            raise InvalidWaitTokenError(f"status is one of {', '.join(STATUSES)}, not {bad!r}")
        args = (
            limit, wanted, idempotency_key, list(tags) if tags else None,
            created_from, created_to, after, before,
        )  # fmt: skip
        pages = await asyncio.gather(
            *(s(TokenStoreObject.list_tokens, *args) for s in self._shards)
        )
        merged = list(heapq.merge(*pages, key=lambda r: (r["created_at"], r["id"]), reverse=True))
        return merged[-limit:] if before is not None and after is None else merged[:limit]

    async def complete(self, token_id: str, data: Any) -> dict[str, Any]:
        """Complete a waiting token with `data` (a JSON value); a completed one stays as it
        is. Returns the token; its waiters are told (the hooks)."""
        return await self.complete_text(token_id, output_text(data))

    async def complete_text(self, token_id: str, output: str) -> dict[str, Any]:
        res = await self.on(str(token_id))(
            TokenStoreObject.complete, str(token_id), output, self.now()
        )
        if not res["found"]:
            raise WaitTokenNotFoundError(str(token_id))
        await self._deliver(res["token"], res["waiters"])
        return dict(res["token"])

    # --- the completion hook ----------------------------------------------------------------

    async def wait_on(self, token_id: str, waitpoint: str) -> TokenCompletion | None:
        """Record that `waitpoint` waits on the token. Returns its completion at once if the
        token is complete already (nothing recorded: the caller completes its waitpoint);
        else None, and the hooks will be told. `WaitTokenNotFoundError` if there is none."""
        shard = self.on(token_id)
        token = await shard(TokenStoreObject.add_waiter, token_id, waitpoint, self.now())
        if token is None:
            raise WaitTokenNotFoundError(token_id)
        if token["status"] == "WAITING":
            return None
        return _completion(token, waitpoint)

    async def _deliver(self, token: dict[str, Any], waiters: builtins.list[str]) -> int:
        if not waiters or not self.hooks:
            return 0
        done = [_completion(token, w) for w in waiters]
        for hook in self.hooks:
            await hook(done)
        await self.on(token["id"])(TokenStoreObject.delivered, [[token["id"], w] for w in waiters])
        return len(done)

    async def redeliver_token(self, token_id: str) -> int:
        token = await self.get(token_id)
        if token["status"] == "WAITING":
            return 0
        waiters = await self.on(token_id)(TokenStoreObject.waiters, token_id)
        return await self._deliver(token, waiters)

    async def redeliver(self, older_than: float = 60.0, limit: int = 500) -> int:
        """Housekeeping's safety net: tell the waiters of completed tokens whose delivery
        was cut short (recorded more than `older_than` seconds ago). Returns how many."""
        told = 0
        before = self.now() - older_than
        for shard in self._shards:
            for item in await shard(TokenStoreObject.undelivered, before, limit):
                told += await self._deliver(item["token"], item["waiters"])
        return told

    # --- waiting for an event (events.py) --------------------------------------------------

    def on_name(self, name: str) -> Remote[TokenStoreObject]:
        """The shard holding the event waits of event name `name`."""
        return self._shards[shard_of(f"event:{name}", self.count)]

    async def wait_for_event(
        self,
        name: str,
        *,
        match: dict[str, Any] | None = None,
        timeout: Any = None,
        lookback: Any = None,
        idempotency_key: str | None = None,
        tags: Any = None,
    ) -> dict[str, Any]:
        """A token the first event named `name` whose fields equal `match` completes (with
        the event: `{id, name, payload, timestamp}`), sent from `lookback` before now on;
        with `timeout`, it times out then. Returns the token."""
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidWaitTokenError("an event name is a string of 1 to 256 characters")
        wanted = check_match(match)
        now = self.now()
        back = 0.0
        if lookback is not None:
            try:
                back = parse_duration(lookback)
            except InvalidDurationError as exc:
                raise InvalidWaitTokenError(f"lookback: {exc}") from None
        token, cached = await self.create(
            idempotency_key=idempotency_key,
            idempotency_key_ttl="3650d" if idempotency_key else None,
            timeout=timeout,
            tags=tags,
        )
        if cached or token["status"] != "WAITING":
            return token
        since = now - back
        # recorded first, then the events already sent are read: no send falls between
        await self.on_name(name)(
            TokenStoreObject.add_event_wait, token["id"], name, dumps(wanted), since, now
        )
        if self.lookup_events is not None:
            for event in await self.lookup_events(name, since):
                if matches(wanted, event):
                    await self._event_completes(token["id"], event)
                    return await self.get(token["id"])
        return token

    async def event_sent(self, event: dict[str, Any]) -> int:
        """An event was sent (`{id, name, payload, created_at, source}`, payload decoded):
        complete every token waiting for it. Returns how many it completed."""
        if event.get("source") is not None:  # webhook deliveries are not waited for here
            return 0
        waits = await self.on_name(event["name"])(TokenStoreObject.event_waits, event["name"])
        done = 0
        for wait in waits:
            if float(event["created_at"]) >= wait["since"] and matches(wait["match"], event):
                await self._event_completes(wait["token_id"], event)
                done += 1
        return done

    async def _event_completes(self, token_id: str, event: dict[str, Any]) -> None:
        try:
            await self.complete_text(token_id, dumps(event_output(event)))
        except WaitTokenNotFoundError:
            pass  # gone (never, short of a purge): only its wait is left to drop
        await self.on_name(event["name"])(TokenStoreObject.drop_event_waits, [token_id])

    async def recheck_event_waits(self, limit: int = 1000) -> int:
        """Housekeeping's safety net: complete event waits whose event was sent but whose
        send never reached them (its process died between the fan-out and the waits), and
        drop those whose token ended otherwise (timed out). Returns how many it changed."""
        if self.lookup_events is None:
            return 0
        changed = 0
        for shard in self._shards:
            for wait in await shard(TokenStoreObject.event_waits, None, limit):
                token = await shard_get(self, wait["token_id"])
                if token is None or token["status"] != "WAITING":
                    await shard(TokenStoreObject.drop_event_waits, [wait["token_id"]])
                    changed += 1
                    continue
                for event in await self.lookup_events(wait["name"], wait["since"]):
                    if matches(wait["match"], event):
                        await self._event_completes(wait["token_id"], event)
                        changed += 1
                        break
        return changed

    # --- timers ------------------------------------------------------------------------------

    async def fire_timers(
        self, name: str, shard: Remote[TokenStoreObject] | None = None
    ) -> dict[str, Any]:
        """Time out the tokens of shard `name` that are due (their waiters told). `shard`:
        that shard reached in-process (a Durable Object's own alarm)."""
        if shard is None:
            shard = self._shards[int(name.removeprefix("shard-"))]
        timed_out = 0
        while True:
            res = await shard(TokenStoreObject.fire_timers, self.now())
            for item in res["completed"]:
                await self._deliver(item["token"], item["waiters"])
            timed_out += len(res["completed"])
            if not res["more"]:
                return {"timed_out": timed_out}


async def shard_get(service: TokenService, token_id: str) -> dict[str, Any] | None:
    return await service.on(token_id)(TokenStoreObject.get, token_id)


def _completion(token: dict[str, Any], waitpoint: str) -> TokenCompletion:
    return TokenCompletion(token["id"], waitpoint, not token["output_is_error"], token["output"])
