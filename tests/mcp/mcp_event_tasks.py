"""A task subscribed to events, for the MCP event tools' test."""

from __future__ import annotations

from trigger_do import task


@task(id="mcp-on-signup", event="signup.*")
async def on_signup(event: dict[str, str]) -> str:
    return event["user"]


# GitHub's `release`: no other test module subscribes to it, so the runs a delivery starts
# here are this module's whatever else the test process imported
@task(id="mcp-on-release", source="github", event="release", secret="s3cret")
async def on_release(event: dict[str, dict[str, str]]) -> str:
    return event["payload"]["ref"]
