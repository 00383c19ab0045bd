"""The event and webhook tools through `trigger-do mcp` over stdio (the `mcp` SDK's client,
a real process, real workers, a real database file)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import httpx
from mcp import Client

from tests.mcp.test_mcp_stdio import call, error, said, trigger_do_mcp


async def test_events_and_webhook_deliveries(tmp_path: Path) -> None:
    server = trigger_do_mcp("--tasks", "tests.mcp.mcp_event_tasks", "--db", str(tmp_path / "t.db"))
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in ("send_event", "replay_event", "replay_webhook_delivery"):
            assert tools[name].annotations.read_only_hint is False  # type: ignore[union-attr]
            assert tools[name].annotations.destructive_hint is False  # type: ignore[union-attr]
        for name in ("list_events", "list_webhook_deliveries"):
            assert tools[name].annotations.read_only_hint is True  # type: ignore[union-attr]
        assert "from" in tools["list_events"].input_schema["properties"]

        sent = await call(
            client, "send_event", {"name": "signup.done", "payload": {"user": "u1"}, "id": "e1"}
        )
        data = sent.structured_content
        assert data is not None and data["id"] == "e1" and len(data["runs"]) == 1
        assert said(sent) == f"Sent event signup.done as e1: {data['runs'][0]}"
        again = said(
            await call(
                client, "send_event", {"name": "signup.done", "payload": {"user": "u1"}, "id": "e1"}
            )
        )
        assert "(an existing event: same id)" in again
        nobody = said(await call(client, "send_event", {"name": "other", "payload": {}}))
        assert nobody.endswith("no run (no task subscribes to it)")

        listed = await call(client, "list_events", {"name": "signup.done", "limit": 1})
        assert listed.structured_content is not None
        assert [e["id"] for e in listed.structured_content["data"]] == ["e1"]
        assert said(listed).startswith("e1  signup.done  ")
        assert said(await call(client, "list_events", {"name": "never"})) == "No events."

        replayed = await call(client, "replay_event", {"eventId": "e1"})
        assert replayed.structured_content is not None
        assert replayed.structured_content["runs"] != data["runs"]
        assert said(replayed).startswith("Replayed event e1 as ")

        assert said(await call(client, "list_webhook_deliveries", {})) == ("No webhook deliveries.")
        # the API's errors reach the agent
        missing = await error(client, "replay_event", {"eventId": "nope"})
        assert "nope" in missing
        assert "nope" in await error(client, "replay_webhook_delivery", {"deliveryId": "nope"})
        assert "cursor" in await error(client, "list_events", {"cursor": "bogus"})
        assert "name" in await error(client, "send_event", {"name": "", "payload": {}})
        assert (await error(client, "send_event", {})).startswith("invalid arguments: name")


async def test_readonly_hides_the_event_writes(tmp_path: Path) -> None:
    server = trigger_do_mcp(
        "--readonly", "--tasks", "tests.mcp.mcp_event_tasks", "--db", str(tmp_path / "t.db")
    )
    async with Client(server) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"list_events", "list_webhook_deliveries"} <= names
        assert not {"send_event", "replay_event", "replay_webhook_delivery"} & names


async def test_a_webhook_delivery_listed_and_replayed(tmp_path: Path) -> None:
    """A signed GitHub delivery on a real server; the tools over `--target` see and replay it."""
    import tests.mcp.mcp_event_tasks  # noqa: F401  (the server serves its sources)
    from tests.http.conftest import ServerThread, free_port
    from tests.mcp.conftest import KEY
    from trigger_do.api.app import create_app
    from trigger_do.platform.local.runtime import LocalRuntime

    runtime = LocalRuntime(
        ["tests.mcp.mcp_event_tasks"], tmp_path / "t.db", workers=1, poll_interval=0.01
    )
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "release",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature,
        }
        async with httpx.AsyncClient() as http:
            got = await http.post(f"{url}/webhooks/github", content=body, headers=headers)
        assert got.status_code == 200, got.text
        first_runs = got.json()["runs"]
        assert len(first_runs) == 1

        async with Client(trigger_do_mcp("--target", url, TRIGGER_SECRET_KEY=KEY)) as client:
            listed = await call(client, "list_webhook_deliveries", {"source": "github"})
            assert listed.structured_content is not None
            [row] = listed.structured_content["data"]
            assert (row["id"], row["event"], row["source"]) == ("d-1", "release", "github")
            assert said(listed).startswith("d-1  release  github  ")
            assert said(await call(client, "list_webhook_deliveries", {"event": "nope"})) == (
                "No webhook deliveries."
            )
            replayed = await call(
                client, "replay_webhook_delivery", {"deliveryId": "d-1", "source": "github"}
            )
            assert replayed.structured_content is not None
            new_runs = replayed.structured_content["runs"]
            assert len(new_runs) == 1 and new_runs != first_runs
            assert said(replayed).startswith("Replayed delivery d-1 as ")
    finally:
        thread.stop()
