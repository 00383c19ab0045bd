"""Run states: one enum, its API names, and the one table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"
    DELAYED = "delayed"
    RUNNING = "running"
    WAITING_FOR_RETRY = "waiting_for_retry"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"
    EXPIRED = "expired"
    SYSTEM_FAILURE = "system_failure"

    @property
    def api_status(self) -> str:
        return API_STATUS[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @classmethod
    def from_api_status(cls, status: str) -> list[RunState]:
        """The states an API status string stands for (QUEUED covers two)."""
        return [s for s, api in API_STATUS.items() if api == status.upper()]


S = RunState

API_STATUS: dict[RunState, str] = {
    S.QUEUED: "QUEUED",
    S.DELAYED: "DELAYED",
    S.RUNNING: "EXECUTING",
    S.WAITING_FOR_RETRY: "QUEUED",
    S.WAITING: "WAITING",
    S.COMPLETED: "COMPLETED",
    S.FAILED: "FAILED",
    S.CANCELED: "CANCELED",
    S.TIMED_OUT: "TIMED_OUT",
    S.CRASHED: "CRASHED",
    S.EXPIRED: "EXPIRED",
    S.SYSTEM_FAILURE: "SYSTEM_FAILURE",
}

FINAL_STATES = frozenset(
    {S.COMPLETED, S.FAILED, S.CANCELED, S.TIMED_OUT, S.CRASHED, S.EXPIRED, S.SYSTEM_FAILURE}
)

# Which states a run may move to from each state. Every write checks this table.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    # started, canceled, expired by its ttl, rescheduled, dead-lettered, engine error
    S.QUEUED: frozenset({S.RUNNING, S.CANCELED, S.EXPIRED, S.DELAYED, S.CRASHED, S.SYSTEM_FAILURE}),
    # the delay passed (enqueued, or started in the same write), canceled, expired, rescheduled
    S.DELAYED: frozenset(
        {S.QUEUED, S.RUNNING, S.CANCELED, S.EXPIRED, S.DELAYED, S.CRASHED, S.SYSTEM_FAILURE}
    ),
    # RUNNING -> RUNNING: its consumer died (lease expired), the next delivery starts attempt+1
    # RUNNING -> QUEUED: continued after a time slice or a graceful shutdown (same attempt)
    S.RUNNING: frozenset(
        {
            S.RUNNING,
            S.QUEUED,
            S.WAITING,
            S.WAITING_FOR_RETRY,
            S.COMPLETED,
            S.FAILED,
            S.CANCELED,
            S.TIMED_OUT,
            S.CRASHED,
            S.SYSTEM_FAILURE,
        }
    ),
    S.WAITING_FOR_RETRY: frozenset({S.RUNNING, S.CANCELED, S.CRASHED, S.SYSTEM_FAILURE}),
    S.WAITING: frozenset({S.QUEUED, S.CANCELED, S.SYSTEM_FAILURE}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
    S.TIMED_OUT: frozenset(),
    # the one way out of a final state: `trigger-do dlq requeue` revives a dead-lettered run
    S.CRASHED: frozenset({S.QUEUED}),
    S.EXPIRED: frozenset(),
    S.SYSTEM_FAILURE: frozenset(),
}

# The entries from nothing: the states a run may be created in. QUEUED or DELAYED by a
# trigger; FAILED by an event whose payload the subscriber's schema rejects (events/): that
# run never ran, and its error names the field. (Not QUEUED -> FAILED: no QUEUED row exists.)
CREATED_IN = frozenset({S.QUEUED, S.DELAYED, S.FAILED})

STARTABLE = frozenset({S.QUEUED, S.DELAYED, S.WAITING_FOR_RETRY})
CANCELABLE = frozenset(s for s, nxt in TRANSITIONS.items() if S.CANCELED in nxt)


def sources_for(new: RunState | str) -> list[str]:
    """The states from which `new` may be entered: every write that moves a run to `new`
    puts these in its WHERE (`state IN (...)`), so the table is checked by the database in
    the same statement, and a write from any other state changes nothing."""
    target = RunState(new)
    return sorted(str(o) for o, nxt in TRANSITIONS.items() if target in nxt)
