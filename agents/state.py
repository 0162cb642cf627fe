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


def transition(state: AgentState, to: Status, at: datetime, *, reason: str | None = None,
               call_id: str | None = None) -> AgentState:
    """The state after moving to ``to`` at ``at``; raises IllegalTransition if the move is not allowed."""
    if to not in ALLOWED[state.status]:
        allowed = ", ".join(s.value for s in sorted(ALLOWED[state.status], key=lambda s: s.value))
        raise IllegalTransition(
            f"agent {state.agent_id} is {state.status.value}; cannot go to {to.value} (from {state.status.value}: {allowed})",
            details={"agent": state.agent_id, "from": state.status.value, "to": to.value},
        )
    if to is Status.NOT_READY and reason is None:
        reason = "other"
    if to is Status.NOT_READY and reason not in NOT_READY_REASONS:
        raise IllegalTransition(f"unknown not-ready reason {reason!r}; use one of {', '.join(NOT_READY_REASONS)}",
                                details={"agent": state.agent_id, "reason": reason})
    if to is Status.RESERVED and not call_id:
        raise IllegalTransition("a reservation needs the call it is for", details={"agent": state.agent_id})
    idle_since = state.idle_since
    missed = state.missed
    calls = state.calls
    keep_call = None
    if to is Status.READY:
        if state.status is not Status.RESERVED or idle_since is None:
            idle_since = at  # ring-no-answer keeps the agent's place in the idle order; anything else restarts it
        if state.status is Status.NOT_READY:
            missed = 0  # back from a pause (even one for no-answer): misses count afresh, "N in a row"
    elif to is Status.RESERVED:
        keep_call = call_id
    elif to is Status.ON_CALL:
        keep_call = state.call_id
        missed = 0
        calls += 1
    elif to is Status.WRAP_UP:
        keep_call = state.call_id
    if state.status is Status.LOGGED_OUT:
        calls, missed = 0, 0
    return AgentState(state.agent_id, to, at, reason if to is Status.NOT_READY else None, keep_call,
                      idle_since if to is not Status.LOGGED_OUT else None, missed, calls)


def missed_offer(state: AgentState, at: datetime, max_no_answer: int) -> AgentState:
    """Ring-no-answer: back to ready keeping the idle place, or not ready after ``max_no_answer`` misses in a row."""
    missed = state.missed + 1
    if max_no_answer and missed >= max_no_answer:
        return transition(state, Status.NOT_READY, at, reason="no-answer")._replace(missed=missed)
    return transition(state, Status.READY, at)._replace(missed=missed)
