"""Routing rules, one by one, on a pure Router with explicit times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agents.roster import AgentSpec
from agents.state import AgentState, IllegalTransition, Status, UnknownAgent, transition
from routing.model import AgentChanged, CallLeft, Offer, Overflowed, QueueFailed
from routing.queues import QueueSpec, Step
from routing.router import Router

T0 = datetime(2026, 11, 23, 14, 30, tzinfo=timezone.utc)


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def agent(aid: str, langs=("en",), **skills: int) -> AgentSpec:
    return AgentSpec(id=aid, name=aid.title(), endpoint=f"PJSIP/{1000 + abs(hash(aid)) % 900}", skills=skills,
                     languages=list(langs))


def offers(decisions) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def router(queues: dict[str, QueueSpec], *agents: AgentSpec, ready: bool = True, at: float = 0) -> Router:
    r = Router(queues, agents)
    for i, a in enumerate(agents):
        if ready:
            r.login(a.id, t(at + i))  # logged in one second apart: the first is the longest idle
    return r


Q = {"sched": QueueSpec(skills={"scheduling": 5})}


# ---------------------------------------------------------------- eligibility


def test_skill_level_and_language_decide_eligibility():
    r = router(Q, agent("low", scheduling=4), agent("nolang", langs=("es",), scheduling=9), agent("ok", scheduling=5))
    d = r.enqueue("c1", "sched", t(10), language="en")
    assert offers(d) == [("c1", "ok")]
    assert d[-1].explanation["skills"] == {"scheduling": 5} and d[-1].explanation["language"] == "en"


def test_call_requirements_from_the_tree_replace_the_queue_defaults():
    r = router(Q, agent("sched_only", scheduling=9), agent("both", scheduling=5, insurance=6))
    assert offers(r.enqueue("c1", "sched", t(10), skills=[("scheduling", 3), ("insurance", 5)])) == [("c1", "both")]


# ---------------------------------------------------------------- strategies


def test_longest_idle_is_the_default():
    r = router(Q, agent("a", scheduling=5), agent("b", scheduling=9), agent("c", scheduling=7))
    assert offers(r.enqueue("c1", "sched", t(10))) == [("c1", "a")]
    assert offers(r.enqueue("c2", "sched", t(11))) == [("c2", "b")]


def test_most_skilled_strategy():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, strategy="most_skilled")}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=9), agent("c", scheduling=7))
    d = r.enqueue("c1", "sched", t(10))
    assert offers(d) == [("c1", "b")] and "most skilled (score 9)" in d[-1].explanation["rule"]


def test_fewest_calls_strategy():
    q = {"sched": QueueSpec(skills={"scheduling": 1}, strategy="fewest_calls", wrap_up=0)}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=5))
    r.enqueue("c1", "sched", t(10))  # a: longest idle tie-break
    r.answered("c1", t(11))
    r.call_ended("a", t(20))
    r.tick(t(20))  # wrap-up of 0 s ends: a is ready again and has taken one call, b none
    assert r.agents["a"].status is Status.READY and r.agents["a"].calls == 1
    assert offers(r.enqueue("c2", "sched", t(30))) == [("c2", "b")]


def test_round_robin_strategy():
    q = {"sched": QueueSpec(skills={"scheduling": 1}, strategy="round_robin")}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=5), agent("c", scheduling=5))
    picked = []
    for i in range(3):
        (o,) = offers(r.enqueue(f"c{i}", "sched", t(10 + i)))
        picked.append(o[1])
        r.abandon(f"c{i}", t(10.5 + i))  # free the agent again
    assert picked == ["a", "b", "c"]


# ---------------------------------------------------------------- order in line


def test_priority_then_time_waited_and_callbacks_keep_their_place():
    r = router(Q, agent("a", scheduling=5), ready=False)
    r.login("a", t(0), ready=False)  # logged in but paused: calls wait instead of failing with no_agents
    r.enqueue("late-low", "sched", t(1), priority=1)
    r.enqueue("urgent", "sched", t(5), priority=9)
    r.enqueue("early-low", "sched", t(0.5), priority=1)
    r.enqueue("callback", "sched", t(8), priority=1, since=t(-100), callback_number="+15550001111")
    d = r.ready("a", t(10))
    assert offers(d) == [("urgent", "a")]
    r.answered("urgent", t(11))
    assert [r.position(c) for c in ("callback", "early-low", "late-low")] == [1, 2, 3]


# ---------------------------------------------------------------- relaxation steps and preferred agent


STEPPED = {"sched": QueueSpec(steps=[
    Step(until=30, skills={"scheduling": 7}),
    Step(until=90, skills={"scheduling": 4}),
    Step(skills={}, language="caller"),
])}


def test_requirements_relax_step_by_step():
    r = router(STEPPED, agent("junior", scheduling=4), agent("anyone", langs=("en",)), agent("spanish", langs=("es",)))
    assert offers(r.enqueue("c1", "sched", t(0), language="en")) == []
    assert offers(r.tick(t(29.9))) == []
    d = r.tick(t(30))
    assert offers(d) == [("c1", "junior")] and d[-1].explanation["step"] == 2
    r.abandon("c1", t(31))
    r.pause("junior", "break", t(31))
    assert offers(r.enqueue("c2", "sched", t(32), language="en")) == []
    d = r.tick(t(32 + 90))
    assert offers(d) == [("c2", "anyone")] and d[-1].explanation["step"] == 3


def test_relax_lowers_levels_and_all_drops_them():
    q = {"sched": QueueSpec(skills={"scheduling": 8}, steps=[Step(until=10), Step(until=20, relax=3), Step(relax="all")])}
    r = router(q, agent("five", scheduling=5), agent("none"))
    r.enqueue("c", "sched", t(0))
    assert offers(r.tick(t(10))) == [("c", "five")]
    r.abandon("c", t(11))
    r.pause("five", "lunch", t(11))
    r.enqueue("d", "sched", t(12))
    assert offers(r.tick(t(32))) == [("d", "none")]


def test_preferred_agent_first_then_anyone():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, steps=[Step(preferred_agent=20)])}
    r = router(q, agent("other", scheduling=9), agent("last", scheduling=5))
    r.pause("last", "break", t(5))
    assert offers(r.enqueue("c", "sched", t(10), preferred_agent="last")) == []  # only 'last' for 20 s
    d = r.ready("last", t(15))
    assert offers(d) == [("c", "last")] and "preferred" in d[-1].explanation["rule"]
    r.abandon("c", t(16))
    r.pause("last", "break", t(16))
    r.enqueue("c2", "sched", t(17), preferred_agent="last")
    assert offers(r.tick(t(36.9))) == []
    assert offers(r.tick(t(37))) == [("c2", "other")]


# ---------------------------------------------------------------- overflow and failures


def test_overflow_moves_the_call_keeping_its_place():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, overflow={"after": 60, "to": "desk"}, when_nobody_logged_in="wait"),
         "desk": QueueSpec(skills={"front_desk": 1})}
    r = router(q, agent("desk_agent", front_desk=3), ready=False)
    r.login("desk_agent", t(0), ready=False)
    r.enqueue("waited", "sched", t(0))
    r.enqueue("new", "desk", t(30))
    d = r.tick(t(60))
    assert any(isinstance(x, Overflowed) and x.to_queue == "desk" for x in d)
    assert r.calls["waited"].queue == "desk" and r.calls["waited"].since == t(0)
    assert offers(r.ready("desk_agent", t(61))) == [("waited", "desk_agent")]  # ahead of 'new': it waited longer


def test_full_no_agents_and_longest_wait():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, max_length=1, max_wait=120)}
    r = router(q, agent("a", scheduling=5), ready=False)
    d = r.enqueue("c0", "sched", t(0))
    assert [x.outcome for x in d if isinstance(x, QueueFailed)] == ["no_agents"]
    r.login("a", t(1), ready=False)
    r.enqueue("c1", "sched", t(2))
    assert [x.outcome for x in r.enqueue("c2", "sched", t(3)) if isinstance(x, QueueFailed)] == ["full"]
    d = r.tick(t(122))
    assert [x.outcome for x in d if isinstance(x, QueueFailed)] == ["timeout"] and "c1" not in r.calls


def test_last_agent_logging_out_fails_waiting_calls_with_no_agents():
    r = router(Q, agent("a", scheduling=5), ready=False)
    r.login("a", t(0), ready=False)
    r.enqueue("c1", "sched", t(1))
    d = r.logout("a", t(2))
    assert [(x.call_id, x.outcome) for x in d if isinstance(x, QueueFailed)] == [("c1", "no_agents")]


# ---------------------------------------------------------------- ring-no-answer, abandon, wrap-up


def test_ring_no_answer_keeps_place_and_pauses_after_repeated_misses():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=15, max_no_answer=2)}
    r = router(q, agent("sleepy", scheduling=5), agent("b", scheduling=5))
    r.pause("b", "break", t(2))
    r.enqueue("first", "sched", t(10))
    r.enqueue("second", "sched", t(11))
    d = r.tick(t(25))  # 'first' rang out on sleepy
    assert r.agents["sleepy"].missed == 1 and r.agents["sleepy"].status is Status.RESERVED
    assert offers(d) == [("first", "sleepy")]  # nobody else ready: offered again, still first in line
    assert d[-1].explanation["missed_by"] == ["sleepy"]
    d = r.tick(t(40))  # rang out again: two misses in a row -> not ready (no-answer)
    st = r.agents["sleepy"]
    assert st.status is Status.NOT_READY and st.reason == "no-answer"
    assert r.position("first") == 1 and r.calls["first"].since == t(10)
    assert offers(r.ready("b", t(41))) == [("first", "b")]


def test_missed_call_goes_to_another_agent_first():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=10)}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=5))
    r.enqueue("c", "sched", t(5))  # a (longest idle)
    r.pause("b", "break", t(6))
    r.ready("b", t(7))
    d = r.no_answer("c", t(8))
    assert offers(d) == [("c", "b")]
    assert r.agents["a"].status is Status.READY and r.agents["a"].missed == 1


def test_caller_hanging_up_while_ringing_frees_the_agent_without_a_miss():
    r = router(Q, agent("a", scheduling=5))
    r.enqueue("c", "sched", t(5))
    d = r.abandon("c", t(6))
    assert r.agents["a"].status is Status.READY and r.agents["a"].missed == 0
    assert any(isinstance(x, CallLeft) and x.why == "abandoned" for x in d)


def on_call_with_one_waiting(wrap_up: float) -> Router:
    """Agent a talking on c1 (answered at 5 s), c2 waiting since 10 s, in a queue with ``wrap_up``."""
    r = router({"sched": QueueSpec(skills={"scheduling": 5}, wrap_up=wrap_up)}, agent("a", scheduling=5))
    r.enqueue("c1", "sched", t(0))
    r.answered("c1", t(5))
    r.enqueue("c2", "sched", t(10))
    return r


def test_wrap_up_then_next_call():
    r = on_call_with_one_waiting(wrap_up=45)
    r.call_ended("a", t(100))
    assert r.agents["a"].status is Status.WRAP_UP
    assert offers(r.tick(t(144.9))) == []
    assert offers(r.tick(t(145))) == [("c2", "a")]


def test_no_wrap_up_frees_the_agent_in_the_same_step():
    r = on_call_with_one_waiting(wrap_up=0)
    d = r.call_ended("a", t(100))
    assert [(x.state.status, x.cause) for x in d if isinstance(x, AgentChanged)] == [
        (Status.WRAP_UP, "call-ended"), (Status.READY, "wrap-up-ended"), (Status.RESERVED, "offered")]
    assert offers(d) == [("c2", "a")]


def test_a_call_of_unknown_queue_gets_the_longest_wrap_up():
    # An adopted conversation (engine restart): the router never saw it answered, so its queue is unknown.
    q = {"sched": QueueSpec(skills={"scheduling": 5}, wrap_up=0), "nurse": QueueSpec(skills={"scheduling": 1}, wrap_up=90)}
    r = router(q, agent("a", scheduling=5), ready=False)
    r.login("a", t(0), ready=False)
    r.agents["a"] = transition(transition(r.agents["a"], Status.READY, t(1)), Status.RESERVED, t(2), call_id="x")
    r.agents["a"] = transition(r.agents["a"], Status.ON_CALL, t(3))
    r.call_ended("a", t(100))
    assert r.agents["a"].status is Status.WRAP_UP and r.next_wakeup() == t(190)


def test_pause_after_call_skips_ready_even_with_callers_waiting():
    # "Not ready after this call": when wrap-up ends the agent goes on break, not to the next caller.
    r = on_call_with_one_waiting(wrap_up=45)
    assert r.after_call("a", Status.NOT_READY, t(20), reason="lunch") == []
    assert r.agents["a"].status is Status.ON_CALL  # nothing happens to the call in progress
    r.call_ended("a", t(100))
    d = r.tick(t(145))
    assert offers(d) == [] and [(x.state.status, x.state.reason, x.cause) for x in d if isinstance(x, AgentChanged)] == [
        (Status.NOT_READY, "lunch", "after-call")]
    assert "a" not in r.after_call_to and r.calls["c2"].offered_to is None
    assert offers(r.ready("a", t(1000))) == [("c2", "a")]


def test_logout_after_call_and_an_explicit_change_replaces_the_request():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, wrap_up=0)}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=5))
    r.enqueue("c1", "sched", t(0))  # a
    r.answered("c1", t(1))
    r.after_call("a", Status.LOGGED_OUT, t(2))
    r.call_ended("a", t(50))
    r.tick(t(50))
    assert r.agents["a"].status is Status.LOGGED_OUT
    r.enqueue("c2", "sched", t(60))  # b
    r.answered("c2", t(61))
    r.after_call("b", Status.NOT_READY, t(62), reason="break")
    r.call_ended("b", t(70))
    r.ready("b", t(70))  # wrap-up cut short by the agent: the pending break is dropped
    assert r.agents["b"].status is Status.READY and "b" not in r.after_call_to


def test_pause_after_call_when_free_or_freed_by_a_caller_leaving():
    r = router(Q, agent("a", scheduling=5))
    assert [x.state.status for x in r.after_call("a", Status.NOT_READY, t(1), reason="break")
            if isinstance(x, AgentChanged)] == [Status.NOT_READY]  # not busy: at once
    r.ready("a", t(2))
    r.enqueue("c1", "sched", t(3))  # rings a
    r.enqueue("c2", "sched", t(3.5))
    r.after_call("a", Status.NOT_READY, t(4), reason="meeting")
    d = r.abandon("c1", t(5))  # the caller hangs up while a's phone rings: a pauses, c2 is not offered to a
    assert offers(d) == [] and r.agents["a"].status is Status.NOT_READY and r.agents["a"].reason == "meeting"
    with pytest.raises(IllegalTransition):
        r.after_call("a", Status.READY, t(6))
    r.ready("a", t(7))
    r.enqueue("c3", "sched", t(7))
    with pytest.raises(IllegalTransition, match="reason"):
        r.after_call("a", Status.NOT_READY, t(8), reason="nap")


def test_free_agent_is_fair_across_queues():
    q = {"billing": QueueSpec(skills={"billing": 1}), "sched": QueueSpec(skills={"scheduling": 1})}
    r = router(q, agent("both", billing=5, scheduling=5), ready=False)
    r.login("both", t(0), ready=False)
    r.enqueue("b-old", "billing", t(1))
    r.enqueue("s-older", "sched", t(0.5))
    r.enqueue("b-urgent", "billing", t(9), priority=5)
    assert offers(r.ready("both", t(10))) == [("b-urgent", "both")]
    d = r.abandon("b-urgent", t(11))  # the agent is free again: the oldest call across both queues is next
    assert offers(d) == [("s-older", "both")]


# ---------------------------------------------------------------- agent state machine


def test_illegal_transitions_are_refused_with_a_stable_id():
    st = AgentState("a")
    with pytest.raises(IllegalTransition) as exc:
        transition(st, Status.ON_CALL, t(0))
    assert exc.value.error_id == "E-AGENT-TRANSITION" and "logged_out" in str(exc.value)
    on_call = transition(transition(transition(st, Status.READY, t(0)), Status.RESERVED, t(1), call_id="c"), Status.ON_CALL, t(2))
    for bad in (Status.READY, Status.LOGGED_OUT, Status.NOT_READY):
        with pytest.raises(IllegalTransition):
            transition(on_call, bad, t(3))
    with pytest.raises(IllegalTransition, match="reason"):
        transition(transition(st, Status.READY, t(0)), Status.NOT_READY, t(1), reason="nap")


def test_unknown_agent_is_a_clear_error():
    r = router(Q, agent("a", scheduling=5))
    with pytest.raises(UnknownAgent, match="no agent 'zed'"):
        r.ready("zed", t(1))


def test_every_transition_is_reported_with_its_cause():
    r = router(Q, agent("a", scheduling=5), ready=False)
    d = r.login("a", t(0))
    d += r.enqueue("c", "sched", t(1))
    d += r.answered("c", t(2))
    d += r.call_ended("a", t(60))
    steps = [(x.previous, x.state.status.value, x.cause) for x in d if isinstance(x, AgentChanged)]
    assert steps == [("logged_out", "ready", "login"), ("ready", "reserved", "offered"),
                     ("reserved", "on_call", "answered"), ("on_call", "wrap_up", "call-ended")]


# ---------------------------------------------------------------- estimates and restore


def test_estimated_wait_matches_what_happens():
    """Two agents, a fixed 100 s handle time (70 talk + 30 wrap-up); the estimates must track actual waits."""
    q = {"sched": QueueSpec(skills={"scheduling": 1}, wrap_up=30)}
    r = router(q, agent("a", scheduling=5), agent("b", scheduling=5))
    r.handle_seconds["sched"] = 100.0
    for i in range(8):
        r.enqueue(f"c{i}", "sched", t(0))
    estimates = {}
    for i in range(8):
        if f"c{i}" in r.calls and r.calls[f"c{i}"].offered_to is None:
            estimates[f"c{i}"] = r.estimated_wait(f"c{i}", t(0))
    answered_at: dict[str, float] = {}
    now = 0.0
    talking: dict[str, float] = {}
    while len(answered_at) < 8:
        for call_id, res in list(r.reservations.items()):
            r.answered(call_id, t(now))
            answered_at[call_id] = now
            talking[res.agent_id] = now + 70
        now = min([v for v in talking.values()] + [x.timestamp() - T0.timestamp() for x in [r.next_wakeup()] if x])
        for aid, end in list(talking.items()):
            if end <= now:
                r.call_ended(aid, t(now))
                del talking[aid]
        r.tick(t(now))
    for call_id, est in estimates.items():
        assert abs(est - answered_at[call_id]) <= 50, (call_id, est, answered_at[call_id])


def test_restore_brings_back_order_and_settles_ringing_offers():
    r = router(Q, agent("a", scheduling=5), agent("b", scheduling=5), ready=False)
    r.login("a", t(0))
    r.login("b", t(0), ready=False)
    for i in range(5):
        r.enqueue(f"c{i}", "sched", t(1 + i))
    assert r.calls["c0"].offered_to == "a"
    waiting = list(r.calls.values())
    fresh = Router(Q, [agent("a", scheduling=5), agent("b", scheduling=5)])
    d = fresh.restore(dict(r.agents), waiting, list(r.reservations.values()), t(50))
    # the ringing reservation was settled (agent a ready, no miss), then c0 offered again: same order, same place
    assert fresh.agents["a"].missed == 0
    assert offers(d) == [("c0", "a")]
    assert [fresh.position(f"c{i}") for i in range(1, 5)] == [1, 2, 3, 4]
    assert fresh.calls["c3"].since == t(4)


def test_a_ringing_agent_cannot_be_paused_or_logged_out_by_hand():
    """Found by the concurrency test: a pause landing while a call rang left the reservation behind."""
    r = router(Q, agent("a", scheduling=5))
    r.enqueue("c", "sched", t(1))
    for act in (lambda: r.pause("a", "break", t(2)), lambda: r.logout("a", t(2)), lambda: r.ready("a", t(2))):
        with pytest.raises(IllegalTransition, match="ringing"):
            act()
    assert r.reservations["c"].agent_id == "a" and r.agents["a"].status is Status.RESERVED


# ---------------------------------------------------------------- regressions found in review


def test_agent_paused_for_no_answer_can_be_made_ready_while_the_missed_call_waits():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=20, max_no_answer=3)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c1", "sched", t(10))
    for s in (30, 50, 70):
        r.tick(t(s))
    assert r.agents["a"].status is Status.NOT_READY and r.agents["a"].missed == 3
    d = r.ready("a", t(80))  # used to crash in the missed-call check
    assert offers(d) == [("c1", "a")]
    assert r.agents["a"].missed == 0  # misses count afresh after a pause: "N in a row"


def test_ring_out_and_longest_wait_in_one_tick():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=20.3, max_wait=20.7)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c", "sched", t(0))
    d = r.tick(t(21))  # used to raise UnknownCall: the nested catch-up ran the timeout inside the ring-out
    assert [x.outcome for x in d if isinstance(x, QueueFailed)] == ["timeout"]  # at 21 the wait limit has passed
    assert r.agents["a"].status is Status.READY and "c" not in r.calls


def test_ring_out_then_longest_wait_when_ticked_on_time():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=20.3, max_wait=20.7)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c", "sched", t(0))
    assert offers(r.tick(t(20.3))) == [("c", "a")]  # rang out; nobody else: offered again, still in time
    assert r.tick(t(20.7)) == []  # the longest wait lets that ring play out
    d = r.tick(r.next_wakeup())  # the second ring ends: the limit has passed, so it wins over a third ring
    assert [x.outcome for x in d if isinstance(x, QueueFailed)] == ["timeout"] and "c" not in r.calls


def test_a_call_refiled_mid_scan_does_not_hide_the_next_one():
    q = {"spanish": QueueSpec(steps=[Step(until=4), Step(relax="all")], when_nobody_logged_in="wait"),
         "general": QueueSpec(skills={"general": 1}, wrap_up=5)}
    r = router(q, agent("en_agent", general=5))
    r.enqueue("warm", "general", t(1))
    r.answered("warm", t(2))
    r.call_ended("en_agent", t(5))  # wrap-up until 10
    r.enqueue("x", "spanish", t(6), skills=[("general", 9)], language="es")  # relaxes at 10
    r.enqueue("y", "general", t(7), language="en")
    d = r.tick(t(10))
    assert offers(d) == [("y", "en_agent")]


def test_overflow_due_while_ringing_happens_when_the_ring_ends():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, overflow={"after": 60, "to": "desk"}, ring_timeout=50,
                            max_no_answer=1),
         "desk": QueueSpec(skills={"front_desk": 1})}
    r = router(q, agent("sleepy", scheduling=5), agent("desk_agent", front_desk=3))
    r.enqueue("c", "sched", t(40))  # rings sleepy until 90; overflow due at 100... ring again? no: sleepy paused
    r.tick(t(90))
    assert r.agents["sleepy"].status is Status.NOT_READY
    d = r.tick(t(100))
    assert any(isinstance(x, Overflowed) for x in d) and offers(d) == [("c", "desk_agent")]


def test_overflow_due_during_a_ring_is_checked_again_after_it():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, overflow={"after": 30, "to": "desk"}, ring_timeout=20,
                            max_no_answer=1),
         "desk": QueueSpec(skills={"front_desk": 1})}
    r = router(q, agent("sleepy", scheduling=5), agent("desk_agent", front_desk=3))
    r.enqueue("c", "sched", t(20))  # overflow due at 50, ringing 20..40? then re-offer impossible
    r.tick(t(40))  # rang out: sleepy paused; c waits
    d = r.tick(t(50))
    assert offers(d) == [("c", "desk_agent")]


def test_overflowed_call_takes_the_new_queues_requirements_and_respects_its_length():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, overflow={"after": 60, "to": "desk"}, when_nobody_logged_in="wait"),
         "desk": QueueSpec(skills={"front_desk": 1}, max_length=1, when_nobody_logged_in="wait")}
    r = router(q, agent("desk_agent", front_desk=3), ready=False)
    r.login("desk_agent", t(0), ready=False)
    r.enqueue("c1", "sched", t(0), skills=[("scheduling", 5)])
    r.enqueue("c2", "sched", t(1), skills=[("scheduling", 5)])
    r.tick(t(61))
    assert r.calls["c1"].queue == "desk" and r.calls["c2"].queue == "sched"  # desk holds one: c2 stays, in place
    assert offers(r.ready("desk_agent", t(62))) == [("c1", "desk_agent")]  # front_desk>=1 applies now


def test_an_old_wrap_up_timer_does_not_cut_a_later_wrap_up_short():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, wrap_up=60)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c1", "sched", t(0))
    r.answered("c1", t(1))
    r.call_ended("a", t(10))  # wrap-up until 70
    r.ready("a", t(11))  # ends it early by hand
    r.enqueue("c2", "sched", t(12))
    r.answered("c2", t(13))
    r.call_ended("a", t(60))  # wrap-up until 120
    r.tick(t(70))
    assert r.agents["a"].status is Status.WRAP_UP
    r.tick(t(120))
    assert r.agents["a"].status is Status.READY


def test_preferred_window_does_not_hold_a_call_for_an_agent_who_cannot_take_it():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, steps=[Step(preferred_agent=20)])}
    r = router(q, agent("other", scheduling=9), agent("last", scheduling=5))
    r.logout("last", t(5))
    assert offers(r.enqueue("c", "sched", t(10), preferred_agent="last")) == [("c", "other")]
    r.abandon("c", t(11))
    assert offers(r.enqueue("d", "sched", t(12), preferred_agent="nobody-we-know")) == [("d", "other")]


def test_longest_wait_during_a_ring_waits_for_the_ring():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, ring_timeout=30, max_wait=20)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c", "sched", t(0))
    assert r.tick(t(20)) == [] and r.reservations["c"].agent_id == "a"  # still ringing: not pulled away
    r.answered("c", t(25))
    assert "c" not in r.calls and r.agents["a"].status is Status.ON_CALL


@pytest.mark.parametrize("seed", range(12))
def test_random_operations_keep_every_index_consistent(seed):
    """The reviewer's property check: after every operation the indexes agree with the states."""
    import random

    rng = random.Random(seed)
    q = {"q1": QueueSpec(skills={"x": 3}, steps=[Step(until=30), Step(relax="all")], ring_timeout=15, max_no_answer=2,
                         wrap_up=5, when_nobody_logged_in="wait"),
         "q2": QueueSpec(skills={"y": 2}, overflow={"after": 40, "to": "q3"}, when_nobody_logged_in="wait", max_wait=200),
         "q3": QueueSpec(skills={"x": 1}, steps=[Step(until=20, preferred_agent=10), Step()], when_nobody_logged_in="wait")}
    roster = [agent(f"a{i}", langs=("en", "es") if i % 3 else ("en",), x=rng.randint(1, 9), y=rng.randint(1, 9))
              for i in range(10)]
    r = Router(q, roster)
    now = 0.0
    for n in range(1500):
        now += rng.random() * 3
        op = rng.random()
        a = f"a{rng.randrange(10)}"
        try:
            if op < 0.3:
                r.enqueue(f"c{n}", rng.choice(list(q)), t(now), language=rng.choice(["en", "es"]),
                          priority=rng.choice([0, 0, 3]), preferred_agent=rng.choice([None, a]))
            elif op < 0.45 and r.reservations:
                r.answered(rng.choice(list(r.reservations)), t(now))
            elif op < 0.5 and r.reservations:
                r.no_answer(rng.choice(list(r.reservations)), t(now))
            elif op < 0.6 and r.calls:
                r.abandon(rng.choice(list(r.calls)), t(now))
            elif op < 0.75:
                r.call_ended(a, t(now))
            elif op < 0.85:
                r.tick(t(now))
            else:
                [lambda: r.login(a, t(now)), lambda: r.ready(a, t(now)), lambda: r.pause(a, "break", t(now)),
                 lambda: r.logout(a, t(now))][rng.randrange(4)]()
        except (IllegalTransition, UnknownAgent):
            pass
        except Exception as exc:  # UnknownCall and friends are fine; anything else is a bug
            assert type(exc).__name__ in ("UnknownCall",), exc
        ready = sorted(aid for aid, st in r.agents.items() if st.status is Status.READY)
        assert sorted(k[2] for k in r._ready) == ready
        for aid in ready:
            for skill in r.roster[aid].skills:
                assert sum(1 for k in r._ready_by_skill[skill] if k[2] == aid) == 1
        assert {c: res.agent_id for c, res in r.reservations.items()} == {c: ag for ag, c in r.reserved_agent.items()}
        for c, res in r.reservations.items():
            assert r.agents[res.agent_id].status is Status.RESERVED and r.agents[res.agent_id].call_id == c
        filed = [k[3] for lst in r._by_skill.values() for k in lst]
        assert sorted(filed) == sorted(r.calls)


