"""The agent state machine: logged out, ready, not ready (with a reason), reserved, on call, wrap-up.

Pure: ``transition(state, to, at, ...)`` returns the new state or raises
:class:`IllegalTransition` with a stable error id. The router, the CLI and the
store all go through it, so an agent can never be, say, on a call while
logged out, whichever door the change came in by.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import NamedTuple

from ivr.errors import IvrError


class Status(str, Enum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"  # a call is ringing on the agent's softphone
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.LOGGED_OUT: frozenset({Status.READY, Status.NOT_READY}),
    Status.READY: frozenset({Status.NOT_READY, Status.RESERVED, Status.LOGGED_OUT}),
    Status.NOT_READY: frozenset({Status.READY, Status.LOGGED_OUT, Status.NOT_READY}),  # same state, new reason: break -> lunch
    # ringing: answered, not answered (back to ready, or not ready after too many misses), or the caller left
    Status.RESERVED: frozenset({Status.ON_CALL, Status.READY, Status.NOT_READY}),
    Status.ON_CALL: frozenset({Status.WRAP_UP}),
    Status.WRAP_UP: frozenset({Status.READY, Status.NOT_READY, Status.LOGGED_OUT}),
}

NOT_READY_REASONS = ("break", "lunch", "training", "meeting", "admin", "no-answer", "offline", "other")


class IllegalTransition(IvrError):
    """The agent cannot go from their current state to the one asked for."""

    error_id = "E-AGENT-TRANSITION"


class UnknownAgent(IvrError):
    error_id = "E-AGENT-UNKNOWN"


class AgentState(NamedTuple):
    """An agent's live state. ``idle_since`` orders longest-idle routing; ``missed`` counts offers missed in a row."""

    agent_id: str
    status: Status = Status.LOGGED_OUT
    since: datetime | None = None
    reason: str | None = None
    call_id: str | None = None
    idle_since: datetime | None = None
    missed: int = 0
    calls: int = 0  # calls answered since login, for fewest-calls routing

    @property
    def available(self) -> bool:
        return self.status is Status.READY


# The members as plain module constants. ``Status.READY`` is looked up through the enum's metaclass
# (which defines ``__getattr__``): about 0.2 µs a time, and `transition` runs on every state change.
_LOGGED_OUT, _READY, _NOT_READY = Status.LOGGED_OUT, Status.READY, Status.NOT_READY
_RESERVED, _ON_CALL, _WRAP_UP = Status.RESERVED, Status.ON_CALL, Status.WRAP_UP

# ``tuple.__new__(AgentState, fields)`` is what ``AgentState(...)`` does after a Python-level ``__new__``
# that only repacks its arguments: calling it directly halves the cost of building a state.
_new_state = tuple.__new__
# `transition` unpacks and rebuilds every field by position.
assert AgentState._fields == ("agent_id", "status", "since", "reason", "call_id", "idle_since", "missed", "calls")


def _illegal(state: AgentState, to: Status) -> IllegalTransition:
    """The error for a move ``ALLOWED`` does not list (built only when refusing, off the hot path)."""
    allowed = ", ".join(s.value for s in sorted(ALLOWED[state.status], key=lambda s: s.value))
    return IllegalTransition(
        f"agent {state.agent_id} is {state.status.value}; cannot go to {to.value} (from {state.status.value}: {allowed})",
        details={"agent": state.agent_id, "from": state.status.value, "to": to.value},
    )


def transition(state: AgentState, to: Status, at: datetime, *, reason: str | None = None,
               call_id: str | None = None) -> AgentState:
    """The state after moving to ``to`` at ``at``; raises IllegalTransition if the move is not allowed."""
    agent_id, status, _, _, old_call, idle_since, missed, calls = state
    if to not in ALLOWED[status]:
        raise _illegal(state, to)
    if to is _NOT_READY:
        if reason is None:
            reason = "other"
        if reason not in NOT_READY_REASONS:
            raise IllegalTransition(f"unknown not-ready reason {reason!r}; use one of {', '.join(NOT_READY_REASONS)}",
                                    details={"agent": agent_id, "reason": reason})
    else:
        reason = None  # only a pause has a reason
        if to is _RESERVED and not call_id:
            raise IllegalTransition("a reservation needs the call it is for", details={"agent": agent_id})
    keep_call = None
    if to is _READY:
        if status is not _RESERVED or idle_since is None:
            idle_since = at  # ring-no-answer keeps the agent's place in the idle order; anything else restarts it
        if status is _NOT_READY:
            missed = 0  # back from a pause (even one for no-answer): misses count afresh, "N in a row"
    elif to is _RESERVED:
        keep_call = call_id
    elif to is _ON_CALL:
        keep_call = old_call
        missed = 0
        calls += 1
    elif to is _WRAP_UP:
        keep_call = old_call
    elif to is _LOGGED_OUT:
        idle_since = None
    if status is _LOGGED_OUT:
        calls, missed = 0, 0
    return _new_state(AgentState, (agent_id, to, at, reason, keep_call, idle_since, missed, calls))


def missed_offer(state: AgentState, at: datetime, max_no_answer: int) -> AgentState:
    """Ring-no-answer: back to ready keeping the idle place, or not ready after ``max_no_answer`` misses in a row."""
    missed = state.missed + 1
    if max_no_answer and missed >= max_no_answer:
        return transition(state, Status.NOT_READY, at, reason="no-answer")._replace(missed=missed)
    return transition(state, Status.READY, at)._replace(missed=missed)
