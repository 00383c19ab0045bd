"""Imperative schedules over HTTP on a real socket (Trigger.dev's paths and shapes), from
Python (embedded and remote) and from the CLI, against the embedded runtime serving
`tests.schedules.tasks_sched`; runs a schedule starts carry it (`schedule` on retrieve,
`filter[schedule]` on list, `RunStatus.schedule`, `runs list --schedule`).

Time here is the real one: to have an instant due now, a test moves a schedule's next
instant to the present (`make_due`), as a scheduler back from downtime finds it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.conftest import ServerThread, free_port
from trigger_do import schedules
from trigger_do.api.app import create_app
from trigger_do.errors import InvalidScheduleError, ScheduleNotFoundError
from trigger_do.platform.local.runtime import LocalRuntime
from trigger_do.schedules.scheduler import SchedulerObject
from trigger_do.sdk.client import configure

KEY = "tr_dev_ScheduleTestKey000000001"
ROOT = Path(__file__).resolve().parents[2]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TRIGGER_", "PYTEST"))}


class Server:
    def __init__(self, url: str, db: Path, runtime: LocalRuntime) -> None:
        self.url, self.db, self.runtime = url, db, runtime

    def make_due(self, schedule_id: str) -> float:
        """Move the schedule's next instant to now (to the second): the supervisor fires it
        at its next tick. Returns that instant."""
        sql = self.runtime.sql
        instant = float(int(time.time()))

        def move() -> None:
            sql.exec("UPDATE schedules SET next_at = ? WHERE id = ?", instant, schedule_id)
            SchedulerObject(sql, SchedulerObject.NAME)._rearm()

        sql.transaction(move)
        return instant


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("sched-http") / "t.db"
    runtime = LocalRuntime(
        ["tests.schedules.tasks_sched"], db, workers=1, lease_seconds=5.0, poll_interval=0.01
    )
    port = free_port()
    thread = ServerThread(create_app(runtime.engine, KEY), port, runtime)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", db, runtime)
    finally:
        thread.stop()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
        yield c


async def _finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run = (await http.get(f"/api/v3/runs/{run_id}")).json()
        if run["isCompleted"]:
            return dict(run)
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.05)


async def _runs_of(http: httpx.AsyncClient, schedule_id: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        r = await http.get("/api/v1/runs", params={"filter[schedule]": schedule_id})
        assert r.status_code == 200, r.text
        if len(r.json()["data"]) >= n:
            return list(r.json()["data"])
        assert time.monotonic() < deadline, f"{schedule_id}: {r.json()['data']}"
        await asyncio.sleep(0.05)


async def test_crud_over_http(http: httpx.AsyncClient) -> None:
    body = {"task": "sched-report", "cron": "0 9 * * 1", "deduplicationKey": "http-crud",
            "externalId": "user-9", "timezone": "Europe/Paris"}  # fmt: skip
    r = await http.post("/api/v1/schedules", json=body)
    assert r.status_code == 200, r.text
    made = r.json()
    assert made["id"].startswith("sched_") and made["type"] == "IMPERATIVE"
    assert made["task"] == "sched-report" and made["active"] is True
    assert made["deduplicationKey"] == "http-crud" and made["externalId"] == "user-9"
    assert made["generator"] == {
        "type": "CRON", "expression": "0 9 * * 1", "description": "At 09:00 AM, only on Monday"
    }  # fmt: skip
    assert made["timezone"] == "Europe/Paris" and made["nextRun"].endswith(":00:00.000Z")
    assert made["environments"] == [{"id": "env_local", "type": "DEVELOPMENT"}]
    # the same deduplication key again: that schedule, updated
    again = (await http.post("/api/v1/schedules", json={**body, "cron": "0 10 * * 1"})).json()
    assert again["id"] == made["id"] and again["generator"]["expression"] == "0 10 * * 1"

    got = (await http.get(f"/api/v1/schedules/{made['id']}")).json()
    assert got == again
    r = await http.put(
        f"/api/v1/schedules/{made['id']}",
        json={"task": "sched-report", "cron": "15 8 * * *", "timezone": "Asia/Tokyo"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["generator"]["expression"] == "15 8 * * *" and "externalId" not in r.json()
    off = (await http.post(f"/api/v1/schedules/{made['id']}/deactivate")).json()
    assert off["active"] is False and "nextRun" not in off
    on = (await http.post(f"/api/v1/schedules/{made['id']}/activate")).json()
    assert on["active"] is True and on["nextRun"]
    r = await http.delete(f"/api/v1/schedules/{made['id']}")
    assert r.status_code == 200 and r.json() == {"id": made["id"]}
    for method, tail in (("GET", ""), ("DELETE", ""), ("POST", "/activate"),
                         ("POST", "/deactivate")):  # fmt: skip
        r = await http.request(method, f"/api/v1/schedules/{made['id']}{tail}")
        assert (r.status_code, r.json()["error"]) == (404, "Schedule not found"), (method, tail)
    r = await http.put(
        f"/api/v1/schedules/{made['id']}", json={"task": "sched-report", "cron": "0 0 * * *"}
    )
    assert (r.status_code, r.json()["error"]) == (404, "Schedule not found")


async def test_list_pages_and_declarative_schedules(http: httpx.AsyncClient) -> None:
    for i in range(5):
        body = {"task": "sched-report", "cron": "0 0 * * *", "deduplicationKey": f"list-{i}"}
        assert (await http.post("/api/v1/schedules", json=body)).status_code == 200
    page = (await http.get("/api/v1/schedules", params={"perPage": 2})).json()
    count = page["pagination"]["count"]
    assert count >= 5 + 4  # and the tasks' 4 declarative schedules
    assert page["pagination"] == {"currentPage": 1, "totalPages": -(-count // 2), "count": count}
    assert len(page["data"]) == 2
    seen = []
    for n in range(1, page["pagination"]["totalPages"] + 1):
        got = (await http.get("/api/v1/schedules", params={"perPage": 2, "page": n})).json()
        seen += [s["id"] for s in got["data"]]
    assert len(seen) == len(set(seen)) == count
    big = (await http.get("/api/v1/schedules", params={"perPage": 500})).json()
    assert len(big["data"]) == min(count, 100)  # perPage is at most 100
    declarative = [s for s in big["data"] if s["type"] == "DECLARATIVE"]
    shown = sorted((s["task"], s["generator"]["expression"], s["timezone"]) for s in declarative)
    assert shown == [
        ("sched-daily", "0 3 * * *", "UTC"),
        ("sched-multi", "0 9 * * 1-5", "America/New_York"),
        ("sched-multi", "30 10 * * 0,6", "America/New_York"),
        ("sched-paris", "30 2 * * *", "Europe/Paris"),
    ]
    assert all("deduplicationKey" not in s for s in declarative)
    target = declarative[0]["id"]
    r = await http.put(
        f"/api/v1/schedules/{target}", json={"task": "sched-daily", "cron": "0 4 * * *"}
    )
    assert (r.status_code, r.json()["error"]) == (422, "Cannot update a declarative schedule")
    assert (await http.delete(f"/api/v1/schedules/{target}")).status_code == 422
    for params in ({"page": "0"}, {"page": "x"}, {"perPage": "0"}, {"perPage": "-1"}):
        assert (await http.get("/api/v1/schedules", params=params)).status_code == 400, params


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cron": "* * * * * *"}, "seconds are not supported"),
        ({"cron": "0 3 * *"}, "has 4 fields, not 5"),
        ({"cron": "99 * * * *"}, "the minute field '99' is not valid"),
        ({"cron": "0 3 * * *", "timezone": "Not/AZone"}, "unknown timezone 'Not/AZone'"),
        ({"task": "sched-plain"}, "'sched-plain' is not a scheduled task"),
        ({"task": "add"}, "'add' is not a scheduled task"),
        ({"task": "no-such-task"}, "no task 'no-such-task'"),
        ({"deduplicationKey": None}, "deduplicationKey"),
        ({"deduplicationKey": ""}, "deduplicationKey"),
        ({"cron": 5}, "cron"),
        ({"task": ["sched-report"]}, "task"),
        ({"externalId": 7}, "externalId"),
        ({"timezone": 1}, "timezone"),
    ],
)
async def test_bad_input_is_422(
    http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    full = {"task": "sched-report", "cron": "0 3 * * *", "deduplicationKey": "bad-input",
            **body}  # fmt: skip
    full = {k: v for k, v in full.items() if v is not None}
    before = (await http.get("/api/v1/schedules")).json()["pagination"]["count"]
    r = await http.post("/api/v1/schedules", json=full)
    assert r.status_code == 422, r.text
    assert message in r.json()["error"], r.json()
    assert r.headers["x-should-retry"] == "false"
    assert (await http.get("/api/v1/schedules")).json()["pagination"]["count"] == before


async def test_auth_and_timezones(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
        for method, path in (("GET", "/api/v1/schedules"), ("POST", "/api/v1/schedules"),
                             ("GET", "/api/v1/schedules/sched_x")):  # fmt: skip
            r = await anon.request(method, path)
            assert r.status_code == 401, (method, path)
        bad = {"Authorization": "Bearer tr_dev_wrong"}
        assert (await anon.get("/api/v1/schedules", headers=bad)).status_code == 401
        # the official client sends no key for the timezones
        r = await anon.get("/api/v1/timezones")
        assert r.status_code == 200 and r.json()["timezones"][0] == "UTC"
        assert "Europe/Paris" in r.json()["timezones"]
        r = await anon.get("/api/v1/timezones", params={"excludeUtc": "true"})
        assert "UTC" not in r.json()["timezones"] and "America/New_York" in r.json()["timezones"]
        assert (await anon.get("/api/v1/timezones?excludeUtc=maybe")).status_code == 400


async def test_runs_a_schedule_starts_carry_it(server: Server, http: httpx.AsyncClient) -> None:
    body = {"task": "sched-report", "cron": "*/5 * * * *", "deduplicationKey": "carried",
            "externalId": "acct-3"}  # fmt: skip
    sched = (await http.post("/api/v1/schedules", json=body)).json()
    instant = server.make_due(sched["id"])
    [item] = await _runs_of(http, sched["id"], 1)
    run = await _finished(http, item["id"])
    assert run["status"] == "COMPLETED" and run["taskIdentifier"] == "sched-report"
    assert run["schedule"]["id"] == sched["id"] and run["schedule"]["externalId"] == "acct-3"
    assert run["schedule"]["deduplicationKey"] == "carried"
    assert run["schedule"]["generator"]["expression"] == "*/5 * * * *"
    assert run["payload"]["scheduleId"] == sched["id"]
    assert run["payload"]["timestamp"] == time.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(instant)
    )
    assert run["output"]["external_id"] == "acct-3"
    # the list filter: only this schedule's runs (a plain run and another schedule's: not)
    other = await http.post("/api/v1/schedules", json={**body, "deduplicationKey": "other"})
    server.make_due(other.json()["id"])
    await _runs_of(http, other.json()["id"], 1)
    listed = (await http.get("/api/v1/runs", params={"filter[schedule]": sched["id"]})).json()
    assert [r["id"] for r in listed["data"]] == [item["id"]]
    # the next instant: from the one that fired, in the future
    after = (await http.get(f"/api/v1/schedules/{sched['id']}")).json()
    assert after["nextRun"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


@pytest.fixture(params=["embedded", "remote"])
def mode(request: pytest.FixtureRequest, server: Server) -> Iterator[str]:
    if request.param == "embedded":
        configure(db=str(server.db))
    else:
        configure(api_url=server.url, secret_key=KEY)
    try:
        yield str(request.param)
    finally:
        configure()


async def test_python_sdk(mode: str, server: Server) -> None:
    made = await schedules.create(
        task="sched-report", cron="0 9 * * 1-5", deduplication_key=f"py-{mode}",
        external_id="u1", timezone="America/New_York",
    )  # fmt: skip
    assert isinstance(made, schedules.Schedule)
    assert (made.type, made.task, made.active, made.external_id) == (
        "IMPERATIVE", "sched-report", True, "u1"
    )  # fmt: skip
    assert made.description == "At 09:00 AM, Monday through Friday"
    nxt = made.upcoming(5)
    assert len(nxt) == 5 and all(w.hour == 9 and w.weekday() < 5 for w in nxt)
    assert str(nxt[0].tzinfo) == "America/New_York"
    assert await schedules.retrieve(made.id) == made
    page = await schedules.list(per_page=100)
    assert made.id in [s.id for s in page] and page.count >= len(page)
    updated = await schedules.update(made.id, task="sched-report", cron="30 8 * * *")
    assert (updated.cron, updated.timezone, updated.external_id) == ("30 8 * * *", "UTC", None)
    assert (await schedules.deactivate(made.id)).active is False
    assert (await schedules.activate(made.id)).next_run is not None
    assert await schedules.delete(made.id) == made.id
    with pytest.raises(ScheduleNotFoundError):
        await schedules.retrieve(made.id)
    with pytest.raises(ScheduleNotFoundError):
        await schedules.delete(made.id)
    with pytest.raises(InvalidScheduleError, match="seconds are not supported"):
        await schedules.create(task="sched-report", cron="* * * * * *", deduplication_key="x")
    with pytest.raises(InvalidScheduleError, match="unknown timezone"):
        await schedules.create(
            task="sched-report", cron="0 0 * * *", deduplication_key="x", timezone="Moon/Base"
        )
    with pytest.raises(InvalidScheduleError, match="not a scheduled task"):
        await schedules.create(task="sched-plain", cron="0 0 * * *", deduplication_key="x")
    with pytest.raises(InvalidScheduleError, match="per_page"):
        await schedules.list(per_page=101)
    zones = await schedules.timezones(exclude_utc=True)
    assert "UTC" not in zones and "Europe/Paris" in zones
    # a run it started: RunStatus.schedule, embedded and remote alike
    sched = await schedules.create(
        task="sched-report", cron="*/10 * * * *", deduplication_key=f"py-run-{mode}"
    )
    server.make_due(sched.id)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    ) as http:
        [item] = await _runs_of(http, sched.id, 1)
    import trigger_do

    status = await trigger_do.tasks.retrieve(item["id"])
    assert status.schedule == schedules.RunSchedule(
        id=sched.id, cron="*/10 * * * *", deduplication_key=f"py-run-{mode}"
    )


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trigger_do.cli", *args],
        env={**ENV, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("where", ["db", "target"])
def test_cli(server: Server, where: str) -> None:
    place = ["--db", str(server.db)] if where == "db" else ["--target", server.url]
    env = {"TRIGGER_SECRET_KEY": KEY} if where == "target" else {}
    made = _cli("schedules", "create", "sched-report", "0 9 * * 1-5", "--timezone",
                "Europe/Paris", "--external-id", f"cli-{where}", *place, **env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    sid = made.stdout.strip()
    assert sid.startswith("sched_") and "Monday through Friday" in made.stderr
    assert made.stderr.count("next: ") == 5
    listed = _cli("schedules", "list", *place, **env)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.split(sid)[1]
    assert "Europe/Paris" in row and ("CET" in row or "CEST" in row)
    # the next five fire times, in the schedule's timezone
    lines = listed.stdout[listed.stdout.index(sid) :].splitlines()[:6]
    assert sum(" 09:00 " in line for line in lines) == 5, listed.stdout
    as_json = _cli("schedules", "list", "--json", *place, **env)
    [mine] = [s for s in __import__("json").loads(as_json.stdout) if s["id"] == sid]
    assert len(mine["next"]) == 5 and all("T09:00:00" in w for w in mine["next"])
    off = _cli("schedules", "deactivate", sid, *place, **env)
    assert off.returncode == 0 and f"deactivated {sid}" in off.stdout
    on = _cli("schedules", "activate", sid, *place, **env)
    assert on.returncode == 0 and f"activated {sid}, next " in on.stdout
    bad = _cli("schedules", "create", "sched-report", "* * * * * *", *place, **env)
    assert bad.returncode == 2 and "seconds are not supported" in bad.stderr
    assert "\n" not in bad.stderr.strip()  # one line
    runs = _cli("runs", "list", "--schedule", sid, "--json", *place, **env)
    assert runs.returncode == 0 and runs.stdout.strip() == "[]"
    gone = _cli("schedules", "delete", sid, *place, **env)
    assert gone.returncode == 0 and f"deleted {sid}" in gone.stdout
    missing = _cli("schedules", "delete", sid, *place, **env)
    assert missing.returncode == 2 and "trigger-do:" in missing.stderr


def test_cli_runs_list_by_schedule(server: Server) -> None:
    made = _cli("schedules", "create", "sched-report", "*/5 * * * *", "--dedup-key", "cli-runs",
                "--db", str(server.db))  # fmt: skip
    sid = made.stdout.strip()
    server.make_due(sid)
    deadline = time.monotonic() + 30
    while True:
        listed = _cli("runs", "list", "--schedule", sid, "--db", str(server.db))
        assert listed.returncode == 0, listed.stderr
        if "COMPLETED" in listed.stdout:
            break
        assert time.monotonic() < deadline, listed.stdout
        time.sleep(0.2)
    assert listed.stdout.count("sched-report") == 1