def test_unavailable_withdraws_a_ringing_offer_without_a_miss_and_never_re_offers_the_dead_phone():
    """A softphone that unregisters while it rings: the call goes to the next agent at once, keeping its place."""
    r = router(Q, agent("ana", scheduling=9), agent("ben", scheduling=6))
    assert offers(r.enqueue("c1", "sched", t(1))) == [("c1", "ana")]
    since = r.calls["c1"].since
    ds = r.unavailable("ana", t(3))
    assert offers(ds) == [("c1", "ben")]
    ana = r.agents["ana"]
    assert (ana.status, ana.reason, ana.missed) == (Status.NOT_READY, "offline", 0)
    assert r.calls["c1"].since == since and r.reservations["c1"].agent_id == "ben"
    # idle agents simply become not ready; a logged-out one is refused
    r2 = router(Q, agent("ana", scheduling=9))
    r2.unavailable("ana", t(1))
    assert (r2.agents["ana"].status, r2.agents["ana"].reason) == (Status.NOT_READY, "offline")
    r2.logout("ana", t(2))
    with pytest.raises(IllegalTransition):
        r2.unavailable("ana", t(3))


# ---------------------------------------------------------------- "not ready after this call": edge cases


def test_a_refused_change_keeps_the_pending_request():
    r = on_call_with_one_waiting(wrap_up=30)
    r.after_call("a", Status.LOGGED_OUT, t(20))
    with pytest.raises(IllegalTransition):
        r.ready("a", t(21))  # on a call: refused, and it changes nothing
    assert r.after_call_to["a"] == (Status.LOGGED_OUT, None)
    r.call_ended("a", t(100))
    assert offers(r.tick(t(130))) == [] and r.agents["a"].status is Status.LOGGED_OUT


