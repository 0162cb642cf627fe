"""Events: what happened on the call, as plain typed values.

Adapters (Asterisk, Twilio, the simulator) turn protocol traffic into these and
feed them to :func:`ivr.interpreter.step`. Every event carries ``at``, an
aware datetime: the interpreter never reads a clock, so the same call replays
identically in tests, in the simulated-call CLI and in the day simulator.
Events are slotted dataclasses, not frozen ones (cheaper to build, which the
day simulator does millions of times); treat them as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(slots=True)
class CallStarted:
    at: datetime
    call_id: str
    caller: str | None = None  # E.164 or None when withheld
    called: str | None = None
    language: str | None = None  # e.g. chosen by the dialled number; None = tree default


@dataclass(slots=True)
class PromptFinished:
    at: datetime
    prompt_id: int


@dataclass(slots=True)
class Digit:
    """One DTMF key. Adapters that receive several at once (Twilio ``Digits``) send one event per key."""

    at: datetime
    digit: str


@dataclass(slots=True)
class InputTimeout:
    """The caller pressed nothing for the collect timeout after prompt ``prompt_id`` ended."""

    at: datetime
    prompt_id: int


QueueFailure = Literal["closed", "no_agents", "full", "timeout"]


@dataclass(slots=True)
class QueueResult:
    """Routing could not serve the call; the tree's fallback for ``outcome`` takes over."""

    at: datetime
    outcome: QueueFailure


@dataclass(slots=True)
class AgentConnected:
    at: datetime
    agent_id: str
    explanation: str = ""


@dataclass(slots=True)
class AgentDisconnected:
    """The agent side ended; the call continues at the queue's ``after_call`` node (a survey) or ends."""

    at: datetime


@dataclass(slots=True)
class TransferResult:
    at: datetime
    ok: bool
    reason: str = ""


@dataclass(slots=True)
class RecordingFinished:
    at: datetime
    duration: float
    recording_id: str = ""


@dataclass(slots=True)
class HookResult:
    at: datetime
    request_id: int
    ok: bool
    values: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(slots=True)
class Hangup:
    """The caller hung up (or the line dropped)."""

    at: datetime


Event = (
    CallStarted | PromptFinished | Digit | InputTimeout | QueueResult | AgentConnected | AgentDisconnected
    | TransferResult | RecordingFinished | HookResult | Hangup
)
