"""The arguments of `trigger-do tokens list|complete` (cli/tokens.py runs them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_parser(
    sub: Any,
    db_arg: Callable[[argparse.ArgumentParser], Any],
    target_arg: Callable[[argparse.ArgumentParser], Any],
) -> None:
    """`tokens list|complete`."""
    tokens = sub.add_parser(
        "tokens",
        help="list or complete wait tokens",
        description="Wait tokens (Trigger.dev's waitpoint tokens): list them, or complete one.",
    )
    tsub = tokens.add_subparsers(dest="tokens_command", required=True, metavar="SUBCOMMAND")
    ls = tsub.add_parser(
        "list", help="wait tokens, newest first", description="Wait tokens, newest first."
    )
    ls.add_argument(
        "--status", default=None, help="WAITING, COMPLETED or TIMED_OUT (comma-separated)"
    )
    ls.add_argument("--tag", action="append", default=None, help="only tokens with this tag")
    ls.add_argument(
        "--idempotency-key", default=None, metavar="KEY", help="only the token with this key"
    )
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    ls.add_argument("--json", action="store_true", help="print them as JSON")
    done = tsub.add_parser(
        "complete",
        help="complete a wait token with a JSON value",
        description="Complete a wait token; what waits on it continues with the data.",
    )
    done.add_argument("token_id", help="the token's id (waitpoint_...)")
    done.add_argument("data", nargs="?", default="null", help="a JSON value (default null)")
    for p in (ls, done):
        db_arg(p)
        target_arg(p)