def test_a_ring_out_applies_the_pending_pause_before_the_call_is_offered_again():
    q = {"q": QueueSpec(skills={"s": 1}, wrap_up=30, ring_timeout=15)}
    r = router(q, agent("a", s=5))
    r.enqueue("c1", "q", t(10))  # rings a, the only agent
    r.after_call("a", Status.NOT_READY, t(11), reason="break")
    d = r.tick(t(25))  # rings out: the missed-ring fallback would hand it straight back to a
    assert offers(d) == [] and (r.agents["a"].status, r.agents["a"].reason) == (Status.NOT_READY, "break")
    assert "a" not in r.after_call_to and r.calls["c1"].offered_to is None


def test_a_pending_logout_survives_an_automatic_pause_for_no_answer():
    q = {"q": QueueSpec(skills={"s": 1}, wrap_up=30, ring_timeout=15, max_no_answer=1)}
    r = router(q, agent("a", s=5), agent("b", s=5))
    r.enqueue("c1", "q", t(10))  # a: longest idle
    r.after_call("a", Status.LOGGED_OUT, t(11))
    d = r.tick(t(25))
    assert r.agents["a"].status is Status.LOGGED_OUT and "a" not in r.after_call_to
    assert offers(d) == [("c1", "b")]


def test_offline_while_ringing_drops_a_pending_pause_but_not_a_pending_logout():
    r = router(Q, agent("a", scheduling=5), agent("b", scheduling=5))
    r.enqueue("c1", "sched", t(10))  # a
    r.after_call("a", Status.NOT_READY, t(11), reason="lunch")
    r.unavailable("a", t(12))
    assert (r.agents["a"].status, r.agents["a"].reason) == (Status.NOT_READY, "offline") and not r.after_call_to


