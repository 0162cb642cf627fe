"""The call-tree language: one pydantic model per node type.

Every model forbids unknown fields, so a typo such as ``nxt:`` is an error at
load time instead of a call that silently goes nowhere. Shorthands admins like
to write (a bare string for a menu option, a plain text for a prompt) are
normalised here, once, so the interpreter only ever sees one shape.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, field_validator

from ivr.schedule import ScheduleSpec, load_zone

DTMF_KEYS = frozenset("0123456789*#")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A special target usable wherever a node id is expected: the tree's human target.
HUMAN = "human"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------- prompts

LangText = dict[str, str]  # language code -> text; "*" means "the same in every language"


def _lang_text(value: Any) -> Any:
    """``"Hello"`` -> ``{"*": "Hello"}``; a mapping of languages stays as it is."""
    if isinstance(value, str):
        return {"*": value}
    return value


class SayPart(Model):
    """Text spoken by the telephony system's text-to-speech in the call's language."""

    kind: Literal["say"] = "say"
    text: Annotated[LangText, BeforeValidator(_lang_text)]


class PlayPart(Model):
    """An audio file under ``recordings/`` (``file.wav``, per language ``{en: ..., es: ...}``) or a system sound (``sound:beep``)."""

    kind: Literal["play"] = "play"
    audio: Annotated[LangText, BeforeValidator(_lang_text)]
    duration: float | None = Field(default=None, gt=0, le=600)


class PausePart(Model):
    """Silence, in seconds."""

    kind: Literal["pause"] = "pause"
    seconds: float = Field(gt=0, le=10)


PromptPart = Annotated[Union[SayPart, PlayPart, PausePart], Field(discriminator="kind")]

_PART_KEYS = {"say": ("say", "text"), "play": ("play", "audio"), "pause": ("pause", "seconds")}


def _prompt_parts(value: Any) -> Any:
    """Accept the shorthands: text, ``{en:..., es:...}``, ``{say: ...}``, ``{play: ...}`` or a list of those."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            out.append({"kind": "say", "text": item})
        elif isinstance(item, dict):
            keys = set(item) & set(_PART_KEYS)
            if len(keys) == 1:
                (k,) = keys
                kind, field = _PART_KEYS[k]
                part = {kk: vv for kk, vv in item.items() if kk != k}
                part.update({"kind": kind, field: item[k]})
                out.append(part)
            elif not keys and "kind" not in item:
                out.append({"kind": "say", "text": item})  # a language map
            else:
                out.append(item)
        else:
            out.append(item)
    return out


Prompt = Annotated[list[PromptPart], BeforeValidator(_prompt_parts)]


# --------------------------------------------------------------------- helpers


def _check_key(key: str) -> str:
    if len(key) != 1 or key not in DTMF_KEYS:
        raise ValueError(f"{key!r} is not a phone key; use one of 0-9, * or # (quote them: \"1\", \"*\")")
    return key


DtmfKey = Annotated[str, AfterValidator(_check_key)]  # as a dict key type, errors point at the key itself


def _has_words(v: str) -> str:
    if len(v.strip()) < 10:
        raise ValueError("a waiver needs a written reason of at least 10 characters (not just spaces)")
    return v


class Handler(Model):
    """What to do on no input / invalid input: an optional prompt each retry, and where to go when retries run out."""

    prompt: Prompt = []
    next: str | None = None


class Waiver(Model):
    """A lint switched off for this tree (or one node) with a written reason that reviewers can read."""

    lint: str = Field(pattern=r"^L-[A-Z0-9-]+$")
    node: str | None = None
    reason: Annotated[str, Field(min_length=10), AfterValidator(_has_words)]


# --------------------------------------------------------------------- conditions


class OpenCond(Model):
    """True while the named schedule is open."""

    open: str


class ClosedCond(Model):
    """True while the named schedule is closed."""

    closed: str


def _regex_ok(v: str | None) -> str | None:
    """Compile at load time, so a bad pattern is an error in `ivr validate`, not a crash during a call."""
    if v is not None:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"{v!r} is not a valid regular expression: {exc} (escape + as \\+)") from None
    return v


