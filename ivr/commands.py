"""Commands: what the interpreter asks the telephony side to do.

Plain values, no behaviour. An adapter turns them into ARI requests or TwiML;
the simulator turns them into transcript lines and future events. They are
slotted dataclasses but not frozen: a frozen dataclass costs about three times
as much to build, and commands are built on every event; treat them as values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class SayItem:
    text: str
    language: str
    voice: str | None = None
    shown: str | None = None  # the text with sensitive values masked, for transcripts and logs (None: same as text)


@dataclass(slots=True)
class PlayItem:
    """``uri`` is ``sound:NAME`` (a system sound) or a path relative to the recordings folder."""

    uri: str
    language: str
    duration: float | None = None  # seconds, when known


@dataclass(slots=True)
class PauseItem:
    seconds: float


PromptItem = SayItem | PlayItem | PauseItem


@dataclass(slots=True)
class Collect:
    """Listen for keys: up to ``max_digits``, ending early on ``terminator``.

    The adapter starts ``timeout`` when the prompt ends and restarts it after
    each key; when it runs out it sends ``InputTimeout``.
    """

    max_digits: int
    timeout: float
    terminator: str | None = None


@dataclass(slots=True)
class Answer:
    pass


@dataclass(slots=True)
class PlayPrompt:
    """Play ``items`` in order, then send ``PromptFinished(prompt_id)``; with ``collect``, listen for keys too."""

    prompt_id: int
    items: tuple[PromptItem, ...]
    barge_in: bool = True
    collect: Collect | None = None


@dataclass(slots=True)
class StopPrompt:
    """A key barged in: stop playing ``prompt_id`` now."""

    prompt_id: int


@dataclass(slots=True)
class Enqueue:
    queue: str
    skills: tuple[tuple[str, int], ...]
    language: str | None
    priority: int
    max_wait: float | None = None
    announce: bool = True
    hold_music: str | None = None
    keys: tuple[str, ...] = ()  # keys the caller may press while waiting (the adapter passes them on as Digit)


@dataclass(slots=True)
class Dequeue:
    queue: str
    reason: str


@dataclass(slots=True)
class Transfer:
    to: str
    label: str | None
    timeout: float


@dataclass(slots=True)
class Record:
    max_length: float
    retention: str
    mailbox: str | None
    beep: bool
    finish_key: str
    kind: str  # "record" or "voicemail"


@dataclass(slots=True)
class RequestCallback:
    """Call the patient back from ``queue``; ``keep_place_since`` is when the caller first joined, so the place is kept."""

    queue: str
    number: str
    keep_place_since: Any  # datetime
    skills: tuple[tuple[str, int], ...] = ()
    language: str | None = None
    priority: int = 0


@dataclass(slots=True)
class SendSms:
    to: str
    text: str
    language: str
    shown: str | None = None  # the text with sensitive values masked (None: same as text)


@dataclass(slots=True)
class CallHook:
    """Run the deployment's hook ``hook`` with ``args``; answer with ``HookResult(request_id)`` within ``timeout``."""

    request_id: int
    hook: str
    args: dict[str, Any] = field(default_factory=dict)
    timeout: float = 3.0


@dataclass(slots=True)
class HangupCall:
    reason: str


Command = (
    Answer | PlayPrompt | StopPrompt | Enqueue | Dequeue | Transfer | Record | RequestCallback | SendSms
    | CallHook | HangupCall
)