def test_offline_in_wrap_up_still_logs_out_an_agent_who_asked_to():
    r = on_call_with_one_waiting(wrap_up=30)
    r.after_call("a", Status.LOGGED_OUT, t(20))
    r.call_ended("a", t(100))
    d = r.unavailable("a", t(110))
    assert [(x.state.status, x.cause) for x in d if isinstance(x, AgentChanged)] == [
        (Status.NOT_READY, "unavailable"), (Status.LOGGED_OUT, "after-call")]
    assert r.agents["a"].status is Status.LOGGED_OUT and not r.after_call_to and offers(d) == []


def test_a_caller_leaving_a_ringing_agent_with_a_pending_pause_leaves_no_zero_length_ready():
    r = router(Q, agent("a", scheduling=5))
    r.enqueue("c1", "sched", t(10))
    r.enqueue("c2", "sched", t(10.5))
    r.after_call("a", Status.NOT_READY, t(11), reason="meeting")
    d = r.abandon("c1", t(12))
    assert [(x.state.status, x.cause) for x in d if isinstance(x, AgentChanged)] == [(Status.NOT_READY, "after-call")]
    assert offers(d) == [] and r.calls["c2"].offered_to is None


def test_no_wrap_up_lets_a_max_wait_due_at_the_same_instant_go_first():
    q = {"sched": QueueSpec(skills={"scheduling": 5}, wrap_up=0, max_wait=90)}
    r = router(q, agent("a", scheduling=5))
    r.enqueue("c1", "sched", t(0))
    r.answered("c1", t(5))
    r.enqueue("c2", "sched", t(10))
    d = r.call_ended("a", t(100))  # c2's max wait ends at exactly 100 s
    assert [x.outcome for x in d if isinstance(x, QueueFailed)] == ["timeout"] and offers(d) == []
