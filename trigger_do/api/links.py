"""Parent and child runs over the HTTP API: `options.parentRunId` and
`resumeParentOnCompletion` on a trigger, `parentRunId` on a batch, recorded on the runs
(waits/), and a run's `relatedRuns` (root, parent, children), `depth` and `triggerFunction`
in its retrieve response."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..engine import Engine
from ..producer.producer import TriggerRequest
from . import shapes
from .requests import invalid_field


async def parent_links(
    engine: Engine, parent_run_id: str | None, resume: bool | None, loc: str
) -> dict[str, Any]:
    """The options a run triggered with `parentRunId` gets (none without one); 422 naming
    `loc` when no such run exists."""
    if parent_run_id is None:
        return {}
    links = await engine.waits.links_for(parent_run_id, resume)
    if links is None:
        raise invalid_field(loc, f"no run with id {parent_run_id!r}")
    return links


def linked(req: TriggerRequest, links: dict[str, Any]) -> TriggerRequest:
    if not links:
        return req
    options = req.options if isinstance(req.options, dict) else {}
    return replace(req, options={**options, **links})


def trigger_function(row: dict[str, Any]) -> str:
    waits = bool((row.get("options") or {}).get("waitpoint"))
    batch = bool(row.get("batch_id"))
    return (
        ("batchTriggerAndWait" if batch else "triggerAndWait")
        if waits
        else ("batchTrigger" if batch else "trigger")
    )


def _related(row: dict[str, Any], now: float) -> dict[str, Any]:
    out = shapes.list_item(row, now)
    del out["env"]
    out["depth"] = int((row.get("options") or {}).get("depth") or 0)
    out["triggerFunction"] = trigger_function(row)
    return out


async def with_related(engine: Engine, row: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """A retrieve response `out` of `row` with its `relatedRuns`, `depth` and
    `triggerFunction` filled in."""
    now = engine.now()
    related = await engine.waits.related(row)
    runs: dict[str, Any] = {}
    for name in ("root", "parent"):
        if name in related:
            runs[name] = _related(related[name], now)
    if related["children"]:
        runs["children"] = [_related(c, now) for c in related["children"]]
    out["relatedRuns"] = runs
    out["depth"] = int((row.get("options") or {}).get("depth") or 0)
    out["triggerFunction"] = trigger_function(row)
    opts = row.get("options") or {}
    for name, key in (("parentRunId", "parent_run_id"), ("rootRunId", "root_run_id")):
        if opts.get(key):
            out["triggerDo"][name] = opts[key]
    waits = await engine.waits.summary(row["id"])
    if waits:  # omitted when none, as every optional field (the CLI's shape has none)
        out["triggerDo"]["waits"] = waits
    return out
