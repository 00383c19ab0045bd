"""`python -m load events --count 2000`: what an event costs over the triggers it stands for.
On the embedded runtime, `--count` events (each with an id, two subscribers) are sent one
after another through `Engine.events.send`, then the same work as two plain triggers each
(`Engine.trigger` twice, each with an idempotency key, as an event's runs carry); the runs
are left for the workers. Reports each side's sends per second (the median of `--rounds`
rounds, alternating) and their ratio: the price of the event store's claim, its completion
and the registry read."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trigger_do
from trigger_do.producer.producer import TriggerRequest


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m load events",
        description="Events (two subscribers each) against two plain triggers per event.",
    )
    p.add_argument("--count", type=int, default=2000, help="events per round (2,000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each (3)")
    p.add_argument("--workers", type=int, default=1, help="embedded worker processes (1)")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the report as JSON")
    return p


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db = Path(tempfile.mkdtemp(prefix="load-events-")) / "t.db"
    async with trigger_do.local(tasks="load.event_tasks", db=db, workers=args.workers) as rt:
        engine = rt.engine
        events_rates: list[float] = []
        plain_rates: list[float] = []
        for r in range(args.rounds):
            started = time.monotonic()
            for i in range(args.count):
                sent = await engine.events.send("load.signup", {"user_id": f"u{i}"}, id=f"e{r}-{i}")
                assert len(sent["runs"]) == 2, sent
            events_rates.append(args.count / (time.monotonic() - started))
            started = time.monotonic()
            for i in range(args.count):
                payload = {"user_id": f"u{i}"}
                for t in ("load-plain-welcome", "load-plain-audit"):
                    opts = {"idempotency_key": f"p{r}-{i}"}
                    await engine.trigger(TriggerRequest(t, payload, opts))
            plain_rates.append(args.count / (time.monotonic() - started))
    events_median = statistics.median(events_rates)
    plain_median = statistics.median(plain_rates)
    return {
        "count": args.count,
        "rounds": args.rounds,
        "events_per_s": round(events_median),
        "plain_pairs_per_s": round(plain_median),
        "ratio": round(events_median / plain_median, 2),
        "events_rounds": [round(x) for x in events_rates],
        "plain_rounds": [round(x) for x in plain_rates],
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = asyncio.run(run(args))
    print(
        f"{report['count']} events x {report['rounds']} rounds: "
        f"{report['events_per_s']:,} events/s (2 runs each) vs "
        f"{report['plain_pairs_per_s']:,} pairs of triggers/s: ratio {report['ratio']}"
    )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
