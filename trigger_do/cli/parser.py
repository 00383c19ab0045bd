"""The command line: its parser, every flag with its help, and the argument types (a bad
value is a one-line usage error)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import TriggerDoError
from .tokens_args import add_parser as tokens_parser

if TYPE_CHECKING:
    pass


EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(TriggerDoError):
    """A command line argparse refused."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (`trigger-do: ...`, exit code 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --- argument types (a bad value is a one-line usage error) ---------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, not {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds (0 or more), not {text!r}")
    return value


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="the database file (default: $TRIGGER_DO_DB, else .trigger-do/trigger.db here); "
        "it must exist: the server creates it",
    )


def _target_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        default=None,
        metavar="URL",
        help="a trigger.do server to talk to over HTTP instead of a database (default: "
        "$TRIGGER_API_URL when no --db is given); the key is $TRIGGER_SECRET_KEY, else the "
        "one stored beside the database",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trigger-do", description="Background jobs for Python (Trigger.dev's DX)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the seed's examples end to end on the embedded runtime")
    demo.add_argument(
        "--workers", type=_positive_int, default=2, help="worker processes (default 2)"
    )
    demo.add_argument(
        "--batch", type=_positive_int, default=1000, help="items in the demo batch (default 1000)"
    )

    for name, help_text in (
        ("dev", "run the embedded runtime and the HTTP API, restarting workers on code change"),
        ("serve", "run the embedded runtime and the HTTP API (no reload)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--tasks",
            required=True,
            metavar="MODULE",
            help="dotted module path of your tasks (comma-separated for several)",
        )
        p.add_argument(
            "--host", default="127.0.0.1", help="address the HTTP API listens on (127.0.0.1)"
        )
        p.add_argument(
            "--port", type=_port, default=8787, help="port the HTTP API listens on (8787)"
        )
        p.add_argument(
            "--db",
            default=None,
            metavar="PATH",
            help="the database file, created if missing (default: $TRIGGER_DO_DB, else "
            ".trigger-do/trigger.db here)",
        )
        p.add_argument(
            "--workers", type=_positive_int, default=2, help="worker processes (default 2)"
        )
        p.add_argument(
            "--grace",
            type=_seconds,
            default=None,
            metavar="SECONDS",
            help="graceful shutdown: seconds running attempts get to finish (default 10)",
        )
        p.add_argument(
            "--slice",
            type=_seconds,
            default=None,
            dest="slice_seconds",
            metavar="SECONDS",
            help="one delivery's time slice in seconds; longer runs continue after it "
            "(default 600)",
        )
        p.add_argument(
            "--batch-size",
            type=_positive_int,
            default=None,
            help="messages a worker takes at once (default 100)",
        )
        p.add_argument(
            "--batch-wait",
            type=_seconds,
            default=None,
            metavar="SECONDS",
            help="seconds a short batch may wait to fill up (default 0)",
        )
        p.add_argument(
            "--metrics-public",
            action="store_true",
            help="serve GET /metrics without the secret key (for a Prometheus scraper)",
        )
        p.add_argument(
            "--mcp-readonly",
            action="store_true",
            help="offer only the MCP tools that change nothing at /mcp",
        )

    trig = sub.add_parser(
        "trigger",
        help="trigger a task by id (its payload validated first)",
        description="Trigger a task by id. The payload is validated against the task's "
        "schema before anything is written.",
    )
    trig.add_argument("task", help="the task id")
    trig.add_argument(
        "payload_arg",
        nargs="?",
        default=None,
        metavar="PAYLOAD",
        help="the payload as JSON (or use --payload)",
    )
    trig.add_argument(
        "--payload", default=None, metavar="JSON", help="the payload as JSON (default: null)"
    )
    trig.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run and print its output (exit 1 if it did not complete)",
    )
    trig.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="with --wait: give up waiting after this many seconds (the run goes on)",
    )
    trig.add_argument(
        "--idempotency-key",
        default=None,
        metavar="KEY",
        help="the same key (for this task, within its ttl) returns the same run",
    )
    trig.add_argument(
        "--delay",
        default=None,
        metavar="DURATION",
        help='start no sooner than this duration from now ("30s", "1h")',
    )
    trig.add_argument(
        "--tag", action="append", default=None, help="a tag for the run (repeat for several)"
    )
    _db_arg(trig)
    _target_arg(trig)

    runs = sub.add_parser("runs", help="list, show, follow or cancel runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    ls = rsub.add_parser("list", help="runs, newest first", description="Runs, newest first.")
    ls.add_argument("--task", action="append", help="only this task's runs (repeat for several)")
    ls.add_argument(
        "--status",
        action="append",
        help="only runs in this state (completed, failed, ...) or API status (COMPLETED, "
        "...); repeat for several",
    )
    ls.add_argument("--tag", action="append", help="only runs with this tag (repeat for several)")
    ls.add_argument(
        "--schedule", default=None, metavar="ID", help="only runs this schedule started (sched_...)"
    )
    ls.add_argument(
        "--limit", type=_positive_int, default=25, help="at most this many runs (default 25)"
    )
    ls.add_argument(
        "--json",
        action="store_true",
        help="print the runs as JSON (each as the API's run: GET /api/v3/runs/ID)",
    )
    _db_arg(ls)
    _target_arg(ls)
    show = rsub.add_parser(
        "show", help="one run: state, payload, output, error", description="Show one run."
    )
    show.add_argument("run_id", help="the run's id")
    show.add_argument(
        "--json", action="store_true", help="print the run as JSON (the API's run shape)"
    )
    _db_arg(show)
    _target_arg(show)
    cancel = rsub.add_parser(
        "cancel",
        help="cancel a run (exit 1 if it had already finished)",
        description="Cancel a run.",
    )
    cancel.add_argument("run_id", help="the run's id")
    _db_arg(cancel)
    _target_arg(cancel)
    logs = rsub.add_parser(
        "logs",
        help="a run's logs (with --follow: live until it ends, then its final status)",
        description="A run's logs; with --follow, live until the run ends, then a last line "
        "with its final status (exit 1 if it did not complete).",
    )
    logs.add_argument("run_id", help="the run's id")
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new lines until the run ends, then its final status",
    )
    _db_arg(logs)
    _target_arg(logs)

    dlq = sub.add_parser("dlq", help="dead letters: runs whose consumer died on every delivery")
    dsub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="SUBCOMMAND")
    _db_arg(dsub.add_parser("list", help="the dead letters", description="The dead letters."))
    rq = dsub.add_parser(
        "requeue",
        help="give dead-lettered runs another try",
        description="Give dead-lettered runs another try.",
    )
    rq.add_argument("run_id", nargs="?", help="the run to requeue")
    rq.add_argument("--all", action="store_true", help="requeue every dead letter")
    _db_arg(rq)

    _schedules_parser(sub)
    from .events_parser import add_parsers as _events_parsers

    _events_parsers(sub, _db_arg, _target_arg)  # `events ...`, `webhooks ...` (cli/events.py)
    tokens_parser(sub, _db_arg, _target_arg)

    from .agent import add_parser as _mcp_parser  # `trigger-do mcp` (cli/agent.py)

    _mcp_parser(sub, _positive_int)

    init = sub.add_parser("init", help="write a wrangler.toml for Cloudflare into a project")
    init.add_argument("path", nargs="?", default=".", help="the project folder (default: this one)")
    init.add_argument(
        "--tasks",
        default="tasks",
        metavar="MODULE",
        help="the tasks module src/worker.py imports (default: tasks)",
    )
    sub.add_parser(
        "load",
        help="load-test the embedded runtime or a server (see load/README.md)",
        add_help=False,
    )
    deploy = sub.add_parser("deploy", help="deploy to Cloudflare (pywrangler deploy)")
    deploy.add_argument(
        "--dry-run", action="store_true", help="only check wrangler.toml; deploy nothing"
    )
    return parser


