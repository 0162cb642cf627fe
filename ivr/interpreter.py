"""The call-tree interpreter: a pure state machine.

``Interpreter(tree).step(state, event) -> (state, commands)``. It does no I/O
and reads no clock: time arrives inside events. The same code therefore runs
behind Asterisk, Twilio, the simulated-call CLI and the day simulator, and a
test can drive a whole call with a list of events.

States are never mutated: ``step`` returns a new state and leaves the old one
as it was, so adapters can keep the previous state for diagnostics and tests
can compare before and after.

Every node entered and every key, timeout and decision is appended to
``state.trace`` with its time. Sensitive digits, hook results and the caller's
number are masked in the trace: traces feed reports and logs, which must never
hold PHI.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from ivr import commands as C
from ivr import events as E
from ivr.conditions import evaluate
from ivr.errors import InterpreterError
from ivr.schema import (
    DTMF_KEYS, HUMAN,
    BranchNode, CallbackNode, GotoNode, HangupNode, InputNode, LookupNode, MenuNode, PlayNode,
    PlayPart, QueueNode, RecordNode, SayNode, SayPart, SetNode, SmsNode, SurveyNode, TransferNode,
)
from ivr.tree import CallTree
from ivr.digits import is_emergency_number, validate_digits

ACHIEVED = frozenset({"agent", "callback", "voicemail", "record", "transfer"})  # outcomes a goodbye does not erase
MAX_INSTANT_HOPS = 200
SWALLOW_SECONDS = 2.0  # a terminator this soon after an entry complete by length is a habit, not a new key  # nodes entered without waiting in one step; the validator rejects loops long before this
REDACTED = "[redacted]"
MASK = "•"  # a key pressed at a sensitive input, in traces and transcripts
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TraceEntry(NamedTuple):
    """One thing that happened, at a time, at a node. ``detail`` never holds PHI."""

    at: datetime
    node: str
    kind: str  # enter, prompt, key, timeout, invalid, branch, set, queue, agent, transfer, record, hook, sms, callback, end
    detail: dict[str, Any]


class Outcome(NamedTuple):
    """Where the call left the IVR: ``kind`` is queue, agent, transfer, voicemail, record, hangup, abandoned, error."""

    kind: str
    node: str
    at: datetime
    detail: dict[str, Any] = {}


class QueueTicket(NamedTuple):
    queue: str
    since: datetime
    skills: tuple[tuple[str, int], ...]
    language: str | None
    priority: int


class CallState(NamedTuple):
    """Everything the interpreter knows about one call. Immutable: ``step`` returns a new one.

    A NamedTuple rather than a frozen dataclass: it is rebuilt on every event,
    and tuple construction is several times cheaper (see benchmarks/).
    """

    call_id: str
    started_at: datetime
    caller: str | None
    language: str
    node: str = ""
    phase: str = "new"  # prompt, collect, queue, agent, transfer, record, lookup, ending, leaving, ended
    vars: dict[str, Any] = {}  # never mutated in place: every change makes a new dict
    sensitive: frozenset[str] = frozenset()
    digits: str = ""  # keys buffered by barge-in, or collected so far by an input node
    swallow: str = ""  # a terminator typed right after an entry that was complete by length is not a new key
    last_key_at: datetime | None = None  # when the last key arrived: a timeout that raced it is stale
    attempts: int = 0  # failed attempts at the current menu/input
    prompt_id: int = 0
    request_id: int = 0
    ticket: QueueTicket | None = None
    trace: tuple[TraceEntry, ...] = ()
    outcome: Outcome | None = None
    now: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.phase == "ended"


# Index of each CallState field, for _Step.v (checked against CallState._fields below).
_F_call_id = 0
_F_started_at = 1
_F_caller = 2
_F_language = 3
_F_node = 4
_F_phase = 5
_F_vars = 6
_F_sensitive = 7
_F_digits = 8
_F_swallow = 9
_F_last_key_at = 10
_F_attempts = 11
_F_prompt_id = 12
_F_request_id = 13
_F_ticket = 14
_F_trace = 15
_F_outcome = 16
_F_now = 17
assert all(globals()["_F_" + name] == i for i, name in enumerate(CallState._fields)), "update the _F_ constants"
_tuple_new = tuple.__new__
# Every call starts with only the caller's number marked sensitive: one shared (immutable) set, not one per call.
_CALLER_SENSITIVE = frozenset({"caller"})
# Built by position below (`_tuple_new` checks no length): their field lists are pinned here.
assert QueueTicket._fields == ("queue", "since", "skills", "language", "priority")
assert Outcome._fields == ("kind", "node", "at", "detail") and TraceEntry._fields == ("at", "node", "kind", "detail")
# `Interpreter.start` builds a CallState by position: it lists these fields, in this order.
assert CallState._fields == ("call_id", "started_at", "caller", "language", "node", "phase", "vars", "sensitive",
                             "digits", "swallow", "last_key_at", "attempts", "prompt_id", "request_id", "ticket",
                             "trace", "outcome", "now"), "update Interpreter.start"


def mask_number(number: str | None) -> str:
    """``+15551234567`` -> ``***4567``: enough to tell test callers apart, not enough to identify a patient."""
    if not number:
        return "withheld"
    return "***" + number[-4:] if len(number) > 4 else "***"


class _Step:
    """Scratch for one step: a list copy of the state, edited in place, frozen into a new CallState at the end.

    Fields are addressed by index constants (``st.v[_F_phase]``): on this project's machines a method call
    per field read cost more than the rest of a typical step. ``s`` is the state the step started from.
    """

    __slots__ = ("s", "v", "cmds", "trace", "at")

    def __init__(self, state: CallState, at: datetime) -> None:
        v = list(state)
        v[_F_now] = at
        self.s = state
        self.v = v
        self.cmds: list[Any] = []
        self.trace: list[TraceEntry] = []
        self.at = at

    def log(self, node: str, kind: str, /, **detail: Any) -> None:
        self.trace.append(_tuple_new(TraceEntry, (self.at, node, kind, detail)))  # skips NamedTuple's Python __new__

    def finish(self) -> tuple[CallState, list[Any]]:
        if self.trace:
            self.v[_F_trace] = self.s.trace + tuple(self.trace)
        return _tuple_new(CallState, self.v), self.cmds


class _UntracedStep(_Step):
    """A step that keeps no trace: for runs nobody reads traces of (the day simulator's tens of thousands
    of calls). Decisions, commands and outcomes are exactly those of a traced step.

    ``log`` does nothing here, but building its keyword arguments still costs a dict and a call, so the
    hottest call sites skip it outright with ``if self._tracing:`` (only where computing the detail
    cannot raise, so an untraced step fails exactly where a traced one would).
    """

    __slots__ = ()

    def __init__(self, state: CallState, at: datetime) -> None:  # as _Step's, without the trace list nobody fills
        v = list(state)
        v[_F_now] = at
        self.s = state
        self.v = v
        self.cmds = []
        self.at = at

    def log(self, node: str, kind: str, /, **detail: Any) -> None:
        pass

    def finish(self) -> tuple[CallState, list[Any]]:
        return _tuple_new(CallState, self.v), self.cmds


# Node classes that wait for keys with a Collect (node classes are final: dispatch uses ``type(node) in``).
_COLLECTING = frozenset({MenuNode, InputNode, SurveyNode})
# Node classes whose prompt moves on to ``node.next`` when it ends.
_PLAYS_THEN_NEXT = frozenset({SayNode, PlayNode, CallbackNode})


class Interpreter:
    """Runs calls through one loaded :class:`CallTree`."""

    def __init__(self, tree: CallTree, *, trace: bool = True) -> None:
        """``trace=False`` leaves ``CallState.trace`` empty (cheaper); everything else is the same."""
        self.tree = tree
        self._tracing = trace
        self._step_class = _Step if trace else _UntracedStep
        self.spec = tree.spec
        self.nodes = tree.spec.nodes
        # Read on most steps; the spec is a frozen model held for the interpreter's life, so these cannot change.
        self._human = self.spec.human
        self._emergency_notice = self.spec.emergency_notice
        self._languages = self.spec.languages
        self._default_language = self.spec.language  # a property (computed on every read)
        self._start = self.spec.start
        self._parts: dict[str, list[Any]] = {}  # say/play nodes as prompt parts, built once
        self._item_cache: dict[tuple[int, str], Any] = {}  # (id(part), language) -> prompt item without variables
        self._prompt_cache: dict[tuple[int, str], tuple[Any, ...]] = {}  # (id(tree's parts list), language) -> items
        self._collect: dict[str, C.Collect] = {}  # node id -> what to listen for (the same on every visit)
        self._queue_consts: dict[str, tuple[Any, ...]] = {}  # queue node id -> its settings (see `_queue_start`)
        self._templates: dict[str, list[str]] = {}  # template -> _TEMPLATE.split(template): text, name, text, ...
        self._enter_by_type: dict[type, Any] = {
            SayNode: self._enter_speech, PlayNode: self._enter_speech, MenuNode: self._menu_start,
            InputNode: self._input_start, BranchNode: self._enter_branch, SetNode: self._enter_set,
            GotoNode: lambda st, nid, node: node.target, HangupNode: self._enter_hangup,
            QueueNode: self._queue_start, TransferNode: self._enter_transfer, RecordNode: self._enter_record,
            CallbackNode: self._callback, SmsNode: self._enter_sms, SurveyNode: self._enter_survey,
            LookupNode: self._enter_lookup,
        }
        # One lookup per event instead of a chain of isinstance() checks (events are final classes). Every
        # handler takes (step, event) so the lookup's result is called directly, without a wrapping lambda.
        self._handlers: dict[type, Any] = {
            E.Digit: self._on_digit,
            E.PromptFinished: self._on_prompt_finished,
            E.InputTimeout: self._on_input_timeout,
            E.Hangup: self._caller_hung_up,
            E.QueueResult: self._on_queue_result,
            E.AgentConnected: self._on_agent,
            E.AgentDisconnected: self._on_agent_gone,
            E.TransferResult: self._on_transfer_result,
            E.RecordingFinished: self._on_recording,
            E.HookResult: self._on_hook,
        }

    # ------------------------------------------------------------------ public

    def start(self, event: E.CallStarted) -> tuple[CallState, list[Any]]:
        """Begin a call: answer, then run until the first thing that waits for the caller."""
        at, caller = event.at, event.caller
        lang = event.language if event.language in self._languages else self._default_language
        # Built by position (every field, in CallState's order), without the keyword-sorting Python __new__.
        state = _tuple_new(CallState, (
            event.call_id, at, caller, lang, "", "new",
            {"caller": caller or "", "called": event.called or "", "language": lang},
            _CALLER_SENSITIVE, "", "", None, 0, 0, 0, None, (), None, at,
        ))
        st = self._step_class(state, at)
        if self._tracing or (caller is not None and type(caller) is not str):
            # Untraced, the entry is skipped; masking a str or None cannot fail, anything else still goes through
            # mask_number so an untraced start fails exactly where a traced one would.
            st.log("", "start", caller=mask_number(caller), language=lang, tree=self.tree.label)
        st.cmds.append(C.Answer())
        self._goto(st, self._start)
        return st.finish()

    def step(self, state: CallState, event: Any) -> tuple[CallState, list[Any]]:
        """Apply one event; return the new state and the commands to carry out, in order."""
        if state.phase == "ended":
            return state, []
        handler = self._handlers.get(type(event))
        if handler is None:
            if isinstance(event, E.CallStarted):
                raise InterpreterError("CallStarted goes to Interpreter.start(), not step()")
            raise InterpreterError(f"unknown event {type(event).__name__}")
        st = self._step_class(state, event.at)
        handler(st, event)
        return st.finish()

    # ------------------------------------------------------------------ moving between nodes

    def _goto(self, st: _Step, target: str) -> None:
        """Enter ``target`` and keep going through nodes that need nothing from the caller.

        Each node is started by its class's entry method, found with one dictionary lookup (node classes
        are final): entering nodes is the interpreter's most frequent work, and a chain of isinstance
        checks cost more than the node itself. An entry method returns the next node for nodes that
        finish at once, else None (the call now waits).
        """
        nodes = self.nodes
        enter_by_type = self._enter_by_type
        v = st.v
        for _ in range(MAX_INSTANT_HOPS):
            if target == HUMAN:
                target = self._human.target
            node = nodes[target]
            v[_F_node] = target
            v[_F_attempts] = 0
            if self._tracing:
                st.log(target, "enter", type=node.type)
            enter = enter_by_type.get(type(node))
            if enter is None:
                raise InterpreterError(f"node {target!r} has unsupported type {node.type!r}")  # pragma: no cover
            nxt = enter(st, target, node)
            if nxt is None:
                return
            target = nxt
        # Defensive: the validator rejects loops without input, so reaching here is a bug in the tree checks.
        st.log(target, "error", reason="too many nodes without caller input")
        self._end(st, "error", target, reason="loop")

    def _enter_speech(self, st: _Step, nid: str, node: SayNode | PlayNode) -> str | None:
        parts = self._parts.get(nid)
        if parts is None:
            parts = self._parts[nid] = (
                [SayPart(text=node.text)] if isinstance(node, SayNode) else [PlayPart(audio=node.audio, duration=node.duration)]
            )
        if nid == self._emergency_notice:
            # The emergency notice is never skipped or interrupted, whatever the node says. Keys typed
            # before it stay buffered and take effect at the next menu, after the notice has played.
            self._play(st, nid, parts, barge_in=False, stable=True)
            return None
        barge_in = node.barge_in
        if barge_in and st.v[_F_digits]:
            st.log(nid, "skipped", reason="barge-in")
            return node.next
        self._play(st, nid, parts, barge_in=barge_in, stable=True)
        return None

    def _enter_branch(self, st: _Step, nid: str, node: BranchNode) -> str | None:
        v = st.v
        tree, vars_, lang, caller, at = self.tree, v[_F_vars], v[_F_language], st.s.caller, st.at
        for i, case in enumerate(node.cases):
            if evaluate(case.when, tree, vars_, lang, caller, at):
                if self._tracing:
                    st.log(nid, "branch", case=i, next=case.next)
                return case.next
        if self._tracing:
            st.log(nid, "branch", case="default", next=node.default)
        return node.default

    def _enter_set(self, st: _Step, nid: str, node: SetNode) -> str | None:
        self._set_vars(st, nid, node.vars)
        return node.next

    def _enter_hangup(self, st: _Step, nid: str, node: HangupNode) -> str | None:
        if node.prompt:
            self._play(st, nid, node.prompt, barge_in=False)
            st.v[_F_phase] = "ending"
            return None
        self._hangup_node(st, nid, node.outcome)
        return None

    def _enter_transfer(self, st: _Step, nid: str, node: TransferNode) -> str | None:
        st.log(nid, "transfer", to=node.label or node.to)
        st.cmds.append(C.Transfer(to=node.to, label=node.label, timeout=node.timeout))
        st.v[_F_phase] = "transfer"
        return None

    def _enter_record(self, st: _Step, nid: str, node: RecordNode) -> str | None:
        if node.prompt:
            self._play(st, nid, node.prompt, barge_in=False)
            return None
        self._record_start(st, nid, node)
        return None

    def _enter_sms(self, st: _Step, nid: str, node: SmsNode) -> str | None:
        to = st.s.caller if node.to == "caller" else st.v[_F_vars].get(node.to)
        if to:
            template = self.tree.pick(node.text, st.v[_F_language])
            text = self._render(template, st.v[_F_vars])
            shown = self._masked(template, st.v[_F_vars], st.v[_F_sensitive])
            st.cmds.append(C.SendSms(to=str(to), text=text, language=st.v[_F_language], shown=shown))
            st.log(nid, "sms", to=mask_number(str(to)), chars=len(text))
        else:
            st.log(nid, "sms", skipped="no number")
        return node.next

    def _enter_survey(self, st: _Step, nid: str, node: SurveyNode) -> str | None:
        self._play(st, nid, node.prompt, barge_in=True, collect=self._collect_for(nid, node), stable=True)
        return None

    def _enter_lookup(self, st: _Step, nid: str, node: LookupNode) -> str | None:
        rid = st.v[_F_request_id] + 1
        vars_ = st.v[_F_vars]
        args = {k: self._render(v, vars_) for k, v in node.args.items()}
        st.v[_F_request_id] = rid
        st.v[_F_phase] = "lookup"
        st.cmds.append(C.CallHook(request_id=rid, hook=node.hook, args=args, timeout=node.timeout))
        if self._tracing:
            st.log(nid, "hook", hook=node.hook, request_id=rid)
        return None

    # ------------------------------------------------------------------ prompts

    def _play(self, st: _Step, nid: str, parts: Any, *, barge_in: bool, collect: C.Collect | None = None,
              stable: bool = False) -> None:
        """Play ``parts``. ``stable``: the parts list belongs to the tree, so its rendered items may be cached."""
        v = st.v
        if stable:
            items = self._prompt_cache.get((id(parts), v[_F_language]))
            if items is None:
                items = self._stable_items(st, parts)
        else:
            items = tuple(self._items(st, parts))
        pid = v[_F_prompt_id] + 1
        v[_F_prompt_id] = pid
        v[_F_phase] = "prompt"
        st.cmds.append(C.PlayPrompt(pid, items, barge_in, collect))

    def _stable_items(self, st: _Step, parts: Any) -> tuple[C.PromptItem, ...]:
        """Render the tree's own ``parts``; remember the result when no item depends on the call's variables."""
        lang = st.v[_F_language]
        items = tuple(self._items(st, parts))
        if all(self._item_cache.get((id(p), lang)) is i for p, i in zip(parts, items, strict=True)):
            self._prompt_cache[(id(parts), lang)] = items  # every item was cacheable: no variables anywhere in it
        return items

    def _items(self, st: _Step, parts: Any) -> list[C.PromptItem]:
        lang = st.v[_F_language]
        vars_ = st.v[_F_vars]
        sens = st.v[_F_sensitive]
        cache = self._item_cache
        out: list[C.PromptItem] = []
        for p in parts:
            # Parts belong to the tree and live as long as it does, so id() is a stable key. Items without
            # variables are the same on every call: build them once per language.
            key = (id(p), lang)
            item = cache.get(key)
            if item is not None:
                out.append(item)
                continue
            if isinstance(p, SayPart):
                template = self.tree.pick(p.text, lang)
                item = C.SayItem(self._render(template, vars_), lang, self.spec.voices.get(lang),
                                 self._masked(template, vars_, sens))
                if "{" not in template:
                    cache[key] = item
            elif isinstance(p, PlayPart):
                uri = self.tree.audio_uri(p.audio, lang)
                item = cache[key] = C.PlayItem(uri, lang, p.duration or self.tree.audio_duration(uri))
            else:
                item = cache[key] = C.PauseItem(p.seconds)
            out.append(item)
        return out

    def _masked(self, template: str, vars_: dict[str, Any], sensitive: frozenset[str]) -> str | None:
        """The text with sensitive variables replaced, or None when the template uses none of them."""
        if "{" not in template:
            return None
        if not any(n in sensitive for n in _TEMPLATE.findall(template)):
            return None
        return _TEMPLATE.sub(lambda m: REDACTED if m.group(1) in sensitive else str(vars_.get(m.group(1), "")), template)

    def _text(self, st: _Step, text: dict[str, str]) -> str:
        return self._render(self.tree.pick(text, st.v[_F_language]), st.v[_F_vars])

    def _render(self, template: str, vars_: dict[str, Any]) -> str:
        """``template`` with each ``{name}`` replaced by ``str(vars_[name])`` ("" when unset).

        The same result as ``_TEMPLATE.sub`` with a function, without its per-match call: the template is
        split once (templates come from the tree, so there are few) and reassembled on each use.
        """
        if "{" not in template:
            return template
        pieces = self._templates.get(template)
        if pieces is None:
            pieces = self._templates[template] = _TEMPLATE.split(template)  # text, name, text, name, ..., text
        if len(pieces) == 3 and not pieces[0] and not pieces[2]:
            return str(vars_.get(pieces[1], ""))  # just one variable (a queue's "{language}", on every call)
        out = pieces[0]
        for i in range(1, len(pieces), 2):
            out += str(vars_.get(pieces[i], "")) + pieces[i + 1]
        return out

    # ------------------------------------------------------------------ menus, input, surveys

    def _collect_for(self, nid: str, node: Any) -> C.Collect:
        col = self._collect.get(nid)
        if col is None:
            if isinstance(node, InputNode):
                col = C.Collect(node.max_length, node.timeout, node.terminator)
            else:  # menu or survey: one key
                col = C.Collect(1, node.timeout or 5)
            self._collect[nid] = col
        return col

    def _menu_start(self, st: _Step, nid: str, node: MenuNode) -> str | None:
        buffered = st.v[_F_digits]
        if buffered:
            st.v[_F_digits] = buffered[1:]
            st.log(nid, "key", key=buffered[0], barge_in=True)
            return self._menu_key(st, nid, node, buffered[0])
        self._play(st, nid, node.prompt, barge_in=True, collect=self._collect_for(nid, node), stable=True)
        return None

    def _menu_key(self, st: _Step, nid: str, node: MenuNode, key: str) -> str | None:
        opt = node.options.get(key)
        if opt is not None:
            if opt.set:
                self._set_vars(st, nid, opt.set)
            return opt.next
        human = self._human
        if key == human.key and human.enabled and node.human:
            st.log(nid, "human", key=key)
            return HUMAN
        return self._failed(st, nid, node, "invalid")

    def _input_start(self, st: _Step, nid: str, node: InputNode) -> str | None:
        buffered = st.v[_F_digits]
        st.v[_F_digits] = ""
        self._play(st, nid, node.prompt, barge_in=True, collect=self._collect_for(nid, node), stable=True)
        if buffered:  # keys typed ahead during an earlier prompt count as the start of the entry
            st.cmds.append(C.StopPrompt(st.v[_F_prompt_id]))
            st.v[_F_phase] = "collect"
            for d in buffered:
                st.log(nid, "key", key=MASK if node.is_sensitive else d, barge_in=True)
                nxt = self._input_key(st, nid, node, d)
                if nxt is not None or st.v[_F_node] != nid:
                    return nxt
        return None

    def _input_key(self, st: _Step, nid: str, node: InputNode, key: str) -> str | None:
        human = self._human
        v = st.v
        digits = v[_F_digits]
        terminator = node.terminator
        if key == human.input_key and human.enabled and node.human and key != terminator and not digits:
            st.log(nid, "human", key=key)
            return HUMAN
        if terminator is not None and key == terminator:
            return self._input_done(st, nid, node, digits)
        if not key.isdigit():  # * (or # without a terminator) part-way through: start the entry over
            v[_F_digits] = ""
            st.log(nid, "cleared", key=key)
            return None
        digits += key
        v[_F_digits] = digits
        if len(digits) >= node.max_length:
            nxt = self._input_done(st, nid, node, digits)
            if terminator:
                v[_F_swallow] = terminator
            return nxt
        return None

    def _input_done(self, st: _Step, nid: str, node: InputNode, digits: str) -> str | None:
        st.v[_F_digits] = ""
        if not digits:
            return self._failed(st, nid, node, "no_input")
        problem = None
        if len(digits) < node.min_length:
            problem = f"too short ({len(digits)} < {node.min_length})"
        elif node.validate_ is not None:
            problem = validate_digits(digits, node.validate_, st.at.astimezone(self.tree.tz).date())
        sensitive = node.is_sensitive
        shown = REDACTED if sensitive else digits
        if problem:
            st.log(nid, "rejected", entered=shown, length=len(digits), reason=problem)
            return self._failed(st, nid, node, "invalid")
        vars_ = dict(st.v[_F_vars])
        vars_[node.variable] = digits
        st.v[_F_vars] = vars_
        if sensitive:
            st.v[_F_sensitive] = st.v[_F_sensitive] | {node.variable}
        if self._tracing:
            st.log(nid, "input", variable=node.variable, value=shown, length=len(digits))
        return node.next

    def _failed(self, st: _Step, nid: str, node: Any, why: str) -> str | None:
        """No input or invalid input: retry with the handler's prompt, or leave by the handler's ``next``."""
        attempts = st.v[_F_attempts] + 1
        handler = getattr(node, why, None)
        st.log(nid, why, attempt=attempts)
        if attempts <= node.retries:
            st.v[_F_attempts] = attempts
            retry = handler.prompt if handler is not None else ()
            parts = list(node.prompt) if isinstance(node, SurveyNode) else list(retry) + list(node.prompt)
            self._play(st, nid, parts, barge_in=True, collect=self._collect_for(nid, node))
            return None
        if isinstance(node, SurveyNode):
            return node.next
        target = handler.next if handler is not None and handler.next else HUMAN
        if handler is not None and handler.prompt:
            # Say the handler's last words, then move on when the prompt ends.
            self._play(st, nid, handler.prompt, barge_in=False)
            st.v[_F_phase] = "leaving"
            st.v[_F_vars] = {**st.v[_F_vars], "_leave_to": target}
            return None
        return target

    # ------------------------------------------------------------------ caller events

    def _on_digit(self, st: _Step, ev: E.Digit) -> None:
        digit = ev.digit
        s = st.s
        nid = s.node
        if digit not in DTMF_KEYS:  # an adapter passed something that is not a phone key
            st.log(nid, "key-ignored", reason="not a phone key")
            return
        v = st.v
        v[_F_last_key_at] = st.at
        if s.swallow:
            v[_F_swallow] = ""
            if digit == s.swallow and s.now is not None and (st.at - s.now).total_seconds() <= SWALLOW_SECONDS:
                st.log(nid, "key-ignored", key=digit, reason="terminator after a complete entry")
                return
        phase = s.phase
        node = self.nodes.get(nid)
        kind = type(node)
        if phase == "prompt" or phase == "collect":
            if kind in _COLLECTING:
                if phase == "prompt":
                    st.cmds.append(C.StopPrompt(s.prompt_id))
                    v[_F_phase] = "collect"
                nxt: str | None
                if kind is MenuNode:
                    if self._tracing:
                        st.log(nid, "key", key=digit)
                    nxt = self._menu_key(st, nid, node, digit)
                elif kind is InputNode:
                    if self._tracing:
                        st.log(nid, "key", key=MASK if node.is_sensitive else digit)
                    nxt = self._input_key(st, nid, node, digit)
                else:
                    st.log(nid, "key", key=digit)
                    nxt = self._survey_key(st, nid, node, digit)
                if nxt is not None:
                    self._goto(st, nxt)
                return
            if (kind is SayNode or kind is PlayNode) and node.barge_in and nid != self._emergency_notice:
                st.cmds.append(C.StopPrompt(s.prompt_id))
                v[_F_digits] = s.digits + digit
                # The key's value is traced where it is used: it may be the first digit of a date of birth.
                st.log(nid, "type-ahead")
                self._goto(st, node.next)
                return
            st.log(nid, "key-ignored", key=MASK)  # unused, and possibly the start of a date of birth
            return
        if phase == "queue" and kind is QueueNode:
            target = node.keys.get(digit)
            if target is not None:
                st.log(nid, "key", key=digit)
                st.cmds.append(C.Dequeue(node.queue, reason=f"caller pressed {digit}"))
                self._goto(st, target)
            return
        # Keys in other phases (transfer ringing, recording) belong to the media layer.

    def _survey_key(self, st: _Step, nid: str, node: SurveyNode, key: str) -> str | None:
        if key in "12345":
            st.v[_F_vars] = {**st.v[_F_vars], node.variable: int(key)}
            st.log(nid, "survey", rating=int(key))
            return node.next
        return self._failed(st, nid, node, "invalid")

    def _on_prompt_finished(self, st: _Step, ev: E.PromptFinished) -> None:
        s = st.s
        if ev.prompt_id != s.prompt_id:  # a prompt already stopped or replaced
            return
        phase = s.phase
        if phase == "prompt":
            node = self.nodes.get(s.node)
            kind = type(node)
            if kind in _COLLECTING:
                st.v[_F_phase] = "collect"
            elif kind in _PLAYS_THEN_NEXT:
                self._goto(st, node.next)
            elif kind is RecordNode:
                self._record_start(st, s.node, node)
        elif phase == "leaving":
            vars_ = dict(s.vars)
            target = vars_.pop("_leave_to")
            st.v[_F_vars] = vars_
            self._goto(st, target)
        elif phase == "ending":
            node = self.nodes.get(s.node)
            self._hangup_node(st, s.node, node.outcome if isinstance(node, HangupNode) else "hangup")

    def _on_input_timeout(self, st: _Step, ev: E.InputTimeout) -> None:
        s = st.s
        if ev.prompt_id != s.prompt_id or s.phase not in ("prompt", "collect"):
            return
        col = self._collect.get(s.node)
        if s.last_key_at is not None and col is not None and (ev.at - s.last_key_at).total_seconds() < col.timeout - 0.05:
            # A key arrived after the adapter's timer started: the timeout lost the race; the timer restarts.
            st.log(s.node, "timeout-ignored", reason="a key arrived since")
            return
        self._on_timeout(st)

    def _on_timeout(self, st: _Step) -> None:
        s = st.s
        node = self.nodes[s.node]
        st.log(s.node, "timeout")
        nxt: str | None
        if isinstance(node, InputNode) and s.digits:
            nxt = self._input_done(st, s.node, node, s.digits)
        else:
            nxt = self._failed(st, s.node, node, "no_input")
        if nxt is not None:
            self._goto(st, nxt)

    # ------------------------------------------------------------------ variables

    def _set_vars(self, st: _Step, nid: str, values: dict[str, Any]) -> None:
        vars_ = dict(st.v[_F_vars])
        for k, v in values.items():
            vars_[k] = self._render(v, vars_) if isinstance(v, str) else v
        st.v[_F_vars] = vars_
        if "language" in values and vars_["language"] in self.spec.languages:
            st.v[_F_language] = vars_["language"]
        if self._tracing:
            st.log(nid, "set", names=sorted(values))

    # ------------------------------------------------------------------ queue, agent, transfer, record, callback, hook

    def _queue_start(self, st: _Step, nid: str, node: QueueNode) -> str | None:
        consts = self._queue_consts.get(nid)
        if consts is None:  # the same for every call (the node is frozen): sorted and read once, not on every visit
            consts = self._queue_consts[nid] = (
                tuple(sorted(node.requirements.skills.items())), tuple(node.keys), node.hours,
                node.requirements.language, node.queue, node.priority, node.max_wait, node.announce, node.hold_music)
        skills, keys, hours, lang, queue, priority, max_wait, announce, hold_music = consts
        if hours and not self.tree.is_open(hours, st.at):
            st.log(nid, "queue-closed", queue=queue, schedule=hours)
            return node.fallback.target("closed")
        v = st.v
        if lang is not None:
            lang = self._render(lang, v[_F_vars]) or None
        old = v[_F_ticket]
        since = old.since if old is not None and old.queue == queue else st.at
        v[_F_phase] = "queue"
        v[_F_ticket] = _tuple_new(QueueTicket, (queue, since, skills, lang, priority))
        st.cmds.append(C.Enqueue(queue, skills, lang, priority, max_wait, announce, hold_music, keys))
        if self._tracing:
            st.log(nid, "queue", queue=queue, skills=dict(skills), language=lang, priority=priority)
        # `_set_outcome` inlined (every call that reaches an agent passes here): no keyword-argument repacking.
        v[_F_outcome] = _tuple_new(Outcome, ("queue", nid, st.at,
                                             {"queue": queue, "skills": dict(skills), "language": lang,
                                              "priority": priority}))
        return None

    def _on_queue_result(self, st: _Step, ev: E.QueueResult) -> None:
        node = self.nodes.get(st.s.node)
        if st.s.phase != "queue" or not isinstance(node, QueueNode):
            return
        target = node.fallback.target(ev.outcome)
        st.log(st.s.node, "queue-failed", outcome=ev.outcome, next=target)
        st.v[_F_outcome] = None
        self._goto(st, target or HUMAN)

    def _on_agent(self, st: _Step, ev: E.AgentConnected) -> None:
        s = st.s
        if s.phase != "queue":
            return
        st.v[_F_phase] = "agent"
        if self._tracing:
            st.log(s.node, "agent", agent=ev.agent_id, why=ev.explanation)
        ticket = s.ticket
        waited = (ev.at - ticket.since).total_seconds() if ticket else 0.0
        # `_set_outcome` inlined (once per answered call): no keyword-argument repacking.
        st.v[_F_outcome] = _tuple_new(Outcome, ("agent", s.node, st.at, {"agent": ev.agent_id,
                                                                          "queue": ticket.queue if ticket else "",
                                                                          "waited": waited}))

    def _on_agent_gone(self, st: _Step, ev: E.AgentDisconnected) -> None:
        s = st.s
        if s.phase != "agent":
            return
        node = self.nodes.get(s.node)
        if self._tracing:
            st.log(s.node, "agent-ended")
        if isinstance(node, QueueNode) and node.after_call:
            prev = s.outcome
            self._goto(st, node.after_call)
            if st.v[_F_outcome] is None or st.v[_F_outcome] is prev:
                st.v[_F_outcome] = prev
        else:
            st.cmds.append(C.HangupCall("agent-ended"))
            self._end(st, "agent", s.node, keep=True)

    def _on_transfer_result(self, st: _Step, ev: E.TransferResult) -> None:
        node = self.nodes.get(st.s.node)
        if st.s.phase != "transfer" or not isinstance(node, TransferNode):
            return
        if ev.ok:
            st.log(st.s.node, "transferred", to=node.label or node.to)
            self._end(st, "transfer", st.s.node, to=node.label or node.to, human=node.human)
            return
        st.log(st.s.node, "transfer-failed", reason=ev.reason)
        if node.on_failure:
            self._goto(st, node.on_failure)
        else:
            st.cmds.append(C.HangupCall("transfer-failed"))
            self._end(st, "error", st.s.node, reason="transfer failed")

    def _record_start(self, st: _Step, nid: str, node: RecordNode) -> None:
        st.v[_F_phase] = "record"
        st.cmds.append(C.Record(max_length=node.max_length, retention=node.retention, mailbox=node.mailbox,
                                beep=node.beep, finish_key=node.finish_key, kind=node.type))
        if self._tracing:
            st.log(nid, "record", kind=node.type, max_length=node.max_length, retention=node.retention)

    def _on_recording(self, st: _Step, ev: E.RecordingFinished) -> None:
        node = self.nodes.get(st.s.node)
        if st.s.phase != "record" or not isinstance(node, RecordNode):
            return
        st.log(st.s.node, "recorded", seconds=round(ev.duration, 1))
        self._set_outcome(st, node.type, st.s.node, seconds=round(ev.duration, 1), retention=node.retention,
                          mailbox=node.mailbox)
        self._goto(st, node.next)

    def _callback(self, st: _Step, nid: str, node: CallbackNode) -> str | None:
        number = st.s.caller if node.number == "caller" else st.v[_F_vars].get(node.number)
        if not number or is_emergency_number(str(number)) or sum(ch.isdigit() for ch in str(number)) < 7:
            st.log(nid, "callback", skipped="no usable number")
            return node.no_number or HUMAN
        ticket = st.v[_F_ticket]
        same = ticket is not None and ticket.queue == node.queue
        since = ticket.since if same else st.at
        st.cmds.append(C.RequestCallback(queue=node.queue, number=str(number), keep_place_since=since,
                                         skills=ticket.skills if same else (), language=ticket.language if same else st.v[_F_language],
                                         priority=ticket.priority if same else 0))
        st.log(nid, "callback", queue=node.queue, number=mask_number(str(number)), kept_place=same)
        self._set_outcome(st, "callback", nid, queue=node.queue, since=since.isoformat())
        if node.prompt:
            self._play(st, nid, node.prompt, barge_in=False)
            return None
        return node.next

    def _on_hook(self, st: _Step, ev: E.HookResult) -> None:
        node = self.nodes.get(st.s.node)
        if st.s.phase != "lookup" or not isinstance(node, LookupNode) or ev.request_id != st.s.request_id:
            return
        if not ev.ok:
            # The error text comes from deployment code and may quote patient data: trace only its kind.
            st.log(st.s.node, "hook-failed", hook=node.hook, error="timeout" if ev.error == "timeout" else "failed")
            self._goto(st, node.fallback)
            return
        missing = [f for f in node.into.values() if f not in ev.values]
        if missing:
            st.log(st.s.node, "hook-failed", hook=node.hook, error=f"result lacks {', '.join(missing)}")
            self._goto(st, node.fallback)
            return
        vars_ = dict(st.v[_F_vars])
        for var, fld in node.into.items():
            vars_[var] = ev.values[fld]
        st.v[_F_vars] = vars_
        if node.sensitive and node.into:
            st.v[_F_sensitive] = st.v[_F_sensitive] | set(node.into)
        if self._tracing:
            st.log(st.s.node, "hook-ok", hook=node.hook, names=sorted(node.into))
        self._goto(st, node.next)

    # ------------------------------------------------------------------ ending

    def _caller_hung_up(self, st: _Step, ev: E.Hangup) -> None:
        s = st.s
        if s.phase == "queue":
            st.log(s.node, "abandoned")
            ticket = s.ticket
            waited = (st.at - ticket.since).total_seconds() if ticket else 0.0
            self._end(st, "abandoned", s.node, queue=ticket.queue if ticket else "", waited=waited)
        elif s.phase == "agent":
            st.log(s.node, "caller-hung-up")
            self._end(st, "agent", s.node, keep=True)
        elif s.phase == "record":
            node = self.nodes[s.node]
            st.log(s.node, "caller-hung-up")
            self._end(st, node.type, s.node, retention=getattr(node, "retention", None))
        elif s.phase == "ending":  # the goodbye was playing: the call ended where the tree meant it to
            st.log(s.node, "caller-hung-up")
            node = self.nodes[s.node]
            self._hangup_node(st, s.node, node.outcome if isinstance(node, HangupNode) else "hangup")
            st.cmds.clear()  # nobody left to hang up on
        elif s.outcome is not None and s.outcome.kind in ACHIEVED:
            st.log(s.node, "caller-hung-up")
            self._end(st, s.outcome.kind, s.node, keep=True)
        else:
            st.log(s.node, "caller-hung-up")
            self._end(st, "hangup", s.node, outcome="caller hung up in IVR")

    def _set_outcome(self, st: _Step, kind: str, nid: str, **detail: Any) -> None:
        st.v[_F_outcome] = _tuple_new(Outcome, (kind, nid, st.at, detail))  # skips NamedTuple's Python __new__

    def _end(self, st: _Step, kind: str, nid: str, keep: bool = False, **detail: Any) -> None:
        if not (keep and st.v[_F_outcome] is not None):
            self._set_outcome(st, kind, nid, **detail)
        st.v[_F_phase] = "ended"
        if self._tracing:
            st.log(nid, "end", outcome=st.v[_F_outcome].kind)

    def _hangup_node(self, st: _Step, nid: str, outcome: str) -> None:
        """A goodbye after the call achieved something (agent, callback, message) keeps that outcome."""
        prev = st.v[_F_outcome]
        if prev is not None and prev.kind in ACHIEVED:
            st.v[_F_outcome] = Outcome(prev.kind, prev.node, prev.at, {**prev.detail, "outcome": outcome})
            self._end(st, prev.kind, nid, keep=True)
        else:
            self._end(st, "hangup", nid, outcome=outcome)
        st.cmds.append(C.HangupCall(outcome))