Regex = Annotated[str, AfterValidator(_regex_ok)]


class VarCond(Model):
    """Compare a variable: ``{var: reason, equals: billing}``, ``in: [...]``, ``matches: regex``, ``is_set: true``."""

    var: str
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    matches: Regex | None = None
    is_set: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CallerCond(Model):
    """Conditions on the calling number: ``{caller: {starts_with: "+1555"}}``, ``in``, ``matches``, ``withheld``."""

    class Spec(Model):
        starts_with: str | list[str] | None = None
        in_: list[str] | None = Field(default=None, alias="in")
        matches: Regex | None = None
        withheld: bool | None = None
        model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    caller: Spec


class LanguageCond(Model):
    """True when the call's current language is one of these."""

    language: str | list[str]


class AllCond(Model):
    all: list["Condition"]


class AnyCond(Model):
    any: list["Condition"]


class NotCond(Model):
    not_: "Condition" = Field(alias="not")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_COND_TAGS = ("open", "closed", "var", "caller", "language", "all", "any", "not")


def _cond_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for tag in _COND_TAGS:
            if tag in value:
                return tag
        return None
    if isinstance(value, BaseModel):
        return {
            OpenCond: "open", ClosedCond: "closed", VarCond: "var", CallerCond: "caller",
            LanguageCond: "language", AllCond: "all", AnyCond: "any", NotCond: "not",
        }.get(type(value))
    return None


Condition = Annotated[
    Union[
        Annotated[OpenCond, Tag("open")],
        Annotated[ClosedCond, Tag("closed")],
        Annotated[VarCond, Tag("var")],
        Annotated[CallerCond, Tag("caller")],
        Annotated[LanguageCond, Tag("language")],
        Annotated[AllCond, Tag("all")],
        Annotated[AnyCond, Tag("any")],
        Annotated[NotCond, Tag("not")],
    ],
    Discriminator(
        _cond_tag,
        custom_error_type="condition",
        custom_error_message="a condition needs one of: open, closed, var, caller, language, all, any, not",
    ),
]
AllCond.model_rebuild()
AnyCond.model_rebuild()
NotCond.model_rebuild()


# --------------------------------------------------------------------- nodes


class NodeBase(Model):
    description: str | None = None


class SayNode(NodeBase):
    """Speak text (per language). A key pressed while it plays is kept for the next menu (barge-in)."""

    type: Literal["say"]
    text: Annotated[LangText, BeforeValidator(_lang_text)]
    barge_in: bool = True
    next: str


class PlayNode(NodeBase):
    """Play an audio file under recordings/ or a system sound (``sound:...``)."""

    type: Literal["play"]
    audio: Annotated[LangText, BeforeValidator(_lang_text)]
    duration: float | None = Field(default=None, gt=0, le=600)
    barge_in: bool = True
    next: str


class MenuOption(Model):
    next: str
    label: str | None = None
    set: dict[str, Any] = {}


def _option(value: Any) -> Any:
    return {"next": value} if isinstance(value, str) else value


