"""The `events` and `webhooks` commands' arguments (`cli/events.py` runs them)."""

from __future__ import annotations

from typing import Any


def add_parsers(sub: Any, db_arg: Any, target_arg: Any) -> None:
    """The `events` and `webhooks` commands (their options: `--db`, `--target`)."""
    ev = sub.add_parser(
        "events",
        help="list, send or replay events",
        description="Events: each one's subscribers got one run (see the README's Events).",
    )
    esub = ev.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")
    ls = esub.add_parser("list", help="events, newest first", description="Events, newest first.")
    ls.add_argument("--name", default=None, help="only events with this name")
    send = esub.add_parser("send", help="send an event", description="Send an event.")
    send.add_argument("name", help="the event's name, e.g. user.created")
    send.add_argument("payload", nargs="?", default="null", help="its payload, as JSON")
    send.add_argument("--id", default=None, help="its id (the same id within 24 h: no new run)")
    rp = esub.add_parser("replay", help="send an event again", description="Replay an event.")
    rp.add_argument("event_id", help="the event's id (its newest, if the id was reused)")
    wh = sub.add_parser(
        "webhooks",
        help="list or replay webhook deliveries",
        description="Webhook deliveries accepted at /webhooks/<source> (refused ones are "
        "never recorded).",
    )
    wsub = wh.add_subparsers(dest="webhooks_command", required=True, metavar="SUBCOMMAND")
    wls = wsub.add_parser("list", help="deliveries, newest first", description="Deliveries.")
    wls.add_argument("--source", default=None, help="only this source's (github, stripe, ...)")
    wrp = wsub.add_parser("replay", help="deliver again", description="Replay a delivery.")
    wrp.add_argument("delivery_id", help="the delivery's id (e.g. X-GitHub-Delivery)")
    wrp.add_argument("--source", default=None, help="the source, if two share the id")
    for p in (ls, wls):
        p.add_argument("--limit", type=int, default=25, help="at most this many (1-100)")
        p.add_argument("--json", action="store_true", help="print them as JSON (the API's shape)")
    for p in (ls, send, rp, wls, wrp):
        db_arg(p)
        target_arg(p)
