"""`trigger-do mcp` over stdio, driven by the `mcp` SDK's own client: a real process, real
workers, a real database file; and `--readonly` and `--target` against a real server."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

ROOT = Path(__file__).resolve().parents[2]
WRITES = {
    "trigger_task",
    "cancel_run",
    "replay_run",
    "pause_queue",
    "resume_queue",
    "requeue",
    "create_schedule",
    "delete_schedule",
    "activate_schedule",
    "deactivate_schedule",
    "send_event",
    "replay_event",
    "replay_webhook_delivery",
}
READS = {
    "get_tasks",
    "get_task_schema",
    "list_runs",
    "get_run_details",
    "wait_for_run_to_complete",
    "list_queues",
    "list_dead_letters",
    "list_schedules",
    "list_events",
    "list_webhook_deliveries",
}


def trigger_do_mcp(*args: str, **env: str) -> StdioServerParameters:
    """`trigger-do mcp ARGS` (the installed script, importing this tree via PYTHONPATH)."""
    script = shutil.which("trigger-do")
    command, head = (script, []) if script else (sys.executable, ["-m", "trigger_do.cli"])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return StdioServerParameters(
        command=command, args=[*head, "mcp", *args], env={**environ, **env}, cwd=str(ROOT)
    )


def said(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    result = await client.call_tool(tool, args)
    assert not result.is_error, said(result)
    return result


async def error(client: Client, tool: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, said(result)
    return said(result)


async def test_an_agent_session_on_the_embedded_runtime(tmp_path: Path) -> None:
    server = trigger_do_mcp("--tasks", "tests.mcp.mcp_tasks", "--db", str(tmp_path / "t.db"))
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == READS | WRITES
        for name, tool in tools.items():
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (name in READS), name
        assert tools["cancel_run"].annotations.destructive_hint is True  # type: ignore[union-attr]
        assert tools["trigger_task"].annotations.destructive_hint is False  # type: ignore[union-attr]
        assert "from" in tools["list_runs"].input_schema["properties"]

        listed = said(await call(client, "get_tasks", {"projectRef": "proj_x"}))
        assert "mcp-add: queue task/mcp-add; concurrency 2 per payload.a" in listed
        schema = await call(client, "get_task_schema", {"taskSlug": "mcp-add"})
        assert schema.structured_content is not None
        assert schema.structured_content["payloadSchema"]["required"] == ["a", "b"]

        # trigger, wait, read the details (Trigger.dev's extra arguments are ignored)
        args = {"taskId": "mcp-add", "payload": {"a": 2, "b": 3}, "environment": "dev"}
        triggered = await call(client, "trigger_task", {**args, "options": {"tags": ["t1"]}})
        assert triggered.structured_content is not None
        run_id = triggered.structured_content["id"]
        waited = await call(
            client, "wait_for_run_to_complete", {"runId": run_id, "timeoutInSeconds": 60}
        )
        assert waited.structured_content == {
            "run": waited.structured_content["run"],
            "completed": True,
        }
        assert f"Run {run_id} of task mcp-add: COMPLETED" in said(waited)
        details = said(await call(client, "get_run_details", {"runId": run_id}))
        assert 'payload: {"a": 2, "b": 3}' in details
        assert 'output: {"sum": 5}' in details
        assert '- added: {"sum": 5}' in details  # the checkpoint
        assert "[info] (attempt 1) adding" in details  # the log line
        runs = said(
            await call(
                client,
                "list_runs",
                {"taskIdentifier": "mcp-add", "status": "COMPLETED", "tag": "t1", "period": "1h"},
            )
        )
        assert run_id in runs

        # cancel another; a second cancel says it had finished
        slow = await call(client, "trigger_task", {"taskSlug": "mcp-slow", "payload": {}})
        slow_id = slow.structured_content["id"]  # type: ignore[index]
        assert said(await call(client, "cancel_run", {"runId": slow_id})) == (
            f"Canceled run {slow_id}"
        )
        again = said(await call(client, "cancel_run", {"runId": slow_id}))
        assert again == f"Run {slow_id} was not canceled: it is already CANCELED"
        # a delayed run: the wait times out and says where the run is
        delayed = await call(
            client,
            "trigger_task",
            {"taskId": "mcp-add", "payload": {"a": 1, "b": 1}, "options": {"delay": "1h"}},
        )
        delayed_id = delayed.structured_content["id"]  # type: ignore[index]
        timed_out = await call(
            client, "wait_for_run_to_complete", {"runId": delayed_id, "timeoutInSeconds": 0.2}
        )
        assert said(timed_out).startswith("Still DELAYED after 0.2s.")
        replayed = said(await call(client, "replay_run", {"runId": run_id}))
        assert replayed.startswith(f"Replayed run {run_id} as run run_")
        queues = said(await call(client, "list_queues", {}))
        assert "- task/mcp-add:" in queues
        assert said(await call(client, "pause_queue", {"queue": "task/mcp-slow"})).startswith(
            "Paused queue task/mcp-slow"
        )
        assert "PAUSED" in said(await call(client, "list_queues", {}))
        await call(client, "resume_queue", {"queue": "task/mcp-slow"})
        assert said(await call(client, "list_dead_letters", {})) == "No dead letters."
        assert said(await call(client, "requeue", {"all": True})) == "Requeued nothing"

        # every error is a tool error with the API's message; the server goes on
        assert await error(client, "trigger_task", {"taskId": "nope", "payload": {}}) == (
            "unknown task 'nope' (known tasks: mcp-add, mcp-slow)"
        )
        bad = await error(client, "trigger_task", {"taskId": "mcp-add", "payload": {"a": "x"}})
        assert bad.startswith("task 'mcp-add': payload failed its schema: a: Input should be")
        assert "b: Field required" in bad
        assert await error(client, "trigger_task", {"payload": {}}) == (
            "invalid arguments: taskId is required"
        )
        assert await error(client, "get_run_details", {"runId": "run_nope"}) == (
            "no run with id 'run_nope'"
        )
        assert await error(client, "cancel_run", {"runId": "run_nope"}) == (
            "no run with id 'run_nope'"
        )
        assert await error(client, "get_task_schema", {"taskId": "nope"}) == (
            "unknown task 'nope' (known tasks: mcp-add, mcp-slow)"
        )
        assert await error(client, "list_runs", {"limit": 500}) == (
            "invalid arguments: limit: Input should be less than or equal to 100"
        )
        assert await error(client, "list_runs", {"status": "BOGUS"}) == (
            "filter[status]: unknown status 'BOGUS'"
        )
        assert await error(client, "list_runs", {"from": "yesterday"}) == (
            "from: expected an ISO date or epoch milliseconds, not 'yesterday'"
        )
        delay = await error(
            client, "trigger_task", {"taskId": "mcp-add", "payload": {}, "options": {"delay": "x"}}
        )
        assert "delay" in delay
        assert await error(client, "requeue", {}) == (
            "invalid arguments: give runIds or all: true (one of them)"
        )
        assert (await error(client, "no_such_tool", {})).startswith("unknown tool 'no_such_tool'")
        # still serving
        assert run_id in said(await call(client, "list_runs", {"limit": 100}))


async def test_readonly_over_a_server(http_server: Any) -> None:
    """`--readonly --target URL`: only the tools that write nothing, on a running server."""
    server = trigger_do_mcp(
        "--readonly", "--target", http_server.url, TRIGGER_SECRET_KEY=http_server.key
    )
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == READS
        assert "mcp-add" in said(await call(client, "get_tasks", {}))
        hidden = await error(client, "trigger_task", {"taskId": "mcp-add", "payload": {}})
        assert hidden == "unknown tool 'trigger_task' (hidden: this server is --readonly)"
        assert await error(client, "get_run_details", {"runId": "run_nope"}) == (
            "no run with id 'run_nope'"
        )


async def test_a_wrong_key_is_a_tool_error(http_server: Any) -> None:
    server = trigger_do_mcp("--target", http_server.url, TRIGGER_SECRET_KEY="tr_dev_wrong")
    async with Client(server) as client:
        assert await error(client, "get_tasks", {}) == "invalid secret key"


def test_mcp_needs_tasks_or_a_target() -> None:
    import subprocess

    params = trigger_do_mcp()
    for extra, message in (
        ([], "give --tasks MODULE (run the embedded runtime) or --target URL"),
        (["--tasks", "x", "--target", "http://x"], "give --tasks (the embedded runtime) or"),
    ):
        done = subprocess.run(
            [params.command, *params.args, *extra],
            env=params.env,
            cwd=params.cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"trigger-do: {message}"), done.stderr
        assert done.stdout == ""
