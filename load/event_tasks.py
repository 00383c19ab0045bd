"""The subscribers of the `events` load scenario (load/events.py): two noops on one name,
and the same work declared as plain tasks (the baseline: two triggers per event)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from trigger_do import task


class Signup(BaseModel):
    user_id: str


@task(id="load-ev-welcome", event="load.signup")
async def welcome(event: Signup) -> str:
    return event.user_id


@task(id="load-ev-audit", event="load.*")
async def audit(event: dict[str, Any]) -> str:
    return str(event["user_id"])


@task(id="load-plain-welcome")
async def plain_welcome(event: Signup) -> str:
    return event.user_id


@task(id="load-plain-audit")
async def plain_audit(event: dict[str, Any]) -> str:
    return str(event["user_id"])
