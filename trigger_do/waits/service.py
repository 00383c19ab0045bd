"""The engine side of waits: send the messages of resumed runs, complete parents' waitpoints
when children end (by any road: an outcome, a cancel, housekeeping's sweep), and cancel a
canceled run's waiting children."""

from __future__ import annotations

from typing import Any

from ..ports import OutMessage, Platform, Remote
from ..runs.client import Finished, RunIndex
from ..runs.index import RunIndexObject
from ..runs.index_waits import run_of
from ..shared.messages import RunMessage
from ..shared.serialization import dumps
from ..shared.states import FINAL_STATES

MAX_CASCADE = 10_000  # runs one cancel may reach through its descendants


class Waits:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.index = RunIndex(platform)

    async def send(self, resumed: list[dict[str, Any]]) -> None:
        """The messages of runs that left WAITING (`resume_ready` rows): same attempt."""
        if not resumed:
            return
        await self.platform.queue.send_all(
            [
                OutMessage(
                    RunMessage(
                        r["id"],
                        r["task"],
                        int(r["attempt"]),
                        int(r["dispatch"]),
                        queue=r["queue"],
                        key=r["concurrency_key"],
                        rate_key=r["rate_key"],
                    ).to_body()
                )
                for r in resumed
            ]
        )

    async def fire(self, shard: Remote[RunIndexObject], now: float) -> dict[str, Any]:
        """A run-index shard's due timers (`RunIndexObject.fire_timers`), and what they leave
        to do: send the runs whose waits came due (a backlog at once, not a tick later),
        complete the waits of parents whose children just expired."""
        res = await shard(RunIndexObject.fire_timers, now)
        await self.send(res.get("resumed") or [])
        more = bool(res.get("more"))
        while more:
            following = await shard(RunIndexObject.fire_waits, self.platform.clock.now())
            await self.send(following["resumed"])
            more = following["more"]
        await self.ended(res.get("expired") or [])
        return res

    async def after_finish(self, finished: Finished) -> None:
        """What a `finish_many` left to do: resumed runs' messages, parents' waitpoints."""
        await self.send(finished.resumed)
        await self.complete(finished.children)

    async def complete(self, items: list[dict[str, Any]]) -> int:
        """Record ended children as their parents' waitpoint items (on each parent's shard),
        and send the messages of the parents that resume. Returns how many resumed."""
        if not items:
            return 0
        now = self.platform.clock.now()
        resumed: list[dict[str, Any]] = []
        for shard, group in self.index.group(items, lambda i: run_of(i["waitpoint"])).items():
            resumed += await self.index.shard(shard)(RunIndexObject.complete_items, group, now)
        await self.send(resumed)
        return len(resumed)

    async def ended(self, run_ids: list[str]) -> int:
        """Runs that ended outside an attempt's outcome (canceled, expired, crashed): their
        parents' waitpoints, if any wait on them."""
        items: list[dict[str, Any]] = []
        for shard, ids in self.index.by_shard(run_ids).items():
            items += await self.index.shard(shard)(RunIndexObject.ended_children, ids)
        return await self.complete(items)

    async def canceled(self, run_ids: list[str]) -> list[str]:
        """Runs were canceled: cancel the children they wait on, and theirs (a level at a
        time, one call per shard), and resume the parents waiting on any of them. Returns
        the descendants canceled."""
        now = self.platform.clock.now()
        descendants: list[str] = []
        frontier = list(run_ids)
        while frontier and len(descendants) < MAX_CASCADE:
            children: list[str] = []
            for shard, ids in self.index.by_shard(frontier).items():
                waits = await self.index.shard(shard)(RunIndexObject.open_child_waits, 0.0, ids)
                children += [c for w in waits for c in w["children"]]
            frontier = []
            for shard, ids in self.index.by_shard(children).items():
                frontier += await self.index.shard(shard)(RunIndexObject.cancel_many, ids, now)
            descendants += frontier
        await self.ended(list(run_ids) + descendants)
        return descendants

    async def sweep(self, older_than: float) -> int:
        """Housekeeping's safety net: open waitpoints on children (older than `older_than`
        seconds) whose children have all ended, a completion lost on the way (a process died
        between a child's outcome and its parent's shard): complete them now."""
        before = self.platform.clock.now() - older_than
        items: list[dict[str, Any]] = []
        for n in range(self.index.count):
            for w in await self.index.shard(n)(RunIndexObject.open_child_waits, before):
                # as this waitpoint's items (a child a key shared may name another parent)
                at = {rid: i for i, rid in enumerate(w["children"])}
                rows = await self.index.get_many(list(at))
                items += [
                    {**item, "waitpoint": w["id"], "idx": at[item["run_id"]]}
                    for item in ended_items(rows, any_waitpoint=True)
                ]
        return await self.complete(items)

    # --- links over the HTTP API: a parent named by id (`options.parentRunId`) ------------

    async def links_for(self, parent_run_id: str, resume: bool | None) -> dict[str, Any] | None:
        """The options that make a run a child of `parent_run_id` (None: no such run)."""
        parent = await self.index.get(parent_run_id)
        if parent is None:
            return None
        opts = parent.get("options") or {}
        links: dict[str, Any] = {
            "parent_run_id": parent_run_id,
            "root_run_id": opts.get("root_run_id") or parent_run_id,
            "depth": int(opts.get("depth") or 0) + 1,
        }
        if resume is not None:
            links["resume_parent"] = resume
        return links

    async def link_batch(self, batch_id: str, links: dict[str, Any]) -> None:
        await self.index.on(batch_id)(RunIndexObject.link_batch, batch_id, links)

    async def batch_links(self, batch_id: str) -> dict[str, Any]:
        return await self.index.on(batch_id)(RunIndexObject.batch_links, batch_id)

    async def summary(self, run_id: str) -> list[dict[str, Any]]:
        """A run's waitpoints in call order, for people and agents: `[{position, kind, key,
        done, ended: [{id, state}]}]` (a child wait's children that have ended; no outputs)."""
        found = await self.index.on(run_id)(RunIndexObject.waits_of, run_id)
        return [
            {
                "position": int(seq),
                "kind": w["kind"],
                "key": w["key"],
                "done": w["done"],
                "ended": [{"id": i["run_id"], "state": i["state"]} for i in w["items"]],
            }
            for seq, w in sorted(found.items(), key=lambda kv: int(kv[0]))
        ]

    async def related(self, row: dict[str, Any], limit: int = 100) -> dict[str, Any]:
        """A run's root, parent (rows, when it has them) and children (oldest first)."""
        opts = row.get("options") or {}
        out: dict[str, Any] = {}
        ids = {k: opts.get(f"{k}_run_id") for k in ("root", "parent")}
        found = {r["id"]: r for r in await self.index.get_many([i for i in ids.values() if i])}
        for name, rid in ids.items():
            if rid in found:
                out[name] = found[rid]
        pages = await self.index.each(lambda s: s(RunIndexObject.children_of, row["id"], limit))
        children = sorted((c for page in pages for c in page), key=lambda c: c["created_at"])
        out["children"] = children[:limit]
        return out


def ended_items(rows: list[dict[str, Any]], any_waitpoint: bool = False) -> list[dict[str, Any]]:
    """The waitpoint items of the ended runs among `rows` (run-index rows) a parent waits on
    (`any_waitpoint`: every ended run, its waitpoint for the caller to fill in)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        opts = row.get("options") or {}
        if (any_waitpoint or opts.get("waitpoint")) and row["state"] in FINAL_STATES:
            out.append(
                {
                    "waitpoint": opts["waitpoint"],
                    "idx": int(opts.get("waitpoint_index") or 0),
                    "run_id": row["id"],
                    "state": row["state"],
                    "output": row["output"],
                    "output_packet": row["output_packet"],
                    "error": dumps(row["error"]) if row["error"] is not None else None,
                }
            )
    return out
