"""One simulated day: many calls through the real interpreter and the real router on one virtual clock.

The day simulator is an adapter, like the Asterisk and Twilio ones: it turns what happens on a
simulated line (a prompt ending, a key, an agent picking up, a caller giving up) into the
interpreter's events and the router's calls, and carries out their commands and decisions as
future events. Nothing sleeps: one heap holds every pending event of the day, ordered by time
and then by the order they were scheduled (so a run is a pure function of the scenario and the
seed), and the clock jumps from one to the next.

Callers behave as ``ivr simulate`` plays a key script (same tokens, same timings: keys after a
prompt ends, ``!`` to barge in, ``.`` to stay silent, ``h`` to hang up). Once in a queue they wait
until an agent answers or their patience runs out; then they hang up, or press the queue's
callback key (``callback_share`` of them, where the queue offers one). Agents log in at the start
of their shift, take breaks and log out at its end; one who is on a call or in wrap-up then
finishes it first (breaks keep their full length). An offered call is answered ``answer_after``
seconds later; talk time is drawn per queue (or per kind of call); wrap-up is the queue's.

What comes out is what the live adapters store: a call record per call, the agents' state
changes and the router's queue events, which :func:`routing.kpis.compute_kpis` reads.

Why one heap and not the per-call loop of :class:`ivr.simulate.CallSimulator`: calls share agents,
so their events must interleave in time order; and a day has tens of thousands of calls, so the
loop stays lean (no transcript, no closures per call, types compared by identity).
"""

from __future__ import annotations

import bisect
import gc
import heapq
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NamedTuple

from agents.state import Status
from ivr import commands as C
from ivr import events as E
from ivr.daysim.scenario import Dist, LoadedScenario, Sampler, ScenarioInvalid, clock_minutes, day_start_utc, local_offset
from ivr.interpreter import Interpreter
from ivr.schema import CallbackNode, QueueNode
from ivr.simulate import BARGE_AFTER, KEY_GAP, THINK, parse_keys
from ivr.timing import PromptDurations
from ivr.tree import CallTree, load_tree
from routing.model import AgentChanged, CallLeft, CallQueued, Offer, Overflowed, QueueFailed
from routing.queues import QueueSpec, load_queues
from routing.router import Router
from routing.store import CallRecord

# event kinds (small ints: compared on every event)
_ARRIVE, _PROMPT, _TIMEOUT, _DIGIT, _HANGUP, _EVENT, _PATIENCE, _ANSWER, _TALK_END, _TICK, _AGENT = range(11)

HOOK_SECONDS = 0.2  # a lookup hook answers
TRANSFER_SECONDS = 5.0  # the far end of a transfer picks up
HANG_UP_AFTER_AGENT = 1.0  # a caller with nothing left to press hangs up this long after the agent
DRAIN_HOURS = 6.0  # after the last shift ends and the last caller arrives, the day stops this much later
DEFAULT_TALK_SECONDS = 240.0  # exponential, for a queue the scenario gives no talk time
_CALLER_NUMBER = "+15555550100"  # every simulated caller's number (never a real patient's)
_fromts = datetime.fromtimestamp
_SILENT = frozenset({".", "h", "H"})
UTC = timezone.utc
heappush = heapq.heappush
PromptFinished, Digit = E.PromptFinished, E.Digit
CallStarted, AgentConnected, AgentDisconnected = E.CallStarted, E.AgentConnected, E.AgentDisconnected
# Command classes as module constants: `_carry_out` compares every command's type against them (a module
# attribute lookup per comparison otherwise).
_PlayPrompt, _StopPrompt, _Enqueue, _HangupCall, _Answer = C.PlayPrompt, C.StopPrompt, C.Enqueue, C.HangupCall, C.Answer
_NOT_READY = Status.NOT_READY  # a module constant: enum members are looked up through a metaclass (~0.2 µs)
_STATUS_VALUE = {s: s.value for s in Status}  # ``status.value`` goes through a descriptor (~0.3 µs)
_make = tuple.__new__  # builds a NamedTuple from a tuple without its Python-level ``__new__``
# `_decide` reads these by position (an attribute of a NamedTuple is a descriptor call per read).
# (Offer, Reservation, AgentChanged, CallLeft and AgentState are pinned in routing.router, imported above.)
assert CallRecord._fields == ("call_id", "tree", "channel", "started_at", "ended_at", "outcome", "node", "ended_by",
                              "queue", "agent_id", "queued_at", "answered_at", "agent_ended_at")  # `_finish`: by position


