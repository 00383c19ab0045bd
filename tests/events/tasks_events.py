"""Subscribed tasks for the events tests: two on `user.created` (one through the `user.*`
family), a strict one beside a lax one on `order.placed`, and webhook subscribers of each
preset. `SEEN` records what runs in this process received."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from trigger_do import RunContext, task, trigger, webhooks

SEEN: list[tuple[str, Any]] = []
STRIPE_SECRET = "whsec_test_secret_for_tests"

# a source of one's own: the hmac preset, its fields changed
webhooks.source(
    "acme",
    preset="hmac",
    signature_header="X-Acme-Signature",
    prefix="sha256=",
    event_header=None,
    event_field="kind",
    delivery_header=None,
)
webhooks.source("nosecret", preset="hmac")  # no secret anywhere: every delivery refused


class UserCreated(BaseModel):
    user_id: str


class Order(BaseModel):
    order_id: str
    amount: int


@task(id="ev-welcome", event="user.created")
async def welcome(event: UserCreated, ctx: RunContext) -> str:
    SEEN.append(("ev-welcome", event))
    return f"welcome {event.user_id}"


@trigger(id="ev-audit", event="user.*")
async def audit(event: dict[str, Any]) -> dict[str, Any]:
    SEEN.append(("ev-audit", event))
    return {"audited": event}


@task(id="ev-order-mail", event="order.placed")
async def order_mail(order: Order) -> int:
    SEEN.append(("ev-order-mail", order))
    return order.amount


@task(id="ev-order-log", event="order.placed")
async def order_log(order: dict[str, Any]) -> str:
    SEEN.append(("ev-order-log", order))
    return "logged"


@task(id="ev-gh-push", source="github", event="push")
async def gh_push(event: dict[str, Any]) -> str:
    SEEN.append(("ev-gh-push", event))
    return str(event["payload"].get("ref"))


@task(id="ev-gh-pr-opened", source="github", event="pull_request.opened")
async def gh_pr_opened(event: dict[str, Any]) -> int:
    SEEN.append(("ev-gh-pr-opened", event))
    return int(event["payload"]["number"])


@task(id="ev-stripe-invoice", source="stripe", event="invoice.*", secret=STRIPE_SECRET)
async def stripe_invoice(event: dict[str, Any]) -> str:
    SEEN.append(("ev-stripe-invoice", event))
    return str(event["event"])


@task(id="ev-acme", source="acme", event="thing.happened")
async def acme(event: dict[str, Any]) -> str:
    SEEN.append(("ev-acme", event))
    return str(event["delivery_id"])


@task(id="ev-nosecret", source="nosecret")
async def nosecret(event: dict[str, Any]) -> None:
    SEEN.append(("ev-nosecret", event))


class Bloated(BaseModel):
    note: str
    pad: str = "x" * 4096  # the schema's default makes the validated payload larger


@task(id="ev-bloat", event="bloat.happened")
async def bloat(event: Bloated) -> int:
    return len(event.pad)


@task(id="ev-bloat-log", event="bloat.*")
async def bloat_log(event: dict[str, Any]) -> str:
    return str(event["note"])


@task(id="ev-hmac", source="hmac", event="order.*")
async def on_hmac(event: dict[str, Any]) -> str:
    return str(event["delivery_id"])
