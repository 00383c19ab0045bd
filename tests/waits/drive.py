"""Drive the in-process engine through waits on a fake clock: deliver what is visible, fire
what is due, and jump the clock to the next due message or timer, as a supervisor would."""

from __future__ import annotations

from tests.engine.driver import Driver, FakeClock
from trigger_do.platform.local.platform import RUN_QUEUE
from trigger_do.shared.states import FINAL_STATES


async def settle(d: Driver) -> None:
    """Deliver and fire until nothing is visible or due now (the clock does not move)."""
    while await d.step() or await d.engine.fire_due_timers():
        pass


async def run_until_final(d: Driver, run_ids: list[str], *, until: float | None = None) -> None:
    """Settle, then jump to the next message or timer, until every run is final (or the
    clock would pass `until`)."""
    assert isinstance(d.clock, FakeClock)
    for _ in range(10_000):
        await settle(d)
        states = await d.engine.get_states(run_ids)
        if all(states[r][0] in FINAL_STATES for r in run_ids):
            return
        nxt = min(
            (
                t
                for t in (
                    d.sql.exec(
                        "SELECT min(visible_at) FROM queue_messages WHERE queue = ?", RUN_QUEUE
                    )[0][0],
                    d.sql.exec("SELECT min(due) FROM trigger_do_timers")[0][0],
                )
                if t is not None
            ),
            default=None,
        )
        if nxt is None:
            raise AssertionError(f"nothing queued or timed, runs not final: {states}")
        if until is not None and nxt > until:
            return
        d.clock.t = max(d.clock.t, nxt)
    raise AssertionError("runs never became final")


def state(d: Driver, run_id: str) -> str:
    return str(d.sql.exec("SELECT state FROM runs WHERE id = ?", run_id)[0][0])
