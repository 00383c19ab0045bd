"""`trigger-do`: demo | dev | serve | trigger | runs | dlq | schedules | init | deploy | load.

Every error is one line on stderr, `trigger-do: ...`, with exit code 2 (a run that did not
complete under `trigger --wait` or `runs logs --follow`: exit code 1). Set
`TRIGGER_DO_DEBUG=1` for the traceback of an unexpected error."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RunFailedError, TriggerDoError

if TYPE_CHECKING:
    pass

from .commands import _cloudflare, _load
from .dev import _serve
from .parser import EXIT_FAILED, EXIT_USAGE, _error, build_parser
from .runs import _dlq, _runs, _trigger


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["load"]:  # the load tool parses its own arguments
            return _load(argv[1:])
        return int(_dispatch(build_parser().parse_args(argv)) or 0)
    except TriggerDoError as exc:
        _error(str(exc))
        return EXIT_FAILED if isinstance(exc, RunFailedError) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trigger-do runs list | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # no second error when Python exits
        return 0
    except Exception as exc:
        if os.environ.get("TRIGGER_DO_DEBUG"):
            raise
        _error(f"{type(exc).__name__}: {exc} (set TRIGGER_DO_DEBUG=1 for the traceback)")
        return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from ..demo import run_demo

        return asyncio.run(run_demo(workers=args.workers, batch=args.batch))
    if args.command in ("dev", "serve"):
        return asyncio.run(_serve(args, reload=args.command == "dev"))
    if args.command == "trigger":
        return asyncio.run(_trigger(args))
    if args.command == "runs":
        return asyncio.run(_runs(args))
    if args.command == "dlq":
        return asyncio.run(_dlq(args))
    if args.command == "schedules":
        from .schedules import _schedules

        return asyncio.run(_schedules(args))
    if args.command in ("events", "webhooks"):
        from .events import run as _events

        return asyncio.run(_events(args))
    if args.command == "mcp":
        from .agent import run_mcp

        return asyncio.run(run_mcp(args))
    if args.command == "tokens":
        from .tokens import _tokens

        return asyncio.run(_tokens(args))
    if args.command in ("init", "deploy"):
        return _cloudflare(args)
    raise AssertionError(args.command)


