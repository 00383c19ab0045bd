"""`trigger-do schedules list|create|delete|activate|deactivate`: on a database, or on a server
(`--target`), as `runs` does. `list` shows each schedule's next five fire times in its own
timezone."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..schedules.api import Backend
    from ..schedules.event import Schedule

NEXT = 5  # fire times `list` shows per schedule


def _backend(args: argparse.Namespace) -> Backend:
    from ..schedules.api import EmbeddedSchedules, RemoteSchedules
    from ..sdk.client import EmbeddedClient
    from .runs import _connect

    client = _connect(args)
    if isinstance(client, EmbeddedClient):
        return EmbeddedSchedules(client.engine)
    return RemoteSchedules(client)


async def _schedules(args: argparse.Namespace) -> int:
    from ..schedules.event import Schedule

    backend = _backend(args)
    command = args.schedules_command
    if command == "list":
        found: list[Schedule] = []
        page = 1
        while True:
            got = await backend.list(page, 100)
            found += [Schedule.from_api(s) for s in got["data"]]
            if page >= int(got["pagination"]["totalPages"]):
                break
            page += 1
        if args.json:
            out = [_as_json(s) for s in found]
            print(json.dumps(out, indent=2))
        else:
            _print(found)
        return 0
    if command == "create":
        key = args.dedup_key or ":".join(
            str(p) for p in (args.task, args.cron, args.timezone or "UTC", args.external_id) if p
        )
        body: dict[str, Any] = {"task": args.task, "cron": args.cron, "deduplicationKey": key}
        if args.timezone:
            body["timezone"] = args.timezone
        if args.external_id:
            body["externalId"] = args.external_id
        made = Schedule.from_api(await backend.create(body))
        print(made.id)
        print(f"{made.cron} ({made.description}), {made.timezone}", file=sys.stderr)
        for when in made.upcoming(NEXT):
            print(f"  next: {_when(when)}", file=sys.stderr)
        return 0
    if command == "delete":
        gone = await backend.delete(args.schedule_id)
        print(f"deleted {gone['id']}")
        return 0
    active = command == "activate"
    done = Schedule.from_api(await backend.set_active(args.schedule_id, active))
    nxt = f", next {_when(done.upcoming(1)[0])}" if done.active and done.next_run else ""
    print(f"{'activated' if active else 'deactivated'} {done.id}{nxt}")
    return 0


def _when(when: Any) -> str:
    return f"{when:%Y-%m-%d %H:%M %Z}".strip()


def _as_json(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "type": s.type,
        "task": s.task,
        "active": s.active,
        "cron": s.cron,
        "description": s.description,
        "timezone": s.timezone,
        "deduplicationKey": s.deduplication_key,
        "externalId": s.external_id,
        "next": [w.isoformat() for w in s.upcoming(NEXT)],
    }


def _print(found: list[Schedule]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not found:
        print("no schedules")
        return
    console = Console() if sys.stdout.isatty() else Console(width=220)  # pipes: never truncate
    table = Table("id", "task", "type", "cron", "timezone", "active", f"next {NEXT}")
    for s in found:
        upcoming = "\n".join(_when(w) for w in s.upcoming(NEXT)) or "-"
        table.add_row(
            s.id,
            s.task + (f" ({s.external_id})" if s.external_id else ""),
            s.type.lower(),
            f"{s.cron}\n{s.description}",
            s.timezone,
            "yes" if s.active else "no",
            upcoming,
        )
    console.print(table)
