"""How a table's selected columns read back as a dict: JSON columns decoded, REAL columns
made floats (a Durable Object hands every number back as a JS number, so 2.0 arrives as
2), flag columns made bools. One reader for every object's rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .serialization import loads


class RowReader:
    def __init__(
        self,
        columns: str,
        *,
        json: Iterable[str] = (),
        real: Iterable[str] = (),
        flags: Iterable[str] = (),
    ) -> None:
        self.columns = columns
        self.names = [c.strip() for c in columns.split(",")]
        self.json, self.real, self.flags = tuple(json), tuple(real), tuple(flags)

    def __call__(self, row: Iterable[Any]) -> dict[str, Any]:
        out = dict(zip(self.names, row, strict=True))
        for col in self.json:
            if out[col] is not None:
                out[col] = loads(out[col])
        for col in self.real:
            if out[col] is not None:
                out[col] = float(out[col])
        for col in self.flags:
            out[col] = bool(out[col])
        return out
