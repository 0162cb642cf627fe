"""Simulated calls: the interpreter driven by a key script and a virtual clock.

The simulator is an adapter like the Asterisk and Twilio ones: it carries out
commands (prompts take as long as their estimated speech, timers run from the
end of a prompt and restart on each key, barge-in stops a prompt) and turns the
caller's script into events. Nothing sleeps: time is a number that jumps to the
next event.

Key script tokens (space separated), each used at the next chance to press keys:

- ``2``, ``04121980#``: keys pressed after the prompt ends (0.4 s apart)
- ``!0``: keys pressed while the next interruptible prompt plays (barge-in)
- ``.``: press nothing; let the input time out
- ``h``: hang up
"""

from __future__ import annotations

import heapq
import re
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from ivr import commands as C
from ivr import events as E
from ivr.interpreter import MASK, CallState, Interpreter, mask_number
from ivr.timing import PromptDurations
from ivr.tree import CallTree

KEY_GAP = 0.4  # seconds between keys in one token
THINK = 0.8  # seconds a caller takes to start pressing after a prompt
BARGE_AFTER = 1.0  # seconds into a prompt when a barge-in key lands

HookFn = Callable[[dict[str, Any]], dict[str, Any]]
QUEUE_OUTCOMES = ("handoff", "answered", "closed", "no_agents", "full", "timeout")
_TOKEN = re.compile(r"^(!?[0-9*#]+|\.|[hH])$")


def parse_keys(script: str) -> list[str]:
    """Split a key script into tokens, refusing anything a phone keypad cannot send."""
    tokens = script.split()
    for tok in tokens:
        if not _TOKEN.match(tok):
            raise ValueError(f"key script token {tok!r} is not valid: use digits 0-9, * and # "
                             "(prefix ! to press during the prompt), '.' to let the input time out, or 'h' to hang up")
    return tokens


class HookTimeout(Exception):
    """Raise from a simulated hook to act out a hook that does not answer in time."""


@dataclass
class SimOptions:
    at: datetime
    caller: str | None = "+15555550123"
    called: str | None = None
    language: str | None = None
    keys: list[str] | None = None  # None: ask() is called whenever the caller may press keys
    queue_outcomes: dict[str, str] = field(default_factory=dict)  # queue -> handoff|answered|closed|no_agents|full|timeout
    queue_wait: float = 20.0  # seconds before an agent answers (answered) or a wait key is pressed
    talk_seconds: float = 180.0
    agent_id: str = "agent-sim"
    hooks: dict[str, HookFn | dict[str, Any]] = field(default_factory=dict)
    failing_transfers: set[str] = field(default_factory=set)  # node ids or numbers whose transfer fails
    record_seconds: float = 12.0
    max_seconds: float = 3600.0
    call_id: str = "sim-1"
    routing: Any = None  # a routing.simulated.SimRouting: queues go to the real router over simulated agents


@dataclass
class Line:
    """One transcript line: ``t`` seconds after answer."""

    t: float
    kind: str  # hear, press, timeout, note, end
    node: str
    text: str
    language: str = ""


@dataclass
class SimResult:
    state: CallState
    lines: list[Line]
    seconds: float

    @property
    def outcome(self) -> Any:
        return self.state.outcome