class AgentEvent(NamedTuple):
    """One agent state change, as :func:`routing.kpis.compute_kpis` reads it (``routing.store.AgentEvent``-like)."""

    agent_id: str
    from_status: str
    to_status: str
    call_id: str | None
    at: datetime


class CallEvent(NamedTuple):
    """One router queue event (``routing.store.CallEvent``-like): kind ``left``, ``queue_failed`` or ``overflowed``."""

    call_id: str
    queue: str
    kind: str
    at: datetime


@dataclass
class DayOutcome:
    """Everything one replication produced."""

    records: list[CallRecord]
    agent_events: list[AgentEvent]
    call_events: list[CallEvent]
    arrivals: int
    unfinished: int  # calls still in progress when the day was stopped (DRAIN_HOURS after the end)
    callbacks_served: int
    callbacks_unserved: int  # callbacks still waiting in the router when the day ended
    events: int  # heap events processed (for the benchmark)


class DayModel:
    """A scenario compiled once and shared by every replication: tree, queues, roster, samplers, shifts."""

    def __init__(self, loaded: LoadedScenario, *, allow_lints: bool = False) -> None:
        spec = loaded.spec
        self.loaded = loaded
        self.allow_lints = allow_lints
        self.spec = spec
        self.tree: CallTree = load_tree(loaded.tree_path, allow_lints=allow_lints)
        queues = load_queues(loaded.queues_path)
        unknown = sorted((set(spec.talk) | set(spec.wrap_up)) - set(queues) - {"default"})
        if unknown:
            raise ScenarioInvalid(f"{loaded.file}: talk/wrap_up name queue(s) not in {loaded.queues_path.name}: "
                                  f"{', '.join(unknown)} (known: {', '.join(queues)}, or `default`)",
                                  details={"queues": unknown})
        default_wrap = spec.wrap_up.get("default")
        self.queues: dict[str, QueueSpec] = {}
        for name, q in queues.items():
            wrap = spec.wrap_up.get(name, default_wrap)
            self.queues[name] = q if wrap is None else q.model_copy(update={"wrap_up": wrap})
        self.roster = spec.roster()
        self.interp = Interpreter(self.tree, trace=False)  # nobody reads 30,000 traces; outcomes are the same
        self.durations = PromptDurations(self.tree.spec.lints.speech_rate_wpm)
        self.tokens = [tuple(parse_keys(m.keys)) for m in spec.mix]
        total = sum(m.share for m in spec.mix)
        self.cum = list(itertools.accumulate(m.share / total for m in spec.mix))
        self.cum[-1] = 1.0
        fallback_talk = spec.talk.get("default") or Dist(dist="exponential", mean=DEFAULT_TALK_SECONDS)
        self.talk: dict[str, Sampler] = {q: spec.talk.get(q, fallback_talk).sampler() for q in self.queues}
        self.mix_talk: list[Sampler | None] = [m.talk.sampler() if m.talk else None for m in spec.mix]
        default_patience = spec.patience.sampler() if spec.patience else None
        self.patience: list[Sampler | None] = [m.patience.sampler() if m.patience else default_patience for m in spec.mix]
        self.callback_key: dict[str, str] = {}  # queue node -> the key that books a callback there
        nodes = self.tree.spec.nodes
        for nid, node in nodes.items():
            if isinstance(node, QueueNode):
                for key, target in node.keys.items():
                    if isinstance(nodes.get(target), CallbackNode):
                        self.callback_key[nid] = key
                        break
        tz = self.tree.tz
        self.base = day_start_utc(spec.date, tz)
        self.hours: list[tuple[float, float, float]] = []  # (start s, end s, calls per second)
        self.notes: list[str] = []
        for hour, calls in spec.hour_rates():
            a = local_offset(spec.date, hour * 60, tz, self.base)
            b = local_offset(spec.date, hour * 60 + 60, tz, self.base) if hour < 23 else a + 3600
            if b - a < 1.0:
                if calls:
                    self.notes.append(f"{hour:02d}:00 does not exist on {spec.date} in {tz} (the clocks go forward): "
                                      f"its {calls:g} calls are not simulated")
                continue
            if b - a > 3600 and calls:
                self.notes.append(f"{hour:02d}:00 lasts {(b - a) / 3600:g} h on {spec.date} in {tz} (the clocks go "
                                  f"back): its {calls:g} calls are spread over that time")
            self.hours.append((a, b, calls / (b - a)))
        self.shifts: list[tuple[str, float, float, list[tuple[float, float, str]]]] = []
        for g in spec.agents:
            a, b = g.shift_minutes
            start, end = local_offset(spec.date, a, tz, self.base), local_offset(spec.date, b, tz, self.base)
            breaks = [(local_offset(spec.date, clock_minutes(br.start), tz, self.base), br.minutes * 60, br.reason)
                      for br in g.breaks]
            for aid in g.ids():
                self.shifts.append((aid, start, end, breaks))
        last = max([s[2] for s in self.shifts] + [h[1] for h in self.hours])
        self.horizon = last + DRAIN_HOURS * 3600
        self.warmup_start = (self.hours[0][0] + spec.warmup_minutes * 60) if self.hours else 0.0

    def at(self, t: float) -> datetime:
        return self.base + timedelta(seconds=t)


