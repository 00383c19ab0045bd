"""The coordinator's pure decisions, without any database: inputs as the read steps give
them, decisions checked against what the limits, windows and fairness rules require."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping

import pytest

from trigger_do.coordinator.decide import (
    AdmitDecision,
    AdmitInputs,
    Counts,
    Head,
    Limits,
    MoreHeads,
    PumpDecision,
    PumpInputs,
    Request,
    TaskLimits,
    WindowState,
    decide_admit,
    decide_pump,
)
from trigger_do.coordinator.state import QueueState
from trigger_do.shared.messages import RunMessage

RATE = '{"limit":3,"period":1.0}'  # a window id (its spec's JSON text)


def limits(
    key_limit: int | None = None,
    rate: str | None = None,
    queue_limit: int | None = None,
    paused: bool = False,
    **others: TaskLimits,
) -> Limits:
    return Limits(paused, queue_limit, {"t": TaskLimits(key_limit, rate), **others})


def head(run_id: str, task: str = "t", rate_id: str = "t|") -> Head:
    return Head(run_id, task, rate_id, json.dumps(RunMessage(run_id, task, 1).to_body()))


def lines(**waiting: int) -> dict[str, tuple[Head, ...]]:
    """`waiting` runs parked per key, named key + number in line order (`a0`, `a1`...)."""
    return {k: tuple(head(f"{k}{i}") for i in range(n)) for k, n in waiting.items()}


def pump(
    lim: Limits,
    heads: Mapping[str, tuple[Head, ...]],
    slots: dict[str, int] | None = None,
    tickets: dict[str, int] | None = None,
    rr_key: str | None = None,
    take: int = 0,
    windows: dict[tuple[str, str], WindowState] | None = None,
) -> PumpDecision:
    """Decide over whole lines (every key's line read to its end)."""
    slots = slots or {}
    counts = Counts(
        slots, sum(slots.values()), tickets or {}, {k: len(v) for k, v in heads.items() if v}
    )
    out = decide_pump(PumpInputs(lim, counts, rr_key, take, heads, frozenset(heads), windows or {}))
    assert isinstance(out, PumpDecision)
    return out


def served(d: PumpDecision) -> list[str]:
    return [g.run_id for g in d.direct + d.reserved]


def request(run_id: str, key: str = "", task: str = "t", rate_key: str = "") -> Request:
    return Request(run_id, task, key, f"{task}|{rate_key}", {"run_id": run_id})


def admit(
    lim: Limits,
    requests: list[Request],
    slots: dict[str, int] | None = None,
    waiting: dict[str, int] | None = None,
    tickets: dict[str, int] | None = None,
    states: dict[str, str] | None = None,
    parked: frozenset[str] = frozenset(),
    windows: dict[tuple[str, str], WindowState] | None = None,
    seq: int = 0,
) -> AdmitDecision:
    slots = slots or {}
    counts = Counts(slots, sum(slots.values()), tickets or {}, waiting or {})
    return decide_admit(
        AdmitInputs(tuple(requests), lim, counts, states or {}, parked, windows or {}, seq)
    )


# --- rate windows ---------------------------------------------------------------------------


def test_a_counting_window_has_room_for_what_is_left_of_its_limit() -> None:
    state = WindowState(limit=5, count=3)  # moving: entries in the window; fixed: the counter
    assert [state.room(k) for k in range(4)] == [2, 1, 0, 0]
    assert WindowState(limit=2, count=7).room() == 0  # a counter past its limit


def test_a_sliding_counter_weighs_the_previous_window_and_rounds_down() -> None:
    # 4 starts last window, 3/8 of it still weighed (1.5), 2 in this one: 3.5 counts as 3
    state = WindowState(limit=5, count=2, carried=4 * 0.375)
    assert [state.room(k) for k in range(4)] == [2, 1, 0, 0]
    assert WindowState(limit=5, count=2, carried=0.999).room() == 3


# --- admission ------------------------------------------------------------------------------


def test_a_key_takes_up_to_its_limit_and_parks_the_rest_in_order() -> None:
    d = admit(limits(key_limit=2), [request(f"a{i}", "a") for i in range(4)] + [request("b0", "b")])
    assert d.granted == ("a0", "a1", "b0") and d.parked == ("a2", "a3")
    assert [(p.run_id, p.key, p.seq) for p in d.parks] == [("a2", "a", 1), ("a3", "a", 2)]
    assert d.slots == (("a0", "a", "t", None), ("a1", "a", "t", None), ("b0", "b", "t", None))


def test_slots_already_held_count_against_the_key() -> None:
    d = admit(limits(key_limit=3), [request("x", "a"), request("y", "a")], slots={"a": 2})
    assert d.granted == ("x",) and d.parked == ("y",)


def test_the_queue_limit_is_shared_by_all_keys() -> None:
    reqs = [request("a0", "a"), request("b0", "b"), request("c0", "c"), request("a1", "a")]
    d = admit(limits(queue_limit=3), reqs, slots={"z": 1})
    assert d.granted == ("a0", "b0") and d.parked == ("c0", "a1")


def test_a_limit_override_replaces_the_declared_queue_limit() -> None:
    q = QueueState("q", spec={"queue_limit": 5}, limit_override=1)
    assert q.limit == 1
    assert QueueState("q", spec={"queue_limit": 5}).limit == 5
    d = admit(limits(queue_limit=q.limit), [request("a"), request("b")])
    assert d.granted == ("a",) and d.parked == ("b",)


def test_a_paused_queue_starts_no_new_run() -> None:
    reqs = [request("new"), request("running"), request("returned")]
    states = {"running": "held", "returned": "reserved"}
    d = admit(limits(paused=True), reqs, states=states, slots={"": 2})
    # a run holding its slot, or handed back before the pause (its slot waits), still goes
    assert d.granted == ("running", "returned") and d.parked == ("new",)
    assert d.renew == ("running",) and d.returned == (("returned", True),)


def test_a_new_run_waits_behind_the_runs_parked_for_its_key() -> None:
    d = admit(limits(), [request("a9", "a"), request("b9", "b")], waiting={"a": 1})
    assert d.granted == ("b9",) and d.parked == ("a9",)


def test_runs_holding_a_slot_are_granted_again_without_taking_another() -> None:
    reqs = [request("held", "a"), request("new", "a")]
    d = admit(limits(key_limit=2), reqs, slots={"a": 1}, states={"held": "held"})
    assert d.granted == ("held", "new") and d.renew == ("held",)
    assert [row[0] for row in d.slots] == ["new"]


def test_a_parked_run_delivered_again_keeps_its_place() -> None:
    d = admit(limits(), [request("p", "a")], waiting={"a": 1}, parked=frozenset({"p"}), seq=7)
    assert d.parked == ("p",) and d.parks == () and d.seq == 7


def test_a_run_delivered_twice_in_one_batch_is_parked_once() -> None:
    d = admit(limits(key_limit=1), [request("a", "k"), request("b", "k"), request("b", "k")])
    assert d.granted == ("a",) and d.parked == ("b", "b")
    assert [p.run_id for p in d.parks] == ["b"] and d.seq == 1


def test_a_returned_run_turns_its_ticket_into_a_start() -> None:
    ref = (RATE, "t|")
    d = admit(
        limits(rate=RATE),
        [request("r")],
        states={"r": "reserved"},
        tickets={"t|": 1},
        windows={ref: WindowState(3, 2)},
    )
    assert d.granted == ("r",) and d.returned == (("r", True),) and d.hits == {ref: 1}


def test_a_returned_run_whose_window_is_full_goes_back_in_line() -> None:
    ref = (RATE, "t|")
    d = admit(
        limits(rate=RATE),
        [request("r")],
        states={"r": "reserved"},
        windows={ref: WindowState(3, 3)},
    )
    assert d.parked == ("r",) and d.returned == (("r", False),)
    assert d.hits == {} and d.refused == {ref: 1}


@pytest.mark.parametrize(
    "state",
    [WindowState(4, 1), WindowState(4, 1, carried=0.5)],  # counting; a sliding counter
    ids=["moving-or-fixed", "sliding-window-counter"],
)
def test_new_runs_use_the_window_less_the_starts_promised(state: WindowState) -> None:
    ref = (RATE, "t|acct")
    reqs = [request(f"r{i}", rate_key="acct") for i in range(4)] + [request("o", rate_key="x")]
    windows = {ref: state, (RATE, "t|x"): WindowState(4, 4)}
    d = admit(limits(rate=RATE), reqs, tickets={"t|acct": 1}, windows=windows)
    # 4 a period, 1 started, 1 promised to a run handed back: room for 2; "x" is full
    assert d.granted == ("r0", "r1") and d.parked == ("r2", "r3", "o")
    assert d.hits == {ref: 2}
    assert [row[3] for row in d.slots] == ["t|acct", "t|acct"]


def test_rate_windows_are_per_task_and_rate_key() -> None:
    other = '{"limit":1,"period":1.0}'
    lim = limits(rate=RATE, u=TaskLimits(None, other))
    reqs = [
        request("t1", "k1", rate_key="a"),
        request("t2", "k2", rate_key="b"),
        request("u1", "k3", task="u"),
    ]
    windows = {
        (RATE, "t|a"): WindowState(3, 3),
        (RATE, "t|b"): WindowState(3, 0),
        (other, "u|"): WindowState(1, 0),
    }
    d = admit(lim, reqs, windows=windows)
    assert d.granted == ("t2", "u1") and d.parked == ("t1",)


def test_a_task_the_queue_does_not_know_has_no_limits() -> None:
    d = admit(limits(key_limit=1), [request(f"x{i}", "a", task="unknown") for i in range(3)])
    assert d.granted == ("x0", "x1", "x2")


# --- the pump -------------------------------------------------------------------------------


def test_hand_backs_go_round_robin_one_per_key_per_round() -> None:
    d = pump(limits(queue_limit=5), lines(a=3, b=3, c=3))
    assert served(d) == ["a0", "b0", "c0", "a1", "b1"] and d.rr_key == "b"


@pytest.mark.parametrize(
    ("rr_key", "first"), [("a", "b1"), ("b", "c1"), ("c", "a1"), ("bb", "c1"), ("z", "a1")]
)
def test_the_next_pump_starts_after_the_key_served_last(rr_key: str, first: str) -> None:
    heads = {k: tuple(head(f"{k}{i}") for i in range(1, 4)) for k in "abc"}
    d = pump(limits(queue_limit=3), heads, slots={"z": 0}, rr_key=rr_key)
    assert served(d)[0] == first
    assert len({r[0] for r in served(d)}) == 3  # every key once before any twice


def test_a_big_backlog_does_not_starve_small_keys() -> None:
    d = pump(limits(queue_limit=6), lines(big=100, s1=2, s2=1))
    assert served(d) == ["big0", "s10", "s20", "big1", "s11", "big2"]


def test_each_key_line_is_served_in_order() -> None:
    d = pump(limits(key_limit=10), lines(a=4, b=2))
    assert served(d) == ["a0", "b0", "a1", "b1", "a2", "a3"]
    assert d.served == {"a": 4, "b": 2}


def test_a_short_line_running_out_leaves_the_others_their_turns() -> None:
    d = pump(limits(), lines(a=1, b=3, c=2))
    assert served(d) == ["a0", "b0", "c0", "b1", "c1", "b2"]


def test_a_key_at_its_limit_is_skipped_and_the_others_go_on() -> None:
    d = pump(limits(key_limit=2), lines(a=3, b=3), slots={"a": 2, "b": 0})
    assert served(d) == ["b0", "b1"]


def test_a_key_is_served_until_the_head_its_task_refuses() -> None:
    lim = limits(key_limit=None, u=TaskLimits(1, None))
    heads = {"a": (head("a0"), head("a1", task="u"), head("a2")), "b": (head("b0"),)}
    d = pump(lim, heads, slots={"a": 1})
    # a1's task allows one slot per key and the key has one: a2 waits behind it (FIFO)
    assert served(d) == ["a0", "b0"]


def test_a_key_full_for_every_task_is_not_even_read() -> None:
    lim = limits(key_limit=2, u=TaskLimits(3, None))
    out = decide_pump(PumpInputs(lim, Counts({"a": 3, "b": 2}, 5, {}, {"a": 4, "b": 4})))
    assert isinstance(out, MoreHeads) and out.wants == {"b": 1}  # b: room for u's runs
    lim = limits(key_limit=2, u=TaskLimits(None, None))
    out = decide_pump(PumpInputs(lim, Counts({"a": 3}, 3, {}, {"a": 4})))
    assert isinstance(out, MoreHeads) and out.wants == {"a": 4}  # u has no limit per key


def test_nothing_is_handed_back_while_paused_or_full() -> None:
    assert served(pump(limits(paused=True), lines(a=2))) == []
    assert served(pump(limits(queue_limit=2), lines(a=2), slots={"x": 2})) == []


def test_the_first_runs_taken_are_granted_the_rest_handed_back() -> None:
    ref = (RATE, "t|")
    d = pump(
        limits(queue_limit=4, rate=RATE), lines(a=3, b=3), take=2, windows={ref: WindowState(9, 0)}
    )
    assert [g.run_id for g in d.direct] == ["a0", "b0"]
    assert [g.run_id for g in d.reserved] == ["a1", "b1"]
    # granted now: their windows are hit now; handed back: a ticket each until they return
    assert d.hits == {ref: 2} and d.counts.tickets == {"t|": 2}
    granted = [RunMessage.from_body(b) for b in d.granted_bodies()]
    handed = [RunMessage.from_body(b) for b in d.handback_bodies()]
    assert [(m.run_id, m.handed) for m in granted] == [("a0", False), ("b0", False)]
    assert [(m.run_id, m.handed) for m in handed] == [("a1", True), ("b1", True)]


def test_a_window_stops_hand_backs_counting_the_starts_promised() -> None:
    ref = (RATE, "t|")
    d = pump(
        limits(rate=RATE), lines(a=5, b=5), tickets={"t|": 1}, windows={ref: WindowState(4, 1)}
    )
    assert served(d) == ["a0", "b0"]  # 4 a period: 1 started, 1 promised, 2 handed back


def test_windows_are_separate_per_rate_id() -> None:
    heads = {
        "a": (head("a0", rate_id="t|x"), head("a1", rate_id="t|x")),
        "b": (head("b0", rate_id="t|y"), head("b1", rate_id="t|y")),
    }
    windows = {(RATE, "t|x"): WindowState(3, 2), (RATE, "t|y"): WindowState(3, 0)}
    d = pump(limits(rate=RATE), heads, take=9, windows=windows)
    assert served(d) == ["a0", "b0", "b1"]
    assert d.hits == {(RATE, "t|x"): 1, (RATE, "t|y"): 2}


def test_the_counts_after_a_pump_are_what_the_requests_are_decided_with() -> None:
    d = pump(limits(key_limit=2, queue_limit=4), lines(a=1, b=3), slots={"b": 1})
    assert served(d) == ["a0", "b0"]
    assert d.counts == Counts({"a": 1, "b": 2}, 3, {}, {"a": 0, "b": 2})
    after = decide_admit(
        AdmitInputs(
            (request("x", "a"), request("y", "b")), limits(key_limit=2, queue_limit=4), d.counts
        )
    )
    # a's line is empty now, so a new run of a may start; b still has runs waiting
    assert after.granted == ("x",) and after.parked == ("y",)


# --- reading lazily, purity -----------------------------------------------------------------


def read_lazily(
    inputs: PumpInputs, whole: Mapping[str, tuple[Head, ...]], resume: bool = True
) -> PumpDecision:
    """Drive `decide_pump` as the coordinator does: heads read only when asked for, a few
    at first, doubling (as `state.Heads` reads them); going on from where it stopped, or
    (`resume=False`) deciding again from the start each time."""
    got: dict[str, tuple[Head, ...]] = {}
    done: set[str] = set()
    size = 8
    out = decide_pump(inputs)
    while isinstance(out, MoreHeads):
        assert out.wants and all(k not in done for k in out.wants)
        for key, want in out.wants.items():
            n = max(1, min(size, want))
            have = got.get(key, ())
            more = whole.get(key, ())[len(have) : len(have) + n]
            got[key] = have + more
            if len(more) < n:
                done.add(key)
        size = min(size * 2, 512)
        c = inputs
        inputs = PumpInputs(
            c.limits, c.counts, c.rr_key, c.take, dict(got), frozenset(done), c.windows
        )
        out = decide_pump(inputs, out.progress if resume else None)
    return out


@pytest.mark.parametrize("seed", range(30))
def test_reading_the_lines_lazily_decides_as_reading_them_whole(seed: int) -> None:
    """Read as asked, going on or starting over, the decision is the one over whole lines."""
    rng = random.Random(seed)
    keys = [f"k{i}" for i in range(rng.randint(1, 12))]
    rates = {"t": RATE, "u": None}
    whole = {
        k: tuple(
            head(f"{k}-{i}", rng.choice("tu"), rng.choice(["t|x", "t|y"]))
            for i in range(rng.randint(0, 60))
        )
        for k in keys
    }
    lim = Limits(
        rng.random() < 0.1,
        rng.choice([None, 5, 40, 200]),
        {
            "t": TaskLimits(rng.choice([None, 3, 30]), rates["t"] if rng.random() < 0.5 else None),
            "u": TaskLimits(rng.choice([None, 2, 50]), None),
        },
    )
    windows = {
        (RATE, r): WindowState(rng.randint(1, 30), rng.randint(0, 5)) for r in ("t|x", "t|y")
    }
    slots = {k: rng.randint(0, 3) for k in keys}
    counts = Counts(
        slots,
        sum(slots.values()),
        {"t|x": rng.randint(0, 2)},
        {k: len(v) for k, v in whole.items() if v},
    )
    base = PumpInputs(
        lim, counts, rng.choice([None, *keys]), rng.randint(0, 10), {}, frozenset(), windows
    )
    lazy, replayed = read_lazily(base, whole), read_lazily(base, whole, resume=False)
    full = decide_pump(
        PumpInputs(
            base.limits, base.counts, base.rr_key, base.take, whole, frozenset(keys), windows
        )
    )
    assert lazy == full == replayed


def test_a_decision_changes_none_of_its_inputs_and_is_repeatable() -> None:
    ref = (RATE, "t|")
    inputs = PumpInputs(
        limits(key_limit=2, rate=RATE),
        Counts({"a": 1}, 1, {"t|": 1}, {"a": 3, "b": 2}),
        "a",
        1,
        lines(a=3, b=2),
        frozenset("ab"),
        {ref: WindowState(5, 0)},
    )
    before = copy.deepcopy(inputs)
    assert decide_pump(inputs) == decide_pump(inputs)
    assert inputs == before
    a_inputs = AdmitInputs(
        (request("x", "a"), request("y", "c")),
        inputs.limits,
        inputs.counts,
        {"x": "reserved"},
        frozenset(),
        inputs.windows,
        3,
    )
    a_before = copy.deepcopy(a_inputs)
    assert decide_admit(a_inputs) == decide_admit(a_inputs)
    assert a_inputs == a_before


def test_the_pump_asks_only_for_what_it_could_use() -> None:
    counts = Counts({"a": 1}, 1, {}, {"a": 50, "b": 2, "c": 50})
    out = decide_pump(PumpInputs(limits(key_limit=3, queue_limit=9), counts))
    # a: 2 more under its limit; b: its 2 waiting; c: 3, its limit
    assert isinstance(out, MoreHeads) and out.wants == {"a": 2, "b": 2, "c": 3}
    out = decide_pump(PumpInputs(limits(queue_limit=4), counts))
    assert isinstance(out, MoreHeads) and out.wants == {"a": 3, "b": 2, "c": 3}  # 3 free
    heads = {"a": (head("a0"),), "b": (head("b0"), head("b1")), "c": (head("c0"),)}
    out = decide_pump(PumpInputs(limits(key_limit=3, queue_limit=9), counts, heads=heads))
    # round 2: a and c have been served what was read of their lines, b has not
    assert isinstance(out, MoreHeads) and out.wants == {"a": 1, "c": 2}
