"""What the router works on and what it decides: plain values shared by the router, the store and adapters."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from agents.state import AgentState


class WaitingCall(NamedTuple):
    """A call waiting for an agent.

    ``since`` is the caller's place in line: it is kept when a call comes back after
    ring-no-answer, moves by overflow, or is a callback for a caller who waited before.
    ``seq`` breaks ties in arrival order. ``skills`` are the call's own requirements
    (from the tree's queue node); the queue's steps relax them as the caller waits.
    """

    call_id: str
    queue: str
    since: datetime
    seq: int
    priority: int = 0
    skills: tuple[tuple[str, int], ...] = ()
    language: str | None = None
    preferred_agent: str | None = None
    callback_number: str | None = None  # set for a callback: the call is a promise to ring the patient
    entered_queue_at: datetime | None = None  # when it joined *this* queue (overflow timing)
    offered_to: str | None = None  # the agent it is ringing, while reserved


class Reservation(NamedTuple):
    call_id: str
    agent_id: str
    offered_at: datetime
    expires_at: datetime


# ---------------------------------------------------------------- decisions


class Offer(NamedTuple):
    """Ring ``agent_id`` with ``call_id``: the agent is reserved until ``expires_at``."""

    call_id: str
    agent_id: str
    queue: str
    expires_at: datetime
    explanation: dict[str, Any]


class QueueFailed(NamedTuple):
    """The call leaves the queue: the tree's fallback for ``outcome`` (no_agents, full, timeout) takes over."""

    call_id: str
    queue: str
    outcome: str


class Overflowed(NamedTuple):
    call_id: str
    from_queue: str
    to_queue: str


class AgentChanged(NamedTuple):
    """An agent's state changed (for the store's event log and for presence displays)."""

    state: AgentState
    previous: str
    cause: str


class CallQueued(NamedTuple):
    """A call joined, or returned to, a queue (for the store)."""

    call: WaitingCall


class CallLeft(NamedTuple):
    """A call left the router: ``why`` is answered, abandoned, dequeued, failed or overflowed."""

    call_id: str
    queue: str
    why: str
    at: datetime


Decision = Offer | QueueFailed | Overflowed | AgentChanged | CallQueued | CallLeft
