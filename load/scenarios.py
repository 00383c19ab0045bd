"""The scenarios: what each one offers (which runs, all at once or at a rate).

A scenario is a plan: a list of items (task, payload, the key it counts against) and an
offered rate (None: one `batch_trigger` of everything). Plans are deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from .measure import Limit

ORGS = 50


@dataclass(frozen=True)
class Item:
    task: str
    payload: Any
    key: str | None = None


@dataclass
class Plan:
    scenario: str
    items: list[Item]
    rate: float | None  # offered runs/s; None: everything in one batch_trigger
    description: str
    notes: list[str] = field(default_factory=list)
    unlimited: bool = False  # the same work with every concurrency and rate limit removed
    work_ms: float | None = None  # how long a keyed run holds its slot (per-org, mixed)
    without: str | None = None  # the key whose runs were taken out (`without_hot`)

    @property
    def hot(self) -> str | None:
        """The key with the most runs (the one taken out, once it is)."""
        if self.without is not None:
            return self.without
        counts = Counter(i.key for i in self.items if i.key is not None)
        return max(counts, key=lambda k: (counts[k], k)) if counts else None

    def without_hot(self) -> Plan:
        """The identical plan less the hot key's runs: do the other keys finish any sooner
        without it beside them?"""
        hot = self.hot
        if hot is None:
            raise ValueError(f"{self.scenario} has no keyed runs: no hot key to take out")
        items = [i for i in self.items if i.key != hot]
        if not items:
            raise ValueError(f"every run of {self.scenario} is {hot}'s: none is left without it")
        return replace(
            self,
            items=items,
            description=self.description + f" (without the hot key {hot}'s runs)",
            notes=list(self.notes),
            without=hot,
        )

    def without_limits(self) -> Plan:
        """The identical work (same bodies, payloads and keys, same order) on the tasks'
        twins that declare no concurrency or rate limit (`load.tasks.UNLIMITED`)."""
        from .tasks import UNLIMITED

        items = [
            Item(UNLIMITED[i.task], i.payload, i.key) if i.task in UNLIMITED else i
            for i in self.items
        ]
        return replace(
            self,
            items=items,
            description=self.description + " (unlimited: no concurrency or rate limits)",
            notes=list(self.notes),
            unlimited=True,
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    default_runs: int
    description: str


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("fanout", 100_000, "one batch_trigger of N noop runs"),
        Scenario(
            "per-org",
            20_000,
            f"N runs for {ORGS} organizations, one holding half the load; "
            "concurrency limit 10 per org; each run holds its slot ~10 ms",
        ),
        Scenario(
            "hot-key",
            4_000,
            "N runs of one organization alone (per-org's org-0 without the others): "
            "concurrency limit 10; each run holds its slot ~10 ms",
        ),
        Scenario(
            "rate-limited",
            3_000,
            "a task limited to 100 starts/s, offered at 10x that (1,000 runs/s)",
        ),
        Scenario(
            "mixed",
            20_000,
            "one batch: 70% noop, 15% per-org, 5% rate-limited, 5% failing once then "
            "retried, 5% checkpointing (3 checkpoints)",
        ),
        Scenario("steady", 0, "a fixed offered rate (--rate, default 500/s) for --duration s"),
    )
}


def org_of(rng: random.Random) -> str:
    """Half the load on org-0; the rest over org-1..49 with a 1/k (Zipf) skew."""
    if rng.random() < 0.5:
        return "org-0"
    weights = [1 / k for k in range(1, ORGS)]
    return f"org-{rng.choices(range(1, ORGS), weights)[0]}"


def _org_item(rng: random.Random, ms: float) -> Item:
    org = org_of(rng)
    return Item("load-org", {"org": org, "ms": ms}, org)


def build(
    name: str,
    *,
    runs: int | None = None,
    rate: float | None = None,
    duration: float = 10.0,
    work_ms: float = 10.0,
    seed: int = 1,
    unlimited: bool = False,
    without_hot: bool = False,
) -> Plan:
    plan = _build(name, runs=runs, rate=rate, duration=duration, work_ms=work_ms, seed=seed)
    if name in ("per-org", "mixed", "hot-key"):
        plan.work_ms = work_ms
    if without_hot:
        plan = plan.without_hot()
    return plan.without_limits() if unlimited else plan


def _build(
    name: str,
    *,
    runs: int | None,
    rate: float | None,
    duration: float,
    work_ms: float,
    seed: int,
) -> Plan:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    spec = SCENARIOS[name]
    rng = random.Random(seed)
    n = runs if runs is not None else spec.default_runs
    if name == "fanout":
        return Plan(name, [Item("load-noop", None)] * n, rate, spec.description)
    if name == "per-org":
        return Plan(name, [_org_item(rng, work_ms) for _ in range(n)], rate, spec.description)
    if name == "hot-key":  # (one key's slot turns alone: its ceiling, nothing beside it)
        item = Item("load-org", {"org": "org-0", "ms": work_ms}, "org-0")
        return Plan(name, [item] * n, rate, spec.description)
    if name == "rate-limited":
        from .tasks import RATE_LIMIT

        return Plan(
            name,
            [Item("load-rate", None)] * n,
            rate if rate is not None else 10.0 * RATE_LIMIT,
            spec.description,
        )
    if name == "mixed":
        items: list[Item] = []
        for _ in range(n):
            x = rng.random()
            if x < 0.70:
                items.append(Item("load-noop", None))
            elif x < 0.85:
                items.append(_org_item(rng, work_ms))
            elif x < 0.90:
                items.append(Item("load-rate", None))
            elif x < 0.95:
                items.append(Item("load-flaky", {"fail": 1}))
            else:
                items.append(Item("load-checkpoint", {"steps": 3}))
        return Plan(name, items, rate, spec.description)
    # steady
    r = rate if rate is not None else 500.0
    count = runs if runs is not None else max(1, int(r * duration))
    return Plan(name, [Item("load-noop", None)] * count, r, spec.description)


def declared_limits() -> dict[str, Limit]:
    """What the load tasks declare (`concurrency={...}`, `rate_limit={...}`)."""
    from .tasks import TASKS

    out: dict[str, Limit] = {}
    for task_id, t in TASKS.items():
        conc = t.concurrency.limit if t.concurrency is not None else None
        rl = t.rate_limit
        if conc is not None or rl is not None:
            out[task_id] = Limit(
                concurrency=conc,
                rate=rl.limit if rl is not None else None,
                period=rl.period if rl is not None else None,
            )
    return out


NEVER_FAIL = (
    "load-noop",
    "load-org",
    "load-rate",
    "load-checkpoint",
    "load-org-unlimited",
    "load-rate-unlimited",
)
