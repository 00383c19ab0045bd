"""The run queue's messages, built and read only here: JSON-native, versioned, every field
named; new fields get defaults so that old messages still decode. A message changes by
making a new one (`_replace`: they are named tuples, immutable and cheap to build, one
per delivered run), never by patching its body.

- `RunMessage`: start (or resume) a run: `{v, run_id, task, attempt, d, payload?, q?, k?,
  rk?, h?}`. `d` is the run's dispatch number (a message of an older dispatch is stale);
  `h` marks a run its coordinator handed back (its consumer asks the coordinator again).
- `WakeMessage`: a coordinator's alarm, `{v, wake: queue}`: its consumer calls `wake`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import MalformedMessageError

VERSION = 1


class RunMessage(NamedTuple):
    run_id: str
    task: str
    attempt: int
    dispatch: int = 1  # which dispatch of the run this is: an older one is stale
    payload: str | None = None  # the payload's JSON text when small enough to ride along
    queue: str | None = None  # the run's queue (its coordinator), when it has one
    key: str | None = None  # its concurrency key
    rate_key: str | None = None  # its rate-limit key
    handed: bool = False  # its coordinator handed it back (parked, then freed)
    trace: str | None = None  # its trigger's trace context (a W3C traceparent), when traced

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
        if self.handed:
            body["h"] = 1
        if self.trace is not None:
            body["tp"] = self.trace
        return body

    @staticmethod
    def first_body(
        run_id: str,
        task: str,
        payload: str | None,
        queue: str | None,
        key: str | None,
        rate_key: str | None,
    ) -> dict[str, Any]:
        """`RunMessage(run_id, task, 1, payload=..., ...).to_body()`, built directly: the
        first message of every run of a large batch."""
        body: dict[str, Any] = {"v": VERSION, "run_id": run_id, "task": task, "attempt": 1, "d": 1}
        if payload is not None:
            body["payload"] = payload
        if queue is not None:
            body["q"] = queue
        if key is not None:
            body["k"] = key
        if rate_key is not None:
            body["rk"] = rate_key
        return body

    @classmethod
    def from_body(cls, body: Any) -> RunMessage:
        if not isinstance(body, dict) or "run_id" not in body:
            raise MalformedMessageError(f"not a run message: {body!r}"[:200])
        return cls(
            run_id=str(body["run_id"]),
            task=str(body.get("task", "")),
            attempt=int(body.get("attempt", 1)),
            dispatch=int(body.get("d", 1)),
            payload=body.get("payload"),
            queue=body.get("q"),
            key=body.get("k"),
            rate_key=body.get("rk"),
            handed=bool(body.get("h")),
            trace=body.get("tp") if isinstance(body.get("tp"), str) else None,
        )


@dataclass(frozen=True)
class WakeMessage:
    queue: str  # the coordinator to wake

    def to_body(self) -> dict[str, Any]:
        return {"v": VERSION, "wake": self.queue}

    @staticmethod
    def is_one(body: Any) -> bool:
        return isinstance(body, dict) and "wake" in body and "run_id" not in body

    @classmethod
    def from_body(cls, body: Any) -> WakeMessage:
        if not cls.is_one(body):
            raise MalformedMessageError(f"not a wake message: {body!r}"[:200])
        return cls(str(body["wake"]))
