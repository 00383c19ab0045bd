"""What one run may write, so that no run's data can fail a write it shares with others.

A consumer coalesces what many runs produce into one call per object; one oversized value
would fail that call for every run in it. So each value is bounded where the run makes it:
a log line, a metadata document, a checkpoint's data and a step's result over their limit
are refused to that run with `PayloadTooLargeError`; an error's message and stack trace are
truncated with a marker (an error must still be recorded). Outputs and payloads have their
own limit (`payload_limit`) and go to packets when large.
"""

from __future__ import annotations

from ..errors import PayloadTooLargeError

MAX_LOG_BYTES = 64 * 1024  # one log line: its message and extras
MAX_METADATA_BYTES = 256 * 1024  # a run's metadata document
MAX_CHECKPOINT_BYTES = 512 * 1024  # a checkpoint's data, or a step's result
MAX_ERROR_MESSAGE_CHARS = 16 * 1024
MAX_STACK_CHARS = 16 * 1024


def check_size(text: str, limit: int, what: str) -> None:
    """Refuse `text` (JSON or a message) over `limit` bytes, naming `what` it is."""
    if len(text) * 4 > limit:  # cheap first: most text is far below
        size = len(text.encode())
        if size > limit:
            raise PayloadTooLargeError(size, limit, what)


def truncate(text: str, limit: int, *, keep: str = "head") -> str:
    """`text` cut to at most `limit` characters, with a marker saying how much was cut.
    `keep="tail"` keeps the end (a stack trace's last frames are the useful ones)."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    marker = f" ... [{cut:,} characters truncated] ... "
    if keep == "tail":
        return marker + text[-limit:]
    return text[:limit] + marker
