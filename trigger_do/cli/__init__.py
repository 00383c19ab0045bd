"""The `trigger-do` command (see main.py)."""

from .main import main

__all__ = ["main"]
