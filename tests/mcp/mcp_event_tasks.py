"""A task subscribed to events, for the MCP event tools' test."""

from __future__ import annotations

from trigger_do import task


@task(id="mcp-on-signup", event="signup.*")
async def on_signup(event: dict[str, str]) -> str:
    return event["user"]


@task(id="mcp-on-push", source="github", event="push", secret="s3cret")
async def on_push(event: dict[str, dict[str, str]]) -> str:
    return event["payload"]["ref"]