class MenuNode(NodeBase):
    """Play a prompt and wait for one key. The tree's human key (0) works here unless ``human: false``."""

    type: Literal["menu"]
    prompt: Prompt
    options: dict[DtmfKey, Annotated[MenuOption, BeforeValidator(_option)]]
    timeout: float | None = Field(default=None, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    no_input: Handler | None = None
    invalid: Handler | None = None
    human: bool = True

    @field_validator("options")
    @classmethod
    def _not_empty(cls, v: dict[str, MenuOption]) -> dict[str, MenuOption]:
        if not v:
            raise ValueError("a menu needs at least one option")
        return v


class Validation(Model):
    """How entered digits are checked: a date of birth, a member number, a phone number, or a pattern."""

    kind: Literal["date_of_birth", "member_number", "phone", "digits", "pattern"]
    format: Literal["MMDDYYYY", "DDMMYYYY", "YYYYMMDD"] = "MMDDYYYY"
    pattern: str | None = None
    luhn: bool = False

    @field_validator("pattern")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        return _regex_ok(v)


class InputNode(NodeBase):
    """Collect several digits into a variable (date of birth, member number). ``sensitive`` keeps them out of traces and logs."""

    type: Literal["input"]
    prompt: Prompt
    variable: str = Field(pattern=IDENT.pattern)
    min_length: int = Field(default=1, ge=1, le=32)
    max_length: int = Field(ge=1, le=32)
    terminator: str | None = "#"
    timeout: float = Field(default=6, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    validate_: Validation | None = Field(default=None, alias="validate")
    sensitive: bool | None = None  # None: on when validate is a date of birth, member number or phone
    no_input: Handler | None = None
    invalid: Handler | None = None
    human: bool = True
    next: str

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("terminator")
    @classmethod
    def _term(cls, v: str | None) -> str | None:
        return None if v is None else _check_key(v)

    @property
    def is_sensitive(self) -> bool:
        """Explicit ``sensitive``, else on for entries that identify a patient."""
        if self.sensitive is not None:
            return self.sensitive
        return self.validate_ is not None and self.validate_.kind in ("date_of_birth", "member_number", "phone")


class BranchCase(Model):
    when: Condition
    next: str


class BranchNode(NodeBase):
    """Go to the first case whose condition holds (schedules, variables, caller, language), else ``default``."""

    type: Literal["branch"]
    cases: list[BranchCase] = Field(min_length=1)
    default: str


class SetNode(NodeBase):
    """Set variables (``language`` switches the call's language)."""

    type: Literal["set"]
    vars: dict[str, Any] = Field(min_length=1)
    next: str


class GotoNode(NodeBase):
    type: Literal["goto"]
    target: str


class HangupNode(NodeBase):
    """End the call, after an optional goodbye. ``outcome`` names what the call achieved (for containment reports)."""

    type: Literal["hangup"]
    prompt: Prompt = []
    outcome: str = "hangup"


class QueueRequirements(Model):
    skills: dict[str, Annotated[int, Field(ge=1, le=10)]] = {}
    language: str | None = "{language}"


class QueueFallback(Model):
    """Where the call goes when the queue cannot serve it. ``default`` covers any outcome not named."""

    closed: str | None = None
    no_agents: str | None = None
    full: str | None = None
    timeout: str | None = None
    default: str | None = None

    def target(self, outcome: str) -> str | None:
        return getattr(self, outcome, None) or self.default


QUEUE_FAILURES = ("closed", "no_agents", "full", "timeout")


class QueueNode(NodeBase):
    """Hand the call to routing with its requirements and priority; say where it goes when it cannot be served."""

    type: Literal["queue"]
    queue: str
    requirements: QueueRequirements = QueueRequirements()
    priority: int = Field(default=0, ge=0, le=100)
    hours: str | None = None  # a schedule name: outside it the call takes fallback.closed without queueing
    max_wait: float | None = Field(default=None, gt=0, le=7200)
    announce: bool = True
    hold_music: str | None = None
    keys: dict[DtmfKey, str] = {}  # keys the caller may press while waiting, e.g. "1": callback
    fallback: QueueFallback
    after_call: str | None = None  # e.g. a survey once the agent hangs up


class TransferNode(NodeBase):
    """Send the call to a number or endpoint (nurse line, answering service). Never an emergency number."""

    type: Literal["transfer"]
    to: str
    label: str | None = None
    human: bool = True  # a person answers there: counts as a human path for the safety lints
    timeout: float = Field(default=30, gt=0, le=300)
    on_failure: str | None = None


class RecordNode(NodeBase):
    """Record the caller (voicemail, a refill request) with a maximum length and a retention class."""

    type: Literal["record", "voicemail"]
    prompt: Prompt = []
    max_length: float = Field(default=120, gt=0, le=600)
    retention: str = Field(default="standard", pattern=r"^[a-z0-9][a-z0-9_-]*$")
    mailbox: str | None = None
    beep: bool = True
    finish_key: str = "#"
    next: str


class CallbackNode(NodeBase):
    """Book a callback: the number to call back and the queue, keeping the caller's place in line."""

    type: Literal["callback"]
    queue: str
    number: str = "caller"  # "caller" (caller id) or the name of a variable holding digits
    prompt: Prompt = []
    no_number: str | None = None
    next: str


class SmsNode(NodeBase):
    """Send a text message (e.g. a reschedule link) to the caller or a number held in a variable."""

    type: Literal["sms"]
    to: str = "caller"
    text: Annotated[LangText, BeforeValidator(_lang_text)]
    next: str


class SurveyNode(NodeBase):
    """Ask for a rating from 1 to 5 (typically after the agent hangs up)."""

    type: Literal["survey"]
    prompt: Prompt
    variable: str = Field(default="survey_rating", pattern=IDENT.pattern)
    timeout: float = Field(default=6, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=3)
    next: str


class LookupNode(NodeBase):
    """Call a hook the deployment registers (scheduling, EHR) with a timeout; results land in variables."""

    type: Literal["lookup"]
    hook: str
    args: dict[str, str] = {}
    into: dict[str, str] = {}  # variable -> field of the hook's result
    timeout: float = Field(default=3, gt=0, le=15)
    sensitive: bool = True  # results are PHI unless told otherwise
    next: str
    fallback: str


Node = Annotated[
    Union[
        SayNode, PlayNode, MenuNode, InputNode, BranchNode, SetNode, GotoNode, HangupNode,
        QueueNode, TransferNode, RecordNode, CallbackNode, SmsNode, SurveyNode, LookupNode,
    ],
    Field(discriminator="type"),
]
NODE_MODELS: dict[str, type[BaseModel]] = {
    "say": SayNode, "play": PlayNode, "menu": MenuNode, "input": InputNode, "branch": BranchNode, "set": SetNode,
    "goto": GotoNode, "hangup": HangupNode, "queue": QueueNode, "transfer": TransferNode, "record": RecordNode,
    "voicemail": RecordNode, "callback": CallbackNode, "sms": SmsNode, "survey": SurveyNode, "lookup": LookupNode,
}
NODE_TYPES = ("say", "play", "menu", "input", "branch", "set", "goto", "hangup", "queue", "transfer",
              "record", "voicemail", "callback", "sms", "survey", "lookup")


# --------------------------------------------------------------------- tree


class HumanSpec(Model):
    """The person reachable from every menu with one key (0 by default), and from digit entry with ``*``."""

    target: str
    key: str = "0"
    input_key: str = "*"
    enabled: bool = True

    @field_validator("key", "input_key")
    @classmethod
    def _k(cls, v: str) -> str:
        return _check_key(v)


class LintSettings(Model):
    max_seconds_to_human: float = Field(default=20, gt=0, le=300)
    speech_rate_wpm: float = Field(default=150, ge=60, le=400)


class TreeSpec(Model):
    """A whole call tree as written in YAML."""

    name: str
    version: int | str = 1
    description: str | None = None
    medical: bool = True
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    default_language: str | None = None
    voices: dict[str, str] = {}
    timezone: str
    start: str
    human: HumanSpec
    emergency_notice: str | None = None
    recordings: str = "../recordings"
    schedules: dict[str, ScheduleSpec] = {}
    lints: LintSettings = LintSettings()
    waivers: list[Waiver] = []
    nodes: dict[str, Node] = Field(min_length=1)

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        for lang in v:
            if not re.fullmatch(r"[a-z]{2,3}(-[A-Z]{2})?", str(lang)):
                raise ValueError(f"{lang!r} is not a language code; use codes like en, es, fr or en-US (quote them)")
        if len(set(v)) != len(v):
            raise ValueError("a language is listed twice")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        load_zone(v)  # raises with a did-you-mean
        return v

    @property
    def language(self) -> str:
        """The language a call starts in."""
        return self.default_language or self.languages[0]
