"""Pull the README's examples out so that tests can run them as a user would."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in _BLOCK.findall(README.read_text()) if kind == lang]


def tasks_module() -> str:
    """The README's `# tasks.py` blocks, in order, as one module."""
    found = [b for b in blocks("python") if b.startswith("# tasks.py")]
    assert found, "the README has a `# tasks.py` block"
    return "\n\n".join(found)


def app_scripts() -> list[str]:
    """Every `# app.py` block: each a complete script, run as written with `python app.py`
    (no top-level `await`)."""
    found = [b for b in blocks("python") if b.startswith("# app.py")]
    assert found, "the README has `# app.py` blocks"
    return found


def python_block(first_line: str) -> str:
    """The README's python block that starts with `first_line`."""
    for block in blocks("python"):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no python block starting with {first_line!r} in the README")


def shell_commands() -> list[str]:
    """The commands of the README's `trigger-do dev` block (comments stripped)."""
    for block in blocks("bash"):
        if "trigger-do dev --tasks tasks" in block and "trigger-do runs logs" in block:
            return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    raise AssertionError("no `trigger-do dev` block in the README")
