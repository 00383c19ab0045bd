"""`trigger-do events list|send|replay` and `trigger-do webhooks list|replay`: on a database,
or on a server (`--target`), as `runs` does."""

from __future__ import annotations

import argparse
import json
from typing import Any


async def run(args: argparse.Namespace) -> int:
    from ..sdk.client import EmbeddedClient
    from .runs import _connect

    client: Any = _connect(args)
    webhooks = args.command == "webhooks"
    command = args.webhooks_command if webhooks else args.events_command
    embedded = client.engine if isinstance(client, EmbeddedClient) else None
    if command == "list":
        params: dict[str, Any] = {"limit": args.limit}
        if getattr(args, "name", None):
            params["name"] = args.name
        if getattr(args, "source", None):
            params["source"] = args.source
        got = await _list(client, embedded, params, webhooks)
        if args.json:
            print(json.dumps(got["data"], indent=2))
        else:
            _print(got["data"], webhooks)
        return 0
    if command == "send":
        body: dict[str, Any] = {"name": args.name, "payload": json.loads(args.payload)}
        if args.id:
            body["id"] = args.id
        if embedded is not None:
            done = await embedded.events.send(body["name"], body["payload"], id=body.get("id"))
            got = {"id": done["id"], "runs": done["runs"], "isCached": done["cached"]}
        else:
            got = await client._call("POST", "/api/v1/events", json=body)
        print(json.dumps(got))
        return 0
    # replay
    from urllib.parse import quote

    if webhooks:
        if embedded is not None:
            found = await embedded.events.find_delivery(args.delivery_id, args.source)
            done = await embedded.events.replay(found["id"], found["source"])
        else:
            path = f"/api/v1/webhooks/deliveries/{quote(args.delivery_id, safe='')}/replay"
            query = {"source": args.source} if args.source else None
            done = await client._call("POST", path, params=query)
    elif embedded is not None:
        done = await embedded.events.replay(args.event_id)
    else:
        path = f"/api/v1/events/{quote(args.event_id, safe='')}/replay"
        done = await client._call("POST", path)
    print(json.dumps({"id": done["id"], "runs": done["runs"]}))
    return 0


async def _list(
    client: Any, embedded: Any, params: dict[str, Any], webhooks: bool
) -> dict[str, Any]:
    if embedded is not None:
        from ..events.shapes import page_of

        return await page_of(embedded.events, params, webhooks=webhooks)
    path = "/api/v1/webhooks/deliveries" if webhooks else "/api/v1/events"
    return dict(await client._call("GET", path, params=params))


def _print(rows: list[dict[str, Any]], webhooks: bool) -> None:
    if not rows:
        print("no deliveries" if webhooks else "no events")
        return
    for row in rows:
        name = row["event"] if webhooks else row["name"]
        where = f"{row['source']:<10} " if webhooks else ""
        runs = ",".join(row["runs"]) or "-"
        print(f"{row['createdAt']}  {where}{name:<28} {row['id']:<36} {row['status']:<9} {runs}")
