"""The coordinators as the engine calls them, across the object boundary: one object per
queue (`task/<id>` or a shared queue's name), each call typed against
`CoordinatorObject`'s own method (`Remote`, ports.py). What a coordinator's answer asks of
its caller (hand-backs to enqueue, a wake-up at its next due instant) is sent in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..ports import OutMessage, Platform, Remote
from ..shared.config import EngineConfig
from ..shared.messages import RunMessage, WakeMessage
from ..shared.specs import QueueSpec
from ..task import Task
from .coordinator import CoordinatorObject

KIND = "coordinator"  # the object kind in `Platform.objects`


@dataclass(frozen=True)
class Reply:
    """What a coordinator call leaves its caller to do: `handback` (runs it hands back,
    their messages marked handed) and `alarm` (when to wake it: epoch seconds), plus, for
    acquire and release, the requests it `granted` (run ids), the parked runs it granted
    the caller `direct` (their messages), and the instant `at` they start."""

    granted: list[str] = field(default_factory=list)
    at: float = 0.0
    handback: list[dict[str, Any]] = field(default_factory=list)
    alarm: float | None = None
    held: list[str] = field(default_factory=list)  # (`holding`: the runs it owns)
    direct: list[dict[str, Any]] = field(default_factory=list)
    standby: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, res: dict[str, Any]) -> Reply:
        return cls(
            granted=list(res.get("granted") or []),
            at=float(res.get("at") or 0.0),
            handback=list(res.get("handback") or []),
            alarm=None if res.get("alarm") is None else float(res["alarm"]),
            held=list(res.get("held") or []),
            direct=list(res.get("direct") or []),
            standby=list(res.get("standby") or []),
        )


class Coordinators:
    def __init__(self, platform: Platform, config: EngineConfig) -> None:
        self.platform = platform
        self.config = config
        self._ns = platform.objects(KIND)

    def __call__(self, queue: str) -> Remote[CoordinatorObject]:
        """The coordinator of `queue`: `await coordinators(q)(CoordinatorObject.stats, now)`."""
        return Remote[CoordinatorObject](self._ns.get(queue))

    async def send(self, queue: str, reply: Reply) -> None:
        """Enqueue what `reply` hands back, and the wake-up it asks for."""
        out = self.messages(queue, reply)
        if out:
            await self.platform.queue.send_all(out)

    def messages(self, queue: str, reply: Reply) -> list[OutMessage]:
        """What `send` enqueues for `reply`: its hand-backs, then its wake-up if any."""
        out = [OutMessage(RunMessage.from_body(body).to_body(), 0.0) for body in reply.handback]
        if reply.alarm is not None:
            now = self.platform.clock.now()
            delay = min(max(0.0, reply.alarm - now), self.config.max_message_delay)
            out.append(OutMessage(WakeMessage(queue).to_body(), delay))
        return out


def request(
    run_id: str, task: str | None, key: str | None, rate_key: str | None, body: Any
) -> dict[str, Any]:
    """A run as `acquire` and `enqueue` take it: its keys, and `body`, the message it is
    handed back as should it be parked."""
    return {"id": run_id, "task": task, "key": key, "rate_key": rate_key, "body": body}


def specs_of(shared: QueueSpec | None, tasks: Iterable[Task[Any]]) -> dict[str, Any]:
    """What a coordinator call declares of its queue: the shared queue's limit, if the
    queue is one, and the specs of the tasks whose runs it carries."""
    return {
        "queue_limit": shared.concurrency_limit if shared is not None else None,
        "tasks": {t.id: task_spec(t) for t in tasks},
    }


def task_spec(task: Task[Any]) -> dict[str, Any]:
    """What the coordinator needs to know of a task's declarations."""
    rate = task.rate_limit
    return {
        "key_limit": task.concurrency.limit if task.concurrency else None,
        "rate": {"limit": rate.limit, "period": rate.period, "strategy": rate.strategy}
        if rate
        else None,
    }


def is_limited(task: Task[Any]) -> bool:
    return bool(
        task.concurrency
        or task.rate_limit
        or (task.queue is not None and task.queue.concurrency_limit is not None)
    )
