"""`load`, `init` and `deploy`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TriggerDoError

if TYPE_CHECKING:
    pass



def _load(argv: list[str]) -> int:
    """The load tool lives in the repository's `load/` (run from its root, or beside it)."""
    import importlib

    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (root / "load" / "cli.py").exists():
            if str(root) not in sys.path:
                sys.path.append(str(root))
            module = importlib.import_module("load.cli")
            return int(module.main(argv))
    raise TriggerDoError("the load tool (load/) was not found: run from the repository root")


def _cloudflare(args: argparse.Namespace) -> int:
    try:
        from ..platform.cloudflare import deploy as cf
    except ImportError:
        raise TriggerDoError("the Cloudflare platform is not installed in this build") from None
    if args.command == "init":
        try:
            path = cf.init_project(Path(args.path), tasks=args.tasks)
        except FileExistsError as exc:
            raise TriggerDoError(str(exc)) from None
        except OSError as exc:
            raise TriggerDoError(f"cannot write the project files: {exc}") from None
        print(f"wrote {path}")
        return 0
    config = Path.cwd() / "wrangler.toml"
    if not config.exists():
        raise TriggerDoError(f"no wrangler.toml in {Path.cwd()}: run `trigger-do init` first")
    problems = cf.check_config(config)
    if problems:
        raise TriggerDoError(f"{config}: " + "; ".join(problems))
    return int(cf.deploy(dry_run=args.dry_run))