class _Call:
    """One caller's line: the interpreter state plus what the adapter tracks for its call record."""

    __slots__ = ("id", "mix", "state", "tokens", "prompt_end", "timer", "collect", "queue", "queued_at",
                 "answered_at", "agent_id", "agent_ended_at", "ended_by", "patience_set", "done", "talk", "armed")

    def __init__(self, call_id: str, mix: int, tokens: tuple[str, ...]) -> None:
        self.id = call_id
        self.mix = mix
        self.state: Any = None
        self.tokens = list(tokens)
        self.prompt_end: dict[int, float] = {}
        self.timer: dict[int, float] = {}
        self.collect: dict[int, C.Collect] = {}
        self.queue: str | None = None
        self.queued_at: datetime | None = None
        self.answered_at: datetime | None = None
        self.agent_id: str | None = None
        self.agent_ended_at: datetime | None = None
        self.ended_by = "caller"
        self.patience_set = False
        self.done = False
        self.talk: Sampler | None = None
        self.armed = -1  # the prompt whose input timeout is on the heap


@dataclass
class _Callback:
    """A callback the router holds: an agent rings the patient back when it is offered and answered."""

    id: str
    queue: str


@dataclass
class DaySimulator:
    """Runs replications of one scenario. ``run(replication)`` is deterministic for a given seed."""

    model: DayModel
    progress: Callable[[int], None] | None = None  # called with the number of new arrivals, every few hundred

    def run(self, replication: int = 0) -> DayOutcome:
        return _Day(self.model, self.model.spec.seed * 100_003 + replication, self.progress).run()