class _Clock:
    """Events ordered by virtual time; ties keep insertion order."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Any]] = []
        self.seq = itertools.count()

    def at(self, t: float, item: Any) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), item))

    def pop(self) -> tuple[float, Any]:
        t, _, item = heapq.heappop(self.heap)
        return t, item


class CallSimulator:
    """Runs one call through a tree; reusable for many calls (the benchmark and day simulator do)."""

    def __init__(self, tree: CallTree) -> None:
        self.tree = tree
        self.interp = Interpreter(tree)
        self._seconds = PromptDurations(tree.spec.lints.speech_rate_wpm)

    def run(
        self,
        opts: SimOptions,
        *,
        ask: Callable[[str], str] | None = None,
        on_line: Callable[[Line], None] | None = None,
        record_lines: bool = True,
    ) -> SimResult:
        tree = self.tree
        t0 = opts.at
        keys = list(opts.keys) if opts.keys is not None else None
        lines: list[Line] = []
        clock = _Clock()
        prompt_end: dict[int, float] = {}  # prompt id -> when it ends (if not stopped)
        timer: dict[int, float] = {}  # prompt id -> current collect deadline
        collect_of: dict[int, C.Collect] = {}
        barge_ok: dict[int, bool] = {}
        now = 0.0
        talking = record_lines or on_line is not None  # build transcript text only for someone who reads it

        def emit(kind: str, node: str, text: str, lang: str = "", at: float | None = None) -> None:
            if record_lines or on_line is not None:
                line = Line(round(now if at is None else at, 2), kind, node, text, lang)
                if record_lines:
                    lines.append(line)
                if on_line is not None:
                    on_line(line)

        def when(t: float) -> datetime:
            return t0 + timedelta(seconds=t)

        def next_token(context: str, allowed: str = "") -> str | None:
            nonlocal keys
            if keys is not None:
                return keys.pop(0) if keys else None
            if ask is None:
                return None
            return ask(context)

        def press(start: float, digits: str) -> float:
            t = start
            for i, d in enumerate(digits):
                # the first key carries the token, the last says the token is complete (for the transcript line)
                clock.at(t, ("digit", d, digits if i == 0 else None, i == len(digits) - 1))
                t += KEY_GAP
            return t - KEY_GAP

        def handle_token(tok: str | None, pid: int, start: float, end: float, col: C.Collect | None, node: str) -> None:
            if tok is None or tok == ".":
                return  # silence: the collect timer runs out
            if tok.lower() == "h":
                clock.at(start + min(BARGE_AFTER, max(end - start, 0)), ("hangup",))
                return
            if tok.startswith("!"):
                press(start + min(BARGE_AFTER, (end - start) / 2), tok[1:])  # lands inside the prompt it interrupts
                return
            press(end + THINK, tok)

        state, cmds = self.interp.start(E.CallStarted(at=t0, call_id=opts.call_id, caller=opts.caller,
                                                      called=opts.called, language=opts.language))
        if talking:
            emit("note", "", f"call from {mask_number(opts.caller)} at {t0.astimezone(tree.tz):%a %Y-%m-%d %H:%M %Z}, "
                             f"tree {tree.label}, language {state.language}")
        pending_barge: str | None = None
        press_token, press_keys, press_at, press_node = "", [], 0.0, ""  # the key token being pressed

        while True:
            stop_at_queue = False
            for cmd in cmds:
                node = state.node
                if isinstance(cmd, C.PlayPrompt):
                    dur = self._seconds(cmd.items)
                    for item in (cmd.items if talking else ()):
                        if isinstance(item, C.SayItem):
                            emit("hear", node, item.shown or item.text, item.language)
                        elif isinstance(item, C.PlayItem):
                            emit("hear", node, f"[audio {item.uri}]", item.language)
                        else:
                            emit("hear", node, f"[pause {item.seconds:g} s]")
                    prompt_end[cmd.prompt_id] = now + dur
                    barge_ok[cmd.prompt_id] = cmd.barge_in
                    clock.at(now + dur, ("prompt_done", cmd.prompt_id))
                    if cmd.collect is not None:
                        collect_of[cmd.prompt_id] = cmd.collect
                        timer[cmd.prompt_id] = now + dur + cmd.collect.timeout
                        clock.at(timer[cmd.prompt_id], ("timeout", cmd.prompt_id))
                        if pending_barge is None:
                            tok = next_token(self._context(state, cmd) if keys is None else "")
                        else:
                            tok, pending_barge = pending_barge, None
                        handle_token(tok, cmd.prompt_id, now, now + dur, cmd.collect, node)
                    elif cmd.barge_in and keys and keys[0].startswith("!"):
                        tok = keys.pop(0)
                        handle_token(tok, cmd.prompt_id, now, now + dur, None, node)
                elif isinstance(cmd, C.StopPrompt):
                    prompt_end.pop(cmd.prompt_id, None)
                elif isinstance(cmd, C.Enqueue):
                    stop_at_queue = not self._enqueue(cmd, state, opts, clock, now, emit, next_token,
                                                      lambda: keys[0] if keys else None)
                elif isinstance(cmd, C.Dequeue):
                    emit("note", node, f"left queue {cmd.queue} ({cmd.reason})")
                    if opts.routing is not None and state.call_id in opts.routing.router.calls:
                        opts.routing.router.abandon(state.call_id, when(now), why="dequeued")
                elif isinstance(cmd, C.Transfer):
                    ok = not ({node, cmd.to, cmd.label or ""} & opts.failing_transfers)
                    emit("note", node, f"transferring to {cmd.label or cmd.to} ({cmd.to})")
                    clock.at(now + (5.0 if ok else cmd.timeout), ("transfer", ok))
                elif isinstance(cmd, C.Record):
                    emit("note", node, f"recording {cmd.kind} (max {cmd.max_length:g} s, retention {cmd.retention})")
                    if keys and keys[0].lower() == "h":
                        keys.pop(0)
                        clock.at(now + min(opts.record_seconds, cmd.max_length) / 2, ("hangup",))
                    else:
                        clock.at(now + min(opts.record_seconds, cmd.max_length), ("recorded", min(opts.record_seconds, cmd.max_length)))
                elif isinstance(cmd, C.RequestCallback):
                    emit("note", node, f"callback requested from queue {cmd.queue} to {mask_number(cmd.number)}, "
                                       f"place kept since +{(cmd.keep_place_since - t0).total_seconds():.1f} s")
                    r = opts.routing.router if opts.routing is not None else None
                    if r is not None and cmd.queue in r.queues:
                        cb_id = f"{state.call_id}-callback"
                        r.enqueue(cb_id, cmd.queue, when(now), skills=cmd.skills, language=cmd.language,
                                  priority=cmd.priority, since=cmd.keep_place_since, callback_number=cmd.number)
                        if cb_id in r.calls:
                            held = r.calls[cb_id].offered_to
                            emit("note", node, f"callback waits in {cmd.queue} at position {r.position(cb_id)}"
                                 if held is None else f"callback offered to {held} at once")
                elif isinstance(cmd, C.SendSms):
                    emit("note", node, f"text message to {mask_number(cmd.to)}: {cmd.shown or cmd.text}", cmd.language)
                elif isinstance(cmd, C.CallHook):
                    self._hook(cmd, opts, clock, now, emit, node)
            cmds = []
            if state.phase == "ended":
                break
            if stop_at_queue and state.phase == "queue":
                break  # handed to routing: with no simulated router, the call leaves the IVR here
            if not clock.heap:
                emit("end", state.node, "nothing more happens (simulation stopped)")
                break
            now, item = clock.pop()
            if now > opts.max_seconds:
                emit("end", state.node, f"stopped after {opts.max_seconds:g} s")
                break
            kind = item[0]
            ev: Any
            if kind == "digit":
                if item[2] is not None:
                    press_token, press_keys, press_at, press_node = item[2], [], now, state.node
                ev = E.Digit(t0 + timedelta(seconds=now), item[1])
                col = collect_of.get(state.prompt_id)
                if col is not None:  # restart the inter-digit timer; the queued timeout re-arms itself lazily
                    timer[state.prompt_id] = max(now, prompt_end.get(state.prompt_id, now)) + col.timeout
            elif kind == "prompt_done":
                if item[1] not in prompt_end:
                    continue  # stopped by barge-in
                ev = E.PromptFinished(t0 + timedelta(seconds=now), item[1])
            elif kind == "timeout":
                pid = item[1]
                deadline = timer.get(pid)
                if pid != state.prompt_id or state.phase not in ("prompt", "collect") or deadline is None:
                    continue
                if deadline > now:  # a key moved the deadline: wait until then
                    clock.at(deadline, ("timeout", pid))
                    continue
                emit("timeout", state.node, "no key pressed")
                ev = E.InputTimeout(when(now), pid)
            elif kind == "hangup":
                emit("press", state.node, "(caller hangs up)")
                ev = E.Hangup(when(now))
                if opts.routing is not None and state.call_id in opts.routing.router.calls:
                    opts.routing.router.abandon(state.call_id, when(now))
            elif kind == "route_tick":
                if opts.routing is not None and state.call_id in opts.routing.router.calls:
                    self._routed(opts.routing.router.tick(when(now)), state.call_id, opts, clock, now, emit, state.node)
                continue
            elif kind == "route_answer":
                r = opts.routing.router
                res = r.reservations.get(state.call_id)
                if res is None or res.agent_id != item[1]:
                    continue  # the offer moved on (rang out, caller left)
                r.answered(state.call_id, when(now))
                emit("note", state.node, f"agent {item[1]} answers")
                ev = E.AgentConnected(when(now), item[1], item[2])
                clock.at(now + opts.talk_seconds, ("route_end", item[1]))
            elif kind == "route_end":
                opts.routing.router.call_ended(item[1], when(now))
                emit("note", state.node, f"agent {item[1]} hangs up")
                ev = E.AgentDisconnected(when(now))
            elif kind == "queue":
                ev = item[1](when(now))
                if isinstance(ev, E.AgentConnected):
                    emit("note", state.node, f"agent {ev.agent_id} answers ({ev.explanation})")
                elif isinstance(ev, E.AgentDisconnected):
                    emit("note", state.node, "agent hangs up")
                else:
                    emit("note", state.node, f"routing: {ev.outcome.replace('_', ' ')}")
            elif kind == "transfer":
                ev = E.TransferResult(when(now), item[1], "" if item[1] else "no answer")
                if not item[1]:
                    emit("note", state.node, "transfer failed: no answer")
            elif kind == "recorded":
                ev = E.RecordingFinished(when(now), item[1])
            elif kind == "hook":
                ev = item[1](when(now))
            else:  # pragma: no cover
                continue
            traced = len(state.trace)
            state, cmds = self.interp.step(state, ev)
            if kind == "digit" and talking:
                # What the caller pressed, as the interpreter traced it: masked wherever it masked it.
                press_keys.extend(e.detail["key"] for e in state.trace[traced:] if e.kind in ("key", "key-ignored") and "key" in e.detail)
                if item[3]:
                    emit("press", press_node, _shown_keys(press_token, press_keys), at=press_at)
        if talking:
            emit("end", state.node, describe_outcome(state))
        return SimResult(state, lines, round(now, 2))

    # ------------------------------------------------------------------ helpers

    def _context(self, state: CallState, cmd: C.PlayPrompt) -> str:
        node = self.tree.spec.nodes.get(state.node)
        return f"{state.node} ({getattr(node, 'type', '?')}, up to {cmd.collect.max_digits if cmd.collect else 0} keys)"

    def _enqueue(self, cmd: C.Enqueue, state: CallState, opts: SimOptions, clock: _Clock, now: float,
                 emit: Callable[..., None], next_token: Callable[..., str | None],
                 peek: Callable[[], str | None]) -> bool:
        """Act out what routing does with the call; False when the call is simply handed over."""
        skills = ", ".join(f"{k}>={v}" for k, v in cmd.skills) or "any agent"
        emit("note", state.node, f"queue {cmd.queue}: {skills}, language {cmd.language or 'any'}, priority {cmd.priority}")
        routed = opts.routing is not None and cmd.queue in opts.routing.router.queues and cmd.queue not in opts.queue_outcomes
        if routed:
            r = opts.routing.router
            at = opts.at + timedelta(seconds=now)
            since = state.ticket.since if state.ticket is not None else at
            decisions = r.enqueue(state.call_id, cmd.queue, at, skills=cmd.skills, language=cmd.language,
                                  priority=cmd.priority, since=since)
            self._routed(decisions, state.call_id, opts, clock, now, emit, state.node)
            if state.call_id in r.calls and r.calls[state.call_id].offered_to is None:
                ewt = r.estimated_wait(state.call_id, at)
                emit("note", state.node, f"position {r.position(state.call_id)} in {cmd.queue}, estimated wait "
                                         + (f"{ewt:.0f} s" if ewt != float("inf") else "unknown (nobody who can take it is available)"))
        outcome = "routed" if routed else opts.queue_outcomes.get(cmd.queue, "handoff")
        scripted = opts.keys is not None
        upcoming = peek() if scripted else None
        if cmd.keys and (not scripted or upcoming is not None and (upcoming.lower() in (".", "h") or upcoming[-1] in cmd.keys)):
            # A scripted token is used here only if it is meant for the queue (a wait key, '.' or 'h');
            # otherwise it stays for what comes after the agent (a survey rating).
            tok = next_token(f"{state.node} (waiting in {cmd.queue}; keys {', '.join(cmd.keys)}; '.' to keep waiting)")
            if tok and tok.lower() == "h":
                clock.at(now + opts.queue_wait / 2, ("hangup",))
                return True
            if tok and tok not in (".",):
                clock.at(now + opts.queue_wait / 2, ("digit", tok[-1], tok[-1], True))
                return True
        if outcome == "routed":
            return True
        if outcome == "handoff":
            return False
        if outcome == "answered":
            agent = opts.agent_id
            clock.at(now + opts.queue_wait, ("queue", lambda at: E.AgentConnected(at, agent, "simulated agent")))
            clock.at(now + opts.queue_wait + opts.talk_seconds, ("queue", lambda at: E.AgentDisconnected(at)))
            return True
        if outcome in ("closed", "no_agents", "full", "timeout"):
            delay = (cmd.max_wait or 600.0) if outcome == "timeout" else 0.5
            clock.at(now + delay, ("queue", lambda at, o=outcome: E.QueueResult(at, o)))
            return True
        raise ValueError(f"unknown queue outcome {outcome!r} for queue {cmd.queue}; use {', '.join(QUEUE_OUTCOMES)}")

    def _routed(self, decisions: list[Any], call_id: str, opts: SimOptions, clock: _Clock, now: float,
                emit: Callable[..., None], node: str) -> None:
        """Turn the router's decisions about this call into future simulator events."""
        from routing.model import Offer, QueueFailed

        sim = opts.routing
        for d in decisions:
            if isinstance(d, Offer) and d.call_id == call_id:
                ex = d.explanation
                emit("note", node, f"routing offers the call to {d.agent_id}: step {ex['step']}, "
                                   f"{_req_text(ex)}; {ex['rule']}")
                if d.agent_id not in sim.no_answer:
                    clock.at(now + sim.answer_after, ("route_answer", d.agent_id, ex["rule"]))
            elif isinstance(d, QueueFailed) and d.call_id == call_id:
                emit("note", node, f"routing: {d.outcome.replace('_', ' ')}")
                clock.at(now + 0.5, ("queue", lambda at, o=d.outcome: E.QueueResult(at, o)))
        wake = sim.router.next_wakeup()
        if wake is not None:
            clock.at((wake - opts.at).total_seconds(), ("route_tick",))

    def _hook(self, cmd: C.CallHook, opts: SimOptions, clock: _Clock, now: float, emit: Callable[..., None], node: str) -> None:
        fn = opts.hooks.get(cmd.hook)
        rid = cmd.request_id
        if fn is None:
            emit("note", node, f"hook {cmd.hook}: none registered, taking the fallback")
            clock.at(now + 0.05, ("hook", lambda at: E.HookResult(at, rid, False, error="no hook registered")))
            return
        try:
            values = dict(fn) if isinstance(fn, dict) else fn(dict(cmd.args))
            if not isinstance(values, dict):
                raise TypeError(f"hook {cmd.hook} returned {type(values).__name__}, not a dict of results")
        except HookTimeout:
            emit("note", node, f"hook {cmd.hook}: no answer within {cmd.timeout:g} s")
            clock.at(now + cmd.timeout, ("hook", lambda at: E.HookResult(at, rid, False, error="timeout")))
            return
        except Exception as exc:  # a deployment hook failing must not break the call: take the fallback
            err = type(exc).__name__
            emit("note", node, f"hook {cmd.hook}: failed ({err})")
            clock.at(now + 0.2, ("hook", lambda at: E.HookResult(at, rid, False, error=err)))
            return
        if values.get("error") == "timeout":
            clock.at(now + cmd.timeout, ("hook", lambda at: E.HookResult(at, rid, False, error="timeout")))
            return
        ok = not values.get("error")
        emit("note", node, f"hook {cmd.hook}: {'answered' if ok else 'error'}")
        clock.at(now + 0.2, ("hook", lambda at: E.HookResult(at, rid, ok, values=values, error=str(values.get("error", "")))))


