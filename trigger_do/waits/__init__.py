"""Durable waits and child runs: a run suspends on a waitpoint and replays when it completes."""

from .service import Waits
from .suspend import INLINE_WAIT, RunWaits, Suspended

__all__ = ["INLINE_WAIT", "RunWaits", "Suspended", "Waits"]