def _schedules_parser(sub: Any) -> None:
    """`schedules list|create|delete|activate|deactivate` (cli/schedules.py runs them)."""
    sched = sub.add_parser(
        "schedules",
        help="list, create, delete, activate or deactivate schedules",
        description="Schedules: the declarative ones (a task's cron=) and imperative ones.",
    )
    ssub = sched.add_subparsers(dest="schedules_command", required=True, metavar="SUBCOMMAND")
    ls = ssub.add_parser(
        "list",
        help="every schedule, with its next five fire times in its timezone",
        description="Every schedule (newest first), with its next five fire times in its "
        "own timezone.",
    )
    ls.add_argument("--json", action="store_true", help="print them as JSON (the API's shape)")
    mk = ssub.add_parser(
        "create",
        help="an imperative schedule for a scheduled task",
        description="Create an imperative schedule (the same deduplication key again updates it).",
    )
    mk.add_argument("task", help="the id of a task declared with @schedules.task")
    mk.add_argument("cron", help="a 5-field cron expression, quoted: '0 9 * * 1-5'")
    mk.add_argument("--timezone", default=None, metavar="TZ", help="an IANA timezone (default UTC)")
    mk.add_argument(
        "--dedup-key",
        default=None,
        metavar="KEY",
        help="one schedule per key: the same key again updates it (default: from the task, "
        "cron, timezone and external id)",
    )
    mk.add_argument("--external-id", default=None, metavar="ID", help="e.g. a user id")
    parsers = [ls, mk]
    for name, text in (
        ("delete", "delete an imperative schedule"),
        ("activate", "fire again, from the next instant after now"),
        ("deactivate", "stop firing until activated"),
    ):
        p = ssub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("schedule_id", help="the schedule's id (sched_...)")
        parsers.append(p)
    for p in parsers:
        _db_arg(p)
        _target_arg(p)


def _error(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    print(f"trigger-do: {' '.join(message.split())}", file=sys.stderr, flush=True)
