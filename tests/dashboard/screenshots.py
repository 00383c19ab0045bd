"""Screenshots of every dashboard page for the README: `python -m tests.dashboard.screenshots`
(writes docs/dashboard/*.png). It serves `examples.tasks` and the dashboard tests' tasks
on a fresh database, makes runs of every kind, and photographs each page in Chromium."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import examples.tasks  # noqa: F401
import tests.dashboard.tasks_dash
import tests.http.tasks_http  # noqa: F401
from tests.dashboard.test_browser import CHROMIUM
from tests.http.conftest import KEY, ServerThread, free_port
from trigger_do.api.app import create_app
from trigger_do.dashboard.login import login_url
from trigger_do.engine import Engine
from trigger_do.platform.local.platform import open_local
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.runs.index import RunIndexObject

OUT = Path(__file__).resolve().parents[2] / "docs" / "dashboard"
TASKS = ["examples.tasks", "tests.http.tasks_http", "tests.dashboard.tasks_dash"]


def seed(api: httpx.Client, db: Path) -> dict[str, str]:
    def trigger(task: str, payload: Any, **options: Any) -> str:
        r = api.post(f"/api/v1/tasks/{task}/trigger", json={"payload": payload, "options": options})
        r.raise_for_status()
        run_id: str = r.json()["id"]
        return run_id

    def wait(run_id: str) -> None:
        for _ in range(400):
            if api.get(f"/api/v3/runs/{run_id}").json()["status"] not in (
                "QUEUED", "EXECUTING", "DELAYED"
            ):  # fmt: skip
                return
            time.sleep(0.05)

    made = {"work": trigger("dash-work", {"items": 4}, tags=["customer_42"])}
    made["email"] = trigger(
        "send-email", {"to": "ada@example.com", "subject": "Welcome", "body": "Hi Ada"},
        tags=["customer_42", "onboarding"],
    )  # fmt: skip
    made["failed"] = trigger("validate-order", {"order_id": "o_17", "items": []})
    made["retry"] = trigger("sync-data", {"source_id": "crm", "fail_times": 1})
    made["delayed"] = trigger("http-echo", {"remind": "invoice"}, delay="2h", tags=["billing"])
    made["running"] = trigger("http-sleep", {"seconds": 600})
    made["dead"] = trigger("http-echo", {"n": 1}, delay="1h")
    made["parent"] = trigger("dash-parent", {"wait": "1s"}, tags=["customer_42"])
    made["waiting"] = trigger("dash-parent", {"wait": "3d"})
    for run_id in (made["work"], made["email"], made["failed"], made["retry"], made["waiting"]):
        wait(run_id)
    for _ in range(400):  # the parent waits on its child, then completes
        if api.get(f"/api/v3/runs/{made['parent']}").json()["status"] == "COMPLETED":
            break
        time.sleep(0.05)
    sent = api.post("/api/v1/events", json={"name": "dash.ping", "payload": {"user": "u1"}})
    made["event_run"] = sent.json()["runs"][0]
    api.post("/api/v1/events", json={"name": "user.signed_up", "payload": {"user": "u2"}})
    body = json.dumps({"type": "dash.hook", "order": 17}).encode()
    signature = hmac.new(b"dash-secret", body, hashlib.sha256).hexdigest()
    api.post(
        "/webhooks/hmac", content=body,
        headers={"X-Signature": signature, "X-Event": "dash.hook", "X-Delivery-Id": "dlv_0017"},
    ).raise_for_status()  # fmt: skip
    api.post(f"/api/v1/runs/{made['email']}/replay").raise_for_status()

    async def bury() -> None:
        platform, _ = open_local(db)
        engine = Engine(platform)
        letter = {"run_id": made["dead"], "task": "http-echo", "dispatch": 1, "body": "{}",
                  "deliveries": 4, "reason": "max deliveries exceeded"}  # fmt: skip
        await engine.index.on(made["dead"])(RunIndexObject.dead_letter, [letter], engine.now())

    asyncio.run(bury())
    api.post("/api/v1/queues/task/http-limited/pause").raise_for_status()
    api.post(
        "/api/v1/schedules",
        json={"task": "dash-report", "cron": "0 9 * * 1", "deduplicationKey": "weekly",
              "externalId": "acme", "timezone": "Europe/Paris"},
    ).raise_for_status()  # fmt: skip
    api.post(
        "/api/v1/bulk-actions",
        json={"action": "cancel", "name": "stale reminders", "runIds": [made["delayed"]]},
    )
    return made


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "shots.db"
        runtime = LocalRuntime(TASKS, db, workers=2, poll_interval=0.01)
        app = create_app(runtime.engine, KEY)
        port = free_port()
        server = ServerThread(app, port, runtime)
        server.start()
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}) as api:
                made = seed(api, db)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{url}/login")
                page.screenshot(path=OUT / "login.png")
                page.goto(login_url(app, url, time.time()))
                shots = {
                    "runs": "/runs",
                    "run": f"/runs/{made['work']}",
                    "run-failed": f"/runs/{made['failed']}",
                    "tasks": "/tasks",
                    "task": "/tasks/send-email",
                    "queues": "/queues",
                    "dead-letters": "/dead-letters",
                    "schedules": "/schedules",
                    "bulk-actions": "/bulk-actions",
                    "run-parent": f"/runs/{made['parent']}",
                    "run-waiting": f"/runs/{made['waiting']}",
                    "events": "/events",
                    "webhooks": "/webhooks",
                }
                for name, path in shots.items():
                    page.goto(url + path)
                    page.wait_for_timeout(300)
                    page.screenshot(path=OUT / f"{name}.png", full_page=name.startswith("run-"))
                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                phone.goto(login_url(app, url, time.time()))
                phone.goto(f"{url}/runs/{made['work']}")
                phone.screenshot(path=OUT / "phone-run.png")
                browser.close()
        finally:
            server.stop()
    print("\n".join(sorted(str(p.relative_to(OUT.parents[1])) for p in OUT.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
