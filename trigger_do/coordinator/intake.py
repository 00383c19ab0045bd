"""A key's backlog waits in its queue coordinator's line from the moment it is triggered,
not in the run queue.

The runs of one trigger call (a batch, say) that share a limited task's key (its
concurrency key, its rate key) and number more than `BACKLOG` times its tightest limit
are a backlog: most of them could only be parked by the consumer that claims them. Their
first messages go to their queue's coordinator instead (`CoordinatorObject.enqueue`, a call
per queue and thousand runs): they join their key's line, and the coordinator
hands back as many of the lines' heads as capacity allows, their slots reserved. Only
those reach the run queue; the rest are granted to the consumer whose release frees a
slot (or handed back) as slots free up.

Without this, a hot key's backlog sits in the run queue among everybody else's runs:
the consumers claim it only to park it, and the other keys' runs behind it wait for those
claims. A smaller backlog goes to the run queue as before: its slots turn over in the time
the claims take, few of its runs park, and a claim costs less than a park and a grant.
Delayed runs, runs of tasks this process does not define and runs sent to a queue other
than their task's own go to the run queue too (their consumer asks the coordinator).
Should the coordinator's call fail, its runs' messages go to the run queue: the consumer
decides then, as it always can.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from ..ports import OutMessage, Platform
from ..shared.config import EngineConfig
from ..shared.messages import RunMessage
from ..task import Task
from .client import Coordinators, Reply, is_limited, request, specs_of
from .coordinator import CoordinatorObject

log = logging.getLogger("trigger_do.coordinator")

CHUNK = 1000  # runs lined up per coordinator call (a transaction: others wait for its lock)
BACKLOG = 64  # a key with more runs than this many times its limit in one trigger lines up


class Intake:
    def __init__(
        self,
        platform: Platform,
        config: EngineConfig,
        find_task: Callable[[str], Task[Any] | None],
    ) -> None:
        self.platform = platform
        self.config = config
        self.find_task = find_task
        self.coordinators = Coordinators(platform, config)

    async def send(self, messages: Sequence[OutMessage]) -> None:
        """Send runs' first messages: those of a key with a backlog through their queue's
        coordinator (a call per `CHUNK` runs), the others as they are, all in one send
        once every run is lined up: the heads the coordinators hand back first, which have
        waited longest. (Sent chunk by chunk, the first runs would start while the rest
        still lined up, and contend with it for the write lock: per-org's hot key ran at
        89.3% of its ceiling, against 90.9% this way.)"""
        lined = self._backlogs(messages)
        out: list[OutMessage] = []
        lines: dict[str, list[tuple[OutMessage, RunMessage, Task[Any]]]] = defaultdict(list)
        for i, m in enumerate(messages):
            if i in lined:
                msg, task = lined[i]
                lines[task.queue_name].append((m, msg, task))
            else:
                out.append(m)
        heads: list[OutMessage] = []
        for queue, items in lines.items():
            for i in range(0, len(items), CHUNK):  # (the lock is others' between chunks)
                heads += await self._enqueue(queue, items[i : i + CHUNK])
        if heads or out:
            await self.platform.queue.send_all(heads + out)

    def _backlogs(self, messages: Sequence[OutMessage]) -> dict[int, tuple[RunMessage, Task[Any]]]:
        """The messages (by index) to line up, read, with their tasks: those of the keys (a
        queue, a concurrency key, a rate key) with more than `BACKLOG` times their
        tightest limit of runs among `messages`. A smaller backlog is cheaper claimed from
        the run queue: its slots turn over in the time the claims take, and few of its runs
        are parked; lining up pays where most would be."""
        found: dict[str, Task[Any] | None] = {}
        keys: dict[tuple[Task[Any], str, str], list[tuple[int, RunMessage]]] = defaultdict(list)
        for i, m in enumerate(messages):
            if m.delay_seconds > 0 or not isinstance(m.body, dict):
                continue
            name = str(m.body.get("task"))  # (read whole only for a limited task's runs)
            if name not in found:
                found[name] = self._limited(name)
            task = found[name]
            if task is None:
                continue
            msg = RunMessage.from_body(m.body)  # (a first message: never a hand-back)
            if msg.queue == task.queue_name:
                keys[task, msg.key or "", msg.rate_key or ""].append((i, msg))
        lined: dict[int, tuple[RunMessage, Task[Any]]] = {}
        for (task, _, _), runs in keys.items():
            if len(runs) > BACKLOG * _tightest(task):
                lined.update((i, (msg, task)) for i, msg in runs)
        return lined

    def _limited(self, name: str) -> Task[Any] | None:
        task = self.find_task(name)
        return task if task is not None and is_limited(task) else None

    async def _enqueue(
        self, queue: str, items: list[tuple[OutMessage, RunMessage, Task[Any]]]
    ) -> list[OutMessage]:
        """One call to `queue`'s coordinator: what to send now (hand-backs, a wake-up; or,
        should the call fail, the messages themselves)."""
        tasks = {t.id: t for _, _, t in items}  # (all of them this queue's own)
        specs = specs_of(items[0][2].queue, tasks.values())
        requests = [
            request(msg.run_id, msg.task, msg.key, msg.rate_key, m.body) for m, msg, _ in items
        ]
        try:
            res = Reply.of(
                await self.coordinators(queue)(
                    CoordinatorObject.enqueue,
                    requests,
                    specs,
                    self.platform.clock.now(),
                    self.config.lease_seconds,
                )
            )
        except Exception:
            log.exception("lining up %d runs at coordinator %s failed; queued", len(items), queue)
            return [m for m, _, _ in items]
        return self.coordinators.messages(queue, res)


def _tightest(task: Task[Any]) -> int:
    """The fewest runs of one key that may start at once (or in one rate period)."""
    limits = (
        task.concurrency.limit if task.concurrency else None,
        task.queue.concurrency_limit if task.queue is not None else None,
        task.rate_limit.limit if task.rate_limit else None,
    )
    return min(n for n in limits if n is not None)