def _req_text(ex: dict[str, Any]) -> str:
    skills = ", ".join(f"{k}>={v}" for k, v in ex["skills"].items()) or "any skills"
    return f"{skills}, language {ex['language']}"


def _shown_keys(token: str, traced: list[str]) -> str:
    """A token as the transcript shows it: in full only if the interpreter traced every key in clear.

    Keys typed ahead and not yet used, or used by a sensitive input, are masked: they may be a date of birth.
    """
    if len(traced) == len(token) and MASK not in traced:
        return token
    return MASK * len(token) + " (sensitive)"


def describe_outcome(state: CallState) -> str:
    """One line saying where the call ended, for transcripts and flow tests."""
    o = state.outcome
    if o is None:
        return "call ended with no outcome"
    d = o.detail
    end = state.now or o.at
    secs = (end - state.started_at).total_seconds()
    then = f", then hung up ({d['outcome']})" if d.get("outcome") and o.kind != "hangup" else ""
    if o.kind == "queue":
        skills = ", ".join(f"{k}>={v}" for k, v in d.get("skills", {}).items()) or "any agent"
        return f"queued in {d['queue']} ({skills}; language {d.get('language') or 'any'}; priority {d.get('priority')}) after {secs:.1f} s"
    if o.kind == "agent":
        return f"answered by {d.get('agent')} from queue {d.get('queue')} after waiting {d.get('waited', 0):.1f} s{then}; call lasted {secs:.1f} s"
    if o.kind == "abandoned":
        return f"caller hung up waiting in {d.get('queue')} after {d.get('waited', 0):.1f} s"
    if o.kind == "transfer":
        return f"transferred to {d.get('to')} after {secs:.1f} s"
    if o.kind in ("voicemail", "record"):
        return f"{o.kind} recorded at {o.node} (retention {d.get('retention')}){then} after {secs:.1f} s"
    if o.kind == "callback":
        return f"callback booked in {d.get('queue')}{then} after {secs:.1f} s"
    if o.kind == "hangup":
        return f"hung up ({d.get('outcome')}) at {o.node} after {secs:.1f} s"
    return f"{o.kind} at {o.node} after {secs:.1f} s"