class _Day:
    """The state of one replication (kept out of DaySimulator so every run starts clean)."""

    def __init__(self, model: DayModel, seed: int, progress: Callable[[int], None] | None) -> None:
        self.m = model
        self.rng = random.Random(seed)
        self.progress = progress
        self.router = Router(model.queues, model.roster)
        self.heap: list[tuple[float, int, int, Any, Any]] = []
        self.seq = itertools.count()
        self.calls: dict[str, _Call] = {}
        self.callbacks: dict[str, _Callback] = {}
        self.records: list[CallRecord] = []
        self.agent_events: list[AgentEvent] = []
        self.call_events: list[CallEvent] = []
        # Breaks: those due but not started yet, per agent in the order they came due (the first one is
        # with the router as "not ready after this call" while the agent is busy), and the one in progress
        # (a token its end event must match, so an earlier break's end cannot cut a later break short).
        self.breaks_due: dict[str, list[tuple[str, float]]] = {}
        self.on_break: dict[str, int] = {}
        self.break_tokens = itertools.count(1)
        self.tick_at = float("inf")
        self.now = 0.0
        self.arrivals = 0
        self.callbacks_served = 0
        self.hour = 0
        base = model.base
        self.base_ts = base.timestamp()
        self.answer_after = model.spec.answer_after
        self.record_seconds = model.spec.record_seconds
        self.hooks = model.spec.hooks
        self.tree_name = model.tree.spec.name
        self.interp_step = model.interp.step
        self.interp_start = model.interp.start
        self.durations = model.durations
        # Per kind of caller, what every call of that kind starts with (read once per arrival).
        self.mix_start: list[tuple[str | None, str | None, tuple[str, ...]]] = [
            (None if mix.caller_id == "withheld" else _CALLER_NUMBER, mix.language, tokens)
            for mix, tokens in zip(model.spec.mix, model.tokens, strict=True)]
        # The datetime `at` built last, and for which time: one event converts the same instant for the
        # interpreter, the router and the call record (each conversion ~0.3 µs), and the router's own
        # timestamp cache only recognises the very same datetime object.
        self._at_t = float("nan")
        self._at_dt = base

    # ------------------------------------------------------------------ the loop

    def push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        heapq.heappush(self.heap, (t, next(self.seq), kind, a, b))

    def at(self, t: float) -> datetime:
        """Simulation seconds -> an aware UTC datetime (``fromtimestamp`` is twice as fast as adding a timedelta).

        The last one is kept (see ``_at_t``): datetimes are immutable, and ``fromtimestamp`` of the same
        float always gives an equal datetime, so handing out the kept one changes no value anywhere."""
        if t == self._at_t:
            return self._at_dt
        self._at_t = t
        dt = self._at_dt = _fromts(self.base_ts + t, UTC)
        return dt

    def run(self) -> DayOutcome:
        """The day, with the cyclic garbage collector paused.

        Why: everything a day builds (call records, agent and queue events, the router's explanations)
        stays alive until the day ends, so the collector's full passes only walk an ever larger heap and
        free nothing (measured on the 12-hour benchmark day: 5 gen-2 passes, 0 objects collected, 15-30 %
        of the run). Reference counting still frees everything short-lived; the collector resumes after.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if was_enabled:
                gc.enable()

    def _run(self) -> DayOutcome:
        m = self.m
        for aid, start, end, breaks in m.shifts:
            self.push(start, _AGENT, aid, ("login", None))
            for bt, secs, reason in breaks:
                self.push(bt, _AGENT, aid, ("pause", (reason, secs)))
            self.push(end, _AGENT, aid, ("logout", None))
        if m.hours:
            self._next_arrival(m.hours[0][0])
        heap, horizon = self.heap, m.horizon
        events = 0
        pop = heapq.heappop
        handlers = (self._on_arrive, self._on_prompt, self._on_timeout, self._on_digit, self._on_hangup,
                    self._on_event, self._on_patience, self._on_answer, self._on_talk_end, self._on_tick,
                    self._on_agent)
        while heap:
            t, _, kind, a, b = pop(heap)
            if t > horizon:
                break
            self.now = t
            events += 1
            handlers[kind](t, a, b)
        unfinished = 0
        for call in list(self.calls.values()):  # still on the line when the day was cut off (_finish drops them)
            unfinished += 1
            call.ended_by = "engine"
            self._finish(call, self.now)
        return DayOutcome(self.records, self.agent_events, self.call_events, self.arrivals, unfinished,
                          self.callbacks_served, len(self.callbacks), events)

    # ------------------------------------------------------------------ arrivals

    def _next_arrival(self, t: float) -> None:
        """Poisson within each hour at that hour's rate (memoryless: a gap crossing the hour is redrawn)."""
        hours, rng = self.m.hours, self.rng
        while self.hour < len(hours):
            start, end, rate = hours[self.hour]
            t = max(t, start)
            if rate > 0:
                t += rng.expovariate(rate)
                if t < end:
                    heappush(self.heap, (t, next(self.seq), _ARRIVE, None, None))
                    return
            self.hour += 1
            t = hours[self.hour][0] if self.hour < len(hours) else t

    def _on_arrive(self, t: float, _a: Any, _b: Any) -> None:
        n = self.arrivals = self.arrivals + 1
        if self.progress is not None and n % 500 == 0:
            self.progress(500)
        i = bisect.bisect_left(self.m.cum, self.rng.random())
        caller, language, tokens = self.mix_start[i]
        call_id = f"d{n}"
        call = _Call(call_id, i, tokens)
        self.calls[call_id] = call
        call.state, cmds = self.interp_start(CallStarted(self.at(t), call_id, caller, None, language))
        self._carry_out(call, cmds, t)
        self._next_arrival(t)

    # ------------------------------------------------------------------ the caller's line

    def _step(self, call: _Call, ev: Any, t: float) -> None:
        call.state, cmds = self.interp_step(call.state, ev)
        self._carry_out(call, cmds, t)

    def _carry_out(self, call: _Call, cmds: list[Any], t: float) -> None:
        for cmd in cmds:
            typ = type(cmd)
            if typ is _PlayPrompt:
                self._play(call, cmd, t)
            elif typ is _StopPrompt:
                call.prompt_end.pop(cmd.prompt_id, None)
            elif typ is _Answer:
                pass  # changes nothing on a simulated line (every call starts with one)
            elif typ is _Enqueue:
                self._enqueue(call, cmd, t)
            elif typ is _HangupCall:
                call.ended_by = "engine"
                if call.id in self.router.calls:  # `_leave_router`'s test, here: most calls left the router already
                    self._leave_router(call, t, "abandoned")
            else:
                self._command(call, cmd, typ, t)
        if call.state.phase == "ended":
            self._finish(call, t)

    def _command(self, call: _Call, cmd: Any, typ: type, t: float) -> None:
        """Every command but prompts (the frequent ones, kept on the fast path of :meth:`_carry_out`)."""
        if typ is C.Enqueue:
            self._enqueue(call, cmd, t)
        elif typ is C.Dequeue:
            self._leave_router(call, t, "dequeued")
        elif typ is C.Transfer:
            self._leave_router(call, t, "transferred")
            call.ended_by = "transfer"
            self.push(t + TRANSFER_SECONDS, _EVENT, call, (E.TransferResult, (True,)))
        elif typ is C.Record:
            secs = min(self.record_seconds, cmd.max_length)
            tokens = call.tokens
            if tokens and tokens[0] in ("h", "H"):  # as `ivr simulate`: hangs up halfway through the message
                tokens.pop(0)
                self.push(t + secs / 2, _HANGUP, call)
            else:
                self.push(t + secs, _EVENT, call, (E.RecordingFinished, (secs,)))
        elif typ is C.RequestCallback:
            self._callback(call, cmd, t)
        elif typ is C.CallHook:
            values = self.hooks.get(cmd.hook)
            if values is None:
                result: tuple[Any, ...] = (cmd.request_id, False, {}, "no hook registered")
            else:
                result = (cmd.request_id, not values.get("error"), dict(values), str(values.get("error", "")))
            self.push(t + HOOK_SECONDS, _EVENT, call, (E.HookResult, result))
        elif typ is C.HangupCall:
            call.ended_by = "engine"
            self._leave_router(call, t, "abandoned")
        # Answer and SendSms change nothing on a simulated line.

    def _play(self, call: _Call, cmd: C.PlayPrompt, t: float) -> None:
        end = t + self.durations(cmd.items)
        pid = cmd.prompt_id
        call.prompt_end[pid] = end
        heap, seq = self.heap, self.seq
        heappush(heap, (end, next(seq), _PROMPT, call, pid))
        col = cmd.collect
        tokens = call.tokens
        if col is not None:
            deadline = end + col.timeout
            call.collect[pid] = col
            call.timer[pid] = deadline
            tok = tokens.pop(0) if tokens else None
            if tok is None or tok in _SILENT:
                # Silence: the timeout will fire. A caller who presses keys gets one only if a key leaves the
                # input unfinished (_on_digit arms it): most keys end the prompt, and a timeout for nothing
                # would cost an event per menu.
                call.armed = pid
                heappush(heap, (deadline, next(seq), _TIMEOUT, call, pid))
                if tok is None or tok == ".":
                    return
            self._token(call, tok, t, end)
        elif cmd.barge_in and tokens and tokens[0][0] == "!":
            self._token(call, tokens.pop(0), t, end)

    def _token(self, call: _Call, tok: str, start: float, end: float) -> None:
        """Schedule what the caller does with one script token (see :mod:`ivr.simulate`)."""
        if tok == ".":
            return
        if tok in ("h", "H"):
            self.push(start + min(BARGE_AFTER, max(end - start, 0.0)), _HANGUP, call)
            return
        if tok[0] == "!":
            at, keys = start + min(BARGE_AFTER, (end - start) / 2), tok[1:]
        else:
            at, keys = end + THINK, tok
        heappush(self.heap, (at, next(self.seq), _DIGIT, call, keys))  # one key at a time (_on_digit chains the rest)

    def _on_prompt(self, t: float, call: _Call, pid: int) -> None:
        if call.done or pid not in call.prompt_end:
            return  # stopped by barge-in, or the call is over
        call.state, cmds = self.interp_step(call.state, PromptFinished(self.at(t), pid))
        self._carry_out(call, cmds, t)

    def _on_timeout(self, t: float, call: _Call, pid: int) -> None:
        st = call.state
        deadline = call.timer.get(pid)
        if call.done or pid != st.prompt_id or deadline is None or st.phase not in ("prompt", "collect"):
            return
        if deadline > t:  # a key moved the deadline: look again then
            self.push(deadline, _TIMEOUT, call, pid)
            return
        self._step(call, E.InputTimeout(self.at(t), pid), t)

    def _on_digit(self, t: float, call: _Call, keys: str) -> None:
        """The caller presses ``keys[0]``; the rest follow ``KEY_GAP`` apart (scheduled one by one, which keeps
        the heap small)."""
        if call.done:
            return
        digit = keys[0]
        if len(keys) > 1:
            heappush(self.heap, (t + KEY_GAP, next(self.seq), _DIGIT, call, keys[1:]))
        pid = call.state.prompt_id
        col = call.collect.get(pid)
        if col is not None:  # the inter-digit timer restarts; the queued timeout re-arms itself lazily
            call.timer[pid] = max(t, call.prompt_end.get(pid, t)) + col.timeout
        call.state, cmds = self.interp_step(call.state, Digit(self.at(t), digit))
        self._carry_out(call, cmds, t)
        st = call.state
        if (col is not None and not call.done and st.prompt_id == pid and call.armed != pid
                and st.phase in ("prompt", "collect")):
            call.armed = pid  # still listening on the same prompt: its timeout may matter now
            self.push(call.timer[pid], _TIMEOUT, call, pid)

    def _on_hangup(self, t: float, call: _Call, _b: Any) -> None:
        if call.done:
            return
        call.ended_by = "caller"
        self._leave_router(call, t, "abandoned")
        self._step(call, E.Hangup(self.at(t)), t)

    def _on_event(self, t: float, call: _Call, made: tuple[Any, tuple[Any, ...]]) -> None:
        if call.done:
            return
        cls, args = made
        self._step(call, cls(self.at(t), *args), t)

    def _finish(self, call: _Call, t: float) -> None:
        call.done = True
        self.calls.pop(call.id, None)
        st = call.state
        outcome = st.outcome.kind if st.outcome is not None else "hangup"
        self.records.append(_make(CallRecord, (call.id, self.tree_name, "simulator", st.started_at, self.at(t), outcome,
                                               st.node, call.ended_by, call.queue, call.agent_id, call.queued_at,
                                               call.answered_at, call.agent_ended_at)))

    # ------------------------------------------------------------------ queues and agents

    def _enqueue(self, call: _Call, cmd: C.Enqueue, t: float) -> None:
        now = self.at(t)
        queue = call.queue = cmd.queue
        if call.queued_at is None:
            call.queued_at = now
        router = self.router
        if queue not in router.queues:
            self.push(t, _EVENT, call, (E.QueueResult, ("closed",)))  # as the live adapters do for an unknown queue
            return
        ticket = call.state.ticket
        self._decide(router.enqueue(call.id, queue, now, skills=cmd.skills, language=cmd.language,
                                    priority=cmd.priority, since=ticket.since if ticket is not None else now), t)
        if not call.patience_set:
            call.patience_set = True
            sampler = self.m.patience[call.mix]
            if sampler is not None:
                heappush(self.heap, (t + sampler(self.rng), next(self.seq), _PATIENCE, call, None))

    def _leave_router(self, call: _Call, t: float, why: str) -> None:
        if call.id in self.router.calls:
            self._decide(self.router.abandon(call.id, self.at(t), why=why), t)

    def _on_patience(self, t: float, call: _Call, _b: Any) -> None:
        """The caller has waited as long as they will: a callback key if the queue offers one (some), else hang up."""
        if call.done or call.answered_at is not None or call.state.phase != "queue" or call.id not in self.router.calls:
            return
        key = self.m.callback_key.get(call.state.node)
        if key is not None and self.rng.random() < self.m.spec.callback_share:
            self._on_digit(t, call, key)
        else:
            self._on_hangup(t, call, None)

    def _callback(self, call: _Call, cmd: C.RequestCallback, t: float) -> None:
        if cmd.queue not in self.router.queues:
            return
        cb = _Callback(f"{call.id}-callback", cmd.queue)
        self.callbacks[cb.id] = cb
        self._decide(self.router.enqueue(cb.id, cmd.queue, self.at(t), skills=cmd.skills, language=cmd.language,
                                         priority=cmd.priority, since=cmd.keep_place_since,
                                         callback_number=cmd.number), t)

    def _on_answer(self, t: float, call_id: str, offer: tuple[str, datetime]) -> None:
        agent, offered_at = offer
        router = self.router
        res = router.reservations.get(call_id)
        if res is None or res[1] != agent or res[2] != offered_at:
            return  # the offer ended before the agent picked up (the caller left)
        now = self.at(t)
        queue = router.calls[call_id][1]  # WaitingCall.queue
        self._decide(router.answered(call_id, now, agent_id=agent, offered_at=offered_at), t)
        if self.callbacks:
            cb = self.callbacks.pop(call_id, None)
            if cb is not None:  # the agent rings the patient back and talks
                self.callbacks_served += 1
                self.push(t + self.m.talk[queue](self.rng), _TALK_END, None, agent)
                return
        call = self.calls.get(call_id)
        if call is None:
            return
        call.answered_at = now
        call.agent_id = agent
        sampler = self.m.mix_talk[call.mix] or self.m.talk[queue]
        heappush(self.heap, (t + sampler(self.rng), next(self.seq), _TALK_END, call, agent))
        call.state, cmds = self.interp_step(call.state, AgentConnected(now, agent))
        self._carry_out(call, cmds, t)

    def _on_talk_end(self, t: float, call: _Call | None, agent: str) -> None:
        now = self.at(t)
        self._decide(self.router.call_ended(agent, now), t)
        if call is None or call.done:
            return
        call.agent_ended_at = now
        call.ended_by = "agent"
        call.state, cmds = self.interp_step(call.state, AgentDisconnected(now))
        self._carry_out(call, cmds, t)
        if not call.done and not call.tokens:
            self.push(t + HANG_UP_AFTER_AGENT, _HANGUP, call)

    def _on_agent(self, t: float, agent: str, action: tuple[str, Any]) -> None:
        """Log in, take a break, end one, or log out, as the agent's shift and breaks say.

        A break or the end of the shift that finds the agent busy (ringing, on a call, in wrap-up) is
        handed to the router as "not ready after this call" (:meth:`Router.after_call`): the router then
        pauses or logs the agent out when the wrap-up ends, instead of making them ready and offering the
        next waiting call in the same instant. Breaks keep their full length from when they start; one
        that comes due while the agent is busy or on another break starts after it, back to back.
        """
        kind, arg = action
        r = self.router
        status = r.agents[agent].status
        now = self.at(t)
        if kind == "login":
            if status is Status.LOGGED_OUT:
                self._decide(r.login(agent, now), t)
        elif status is Status.LOGGED_OUT:
            return
        elif kind == "pause":
            due = self.breaks_due.setdefault(agent, [])
            due.append(arg)
            if len(due) == 1 and agent not in self.on_break:  # else it waits for the break before it
                self._decide(r.after_call(agent, Status.NOT_READY, now, reason=arg[0]), t)
        elif kind == "break-over":
            if self.on_break.get(agent) != arg or status is not Status.NOT_READY:
                return  # not the break in progress (the shift ended, or a later break replaced it)
            del self.on_break[agent]
            due = self.breaks_due.get(agent)
            if due:  # the next break was due during this one: it starts now
                self._decide(r.pause(agent, due[0][0], now), t)
            else:
                self._decide(r.ready(agent, now), t)
        elif kind == "logout":
            self.breaks_due.pop(agent, None)
            self.on_break.pop(agent, None)
            self._decide(r.after_call(agent, Status.LOGGED_OUT, now), t)

    def _break_started(self, agent: str, t: float) -> None:
        """The agent went not ready: if a break is due, this is it; its end is scheduled from now."""
        due = self.breaks_due.get(agent)
        if not due:
            return
        _, secs = due.pop(0)
        token = self.on_break[agent] = next(self.break_tokens)
        self.push(t + secs, _AGENT, agent, ("break-over", token))

    def _on_tick(self, t: float, ts: float, _b: Any) -> None:
        if ts != self.tick_at:
            return  # superseded by an earlier tick
        self.tick_at = float("inf")
        self._decide(self.router.tick(_fromts(ts, UTC)), t)

    # ------------------------------------------------------------------ the router's decisions

    def _decide(self, decisions: list[Any], t: float) -> None:
        r = self.router
        for d in decisions:
            typ = type(d)
            if typ is AgentChanged:
                st, previous, _ = d
                agent_id, status, since, reason, call_id = st[:5]
                self.agent_events.append(_make(AgentEvent, (agent_id, previous, _STATUS_VALUE[status], call_id, since)))
                if status is _NOT_READY and self.breaks_due and reason != "no-answer":
                    self._break_started(agent_id, t)
            elif typ is CallQueued:
                continue  # for the store only (one per call: tested here so it skips the rarer cases below)
            elif typ is Offer:
                res = r.reservations.get(d[0])
                if res is not None and res[1] == d[1]:
                    heappush(self.heap, (t + self.answer_after, next(self.seq), _ANSWER, d[0], (d[1], res[2])))
            elif typ is CallLeft:
                self.call_events.append(_make(CallEvent, (d[0], d[1], "left", d[3])))
            elif typ is QueueFailed:
                self.call_events.append(CallEvent(d.call_id, d.queue, "queue_failed", self.at(t)))
                call = self.calls.get(d.call_id)
                if call is not None:
                    self.push(t, _EVENT, call, (E.QueueResult, (d.outcome,)))
                else:
                    self.callbacks.pop(d.call_id, None)
            elif typ is Overflowed:
                self.call_events.append(CallEvent(d.call_id, d.from_queue, "overflowed", self.at(t)))
        ts = r.next_wakeup_ts()
        if ts is not None and ts < self.tick_at:
            self.tick_at = ts
            heappush(self.heap, (ts - self.base_ts, next(self.seq), _TICK, ts, None))
