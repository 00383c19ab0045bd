"""A run's checkpoint, as its task (`ctx.checkpoints`) and its status (`handle.status()`)
both see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Checkpoint:
    name: str
    data: Any
    attempt: int
    at: datetime

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Checkpoint:
        at = datetime.fromtimestamp(rec["at"], tz=UTC)
        return cls(rec["name"], rec["data"], rec["attempt"], at)
