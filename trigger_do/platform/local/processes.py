"""Worker processes, as the supervisor sees them: who runs under which lease token, for
which supervisor; what to do when one dies, or when a supervisor died and left its workers.

Each worker records a session (`worker_sessions`, platform.py: its pid, its consumer's lease
token, its supervisor's pid). A worker's death is then handled at once rather than when its leases
lapse: the supervisor makes the dead worker's in-flight messages visible again and
lapses its runs' leases, so another worker takes them over in well under a second. Only
the messages of runs it had started count that delivery toward the dead-letter queue (the
others ran no code). The leases stay the fallback (and
the only mechanism on Cloudflare). A supervisor that starts where another one died stops
that one's orphaned workers first: no two generations of workers run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from ...engine import Engine
from ...runs.index import RunIndexObject
from ...shared.serialization import dumps
from .database import LocalSql
from .platform import RUN_QUEUE

log = logging.getLogger("trigger_do.runtime")

def register_session(sql: LocalSql, token: str, now: float) -> None:
    """This process is a worker of its parent, leasing under `token`."""
    sql.exec(
        "INSERT OR REPLACE INTO worker_sessions (pid, token, supervisor, started_at) "
        "VALUES (?, ?, ?, ?)",
        os.getpid(),
        token,
        os.getppid(),
        now,
    )


def end_session(sql: LocalSql, pid: int) -> None:
    sql.exec("DELETE FROM worker_sessions WHERE pid = ?", pid)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def is_worker(pid: int) -> bool:
    """Whether `pid` is a trigger.do worker (and not a process that reused its pid)."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():  # no /proc (macOS): trust the pid
        return alive(pid)
    with contextlib.suppress(OSError):
        return b"trigger_do.platform.local.worker" in cmdline.read_bytes()
    return False


def suspect_group(body: Any) -> int:
    """The size of the group of runs a message's run was running in when its worker died
    (0: it is no suspect)."""
    group = body.get("x") if isinstance(body, dict) else None
    return group if isinstance(group, int) and group > 1 else 0


async def release(engine: Engine, sql: LocalSql, pid: int) -> int:
    """A worker that is gone: its in-flight messages visible now, its runs' leases lapsed.
    Returns how many runs it held."""
    found = sql.exec("SELECT token FROM worker_sessions WHERE pid = ?", pid)
    if not found:
        return 0
    token, now = found[0][0], engine.now()
    held = await engine.index.lapse_leases(token, now)
    # A message whose run the worker had claimed but not started ran no user code: its
    # delivery is given back (the worker's death is not the run's fault). A run that was
    # running alone keeps the delivery: a run that kills its process again and again is
    # poison and ends in the dead-letter queue. Runs that were running together get theirs
    # back too (any one of them may be the culprit), marked with the size of the group
    # they died in: they run apart, in halves (Worker._isolate), until the culprit is alone.
    group = len(held) if len(held) > 1 else 0
    sql.exec(
        "UPDATE queue_messages SET visible_at = ?, lease_token = NULL, "
        "attempts = CASE WHEN ?2 = 0 AND body->>'run_id' IN (SELECT value FROM json_each(?3)) "
        "THEN attempts ELSE max(attempts - 1, 0) END, "
        "body = CASE WHEN ?2 > 0 AND body->>'run_id' IN (SELECT value FROM json_each(?3)) "
        "THEN json_set(body, '$.x', ?2) ELSE body END "
        "WHERE lease_token = ?4 AND queue IN (?5, ?6)",
        now,
        group,
        dumps(held),
        token,
        RUN_QUEUE,
        RUN_QUEUE + "-dlq",
    )
    end_session(sql, pid)
    sql.exec("DELETE FROM workers WHERE pid = ?", pid)
    return len(held)


async def stop_orphans(engine: Engine, sql: LocalSql, grace: float) -> list[int]:
    """Workers whose supervisor is dead: stop them (SIGTERM, then SIGKILL after `grace`),
    then release what they held. Returns their pids."""
    orphans: list[int] = []
    for pid, supervisor in sql.exec("SELECT pid, supervisor FROM worker_sessions"):
        if alive(supervisor) and supervisor != os.getpid():
            continue  # another live supervisor's worker
        if supervisor == os.getpid():
            continue  # ours
        orphans.append(int(pid))
    for pid in orphans:
        if is_worker(pid):
            log.warning("stopping worker %s, left running by a supervisor that died", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in orphans:
        while is_worker(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if is_worker(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await release(engine, sql, pid)
    return orphans


async def resend_lost(engine: Engine, sql: LocalSql, before: float) -> int:
    """Runs waiting for a message that is not in the queue (the process that wrote them died
    before sending it): send it again. Only runs due within the last `stale_after` are
    looked at (housekeeping re-dispatches older ones) and only those due before `before`
    (one being written right now has its message on the way). Returns how many."""
    start = before - engine.config.stale_after
    queued: set[str] = {
        str(r[0])
        for r in sql.exec("SELECT body->>'run_id' FROM queue_messages WHERE queue = ?", RUN_QUEUE)
    }
    pages = await engine.index.each(lambda s: s(RunIndexObject.waiting_since, start, before))
    lost = [run for page in pages for run in page if run["id"] not in queued]
    await engine.redispatch(lost)
    return len(lost)
