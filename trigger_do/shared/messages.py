"""Run-queue messages: JSON-native, versioned; new fields get defaults so old ones decode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERSION = 1


@dataclass(frozen=True)
class RunMessage:
    run_id: str
    task: str
    attempt: int
    dispatch: int = 1  # which dispatch of the run this is: an older one is stale
    payload: str | None = None  # the payload's JSON text when small enough to ride along
    queue: str | None = None  # the run's queue (its coordinator), when it has one
    key: str | None = None  # its concurrency key
    rate_key: str | None = None  # its rate-limit key

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": VERSION,
            "run_id": self.run_id,
            "task": self.task,
            "attempt": self.attempt,
            "d": self.dispatch,
        }
        if self.payload is not None:
            body["payload"] = self.payload
        for name, value in (("q", self.queue), ("k", self.key), ("rk", self.rate_key)):
            if value is not None:
                body[name] = value
        return body

    @classmethod
    def from_body(cls, body: Any) -> RunMessage:
        if not isinstance(body, dict) or "run_id" not in body:
            raise ValueError(f"not a run message: {body!r}"[:200])
        return cls(
            run_id=str(body["run_id"]),
            task=str(body.get("task", "")),
            attempt=int(body.get("attempt", 1)),
            dispatch=int(body.get("d", 1)),
            payload=body.get("payload"),
            queue=body.get("q"),
            key=body.get("k"),
            rate_key=body.get("rk"),
        )
