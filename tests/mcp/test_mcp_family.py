"""`get_run_details` shows a run's parent, root, children and waits (a real `trigger-do mcp`
process over stdio, real workers, a real database file)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mcp import Client

from tests.mcp.test_mcp_stdio import call, said, trigger_do_mcp


async def test_details_show_children_parent_and_waits(tmp_path: Path) -> None:
    server = trigger_do_mcp("--tasks", "tests.mcp.mcp_family_tasks", "--db", str(tmp_path / "t.db"))
    async with Client(server) as client:
        made = await call(client, "trigger_task", {"taskId": "mcp-parent", "payload": {"n": 4}})
        parent_id = made.structured_content["id"]  # type: ignore[index]
        for _ in range(600):  # until the parent waits on its timer (the child has ended)
            details = await call(client, "get_run_details", {"runId": parent_id})
            run = details.structured_content["run"]  # type: ignore[index]
            if run["status"] == "WAITING" and len(run["triggerDo"]["waits"]) == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(said(details))
        text = said(details)
        assert f"Run {parent_id} of task mcp-parent: WAITING" in text
        [child] = details.structured_content["run"]["relatedRuns"]["children"]  # type: ignore[index]
        child_id = child["id"]
        assert f"children (1):\n  - {child_id} mcp-child COMPLETED" in text
        assert (
            f"waits (2):\n  1. run: done, {child_id} completed\n"
            "  2. timer key 'cooling-off': open" in text
        ), text
        assert "\nparent: " not in text  # a root run

        child_text = said(await call(client, "get_run_details", {"runId": child_id}))
        assert f"parent: {parent_id}" in child_text.splitlines()  # root = parent: said once
        assert "waits" not in child_text and "children" not in child_text
        assert "output: 8" in child_text
