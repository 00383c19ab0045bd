"""`trigger-do tokens list|complete`: wait tokens on a database, or on a server (`--target`),
as `runs` and `schedules` do (the arguments: `tokens_args.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..wait_tokens import Backend, WaitTokenInfo


def _backend(args: argparse.Namespace) -> Backend:
    from ..sdk.client import EmbeddedClient
    from ..wait_tokens import EmbeddedTokens, RemoteTokens
    from .runs import _connect

    client = _connect(args)
    if isinstance(client, EmbeddedClient):
        return EmbeddedTokens(client.engine)
    return RemoteTokens(client)


async def _tokens(args: argparse.Namespace) -> int:
    from ..errors import TriggerDoError
    from ..wait_tokens import WaitTokenInfo

    backend = _backend(args)
    if args.tokens_command == "complete":
        try:
            data = json.loads(args.data)
        except ValueError:
            raise TriggerDoError(f"data must be JSON, not {args.data[:80]!r}") from None
        await backend.complete(args.token_id, data)
        print(f"completed {args.token_id}")
        return 0
    params: dict[str, str] = {"page[size]": str(max(1, min(args.limit, 100)))}
    if args.status:
        params["filter[status]"] = args.status.upper()
    if args.tag:
        params["filter[tags]"] = ",".join(args.tag)
    if args.idempotency_key:
        params["filter[idempotencyKey]"] = args.idempotency_key
    found = [WaitTokenInfo.from_api(t) for t in (await backend.list(params))["data"]]
    if args.json:
        print(json.dumps([_as_json(t) for t in found], indent=2, default=str))
    else:
        _print(found)
    return 0


def _as_json(t: WaitTokenInfo) -> dict[str, Any]:
    return {
        "id": t.id,
        "status": t.status,
        "tags": t.tags,
        "created_at": t.created_at.isoformat(),
        "timeout_at": t.timeout_at.isoformat() if t.timeout_at else None,
        "idempotency_key": t.idempotency_key,
        "url": t.url,
    }


def _print(found: list[WaitTokenInfo]) -> None:
    if not found:
        print("no wait tokens", file=sys.stderr)
        return
    for t in found:
        timeout = f" times out {t.timeout_at:%Y-%m-%d %H:%M:%S}" if t.timeout_at else ""
        tags = f" [{', '.join(t.tags)}]" if t.tags else ""
        print(f"{t.id}  {t.status:<9}  {t.created_at:%Y-%m-%d %H:%M:%S}{timeout}{tags}")
