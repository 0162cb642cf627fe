"""Skill-based routing: a pure decision engine over an in-memory index.

A method that refuses an event (unknown agent, illegal transition, a call no
longer ringing) raises before changing anything, apart from first applying
timers due before ``now``; callers that persist decisions run ``tick(now)``
as its own step first (see :mod:`routing.service`).

Every method takes the current time and returns decisions (:mod:`routing.model`);
nothing here does I/O or reads a clock. The same router runs behind Asterisk,
Twilio, ``ivr simulate`` and the day simulator; a service layer persists its
decisions through the store's single writer.

Rules, in the order they apply:

- A waiting call's requirements come from the tree (its skills, language) or
  the queue; the queue's ``steps`` relax them as the caller waits (by time since
  the caller's place in line began, which ring-no-answer, overflow and callbacks
  keep).
- A new or relaxed call goes to the best *available* eligible agent by the
  queue's strategy: longest idle (default), most skilled, fewest calls, round robin.
- An agent who becomes free takes, across all queues, the call it is eligible
  for with the highest priority, then the longest wait: fair across queues.
- Ring-no-answer puts the call back in its place and the agent back to ready
  (keeping their idle place), or not ready after ``max_no_answer`` misses in a row.
- Every offer records why: the step, the requirements, how many agents were
  eligible, and the rule that picked this one (``explain``).
"""

from __future__ import annotations

import bisect
import heapq
from bisect import bisect_left
import itertools
from datetime import datetime, timedelta
from typing import Any, Iterable

from agents.roster import AgentSpec
from agents.state import AgentState, IllegalTransition, Status, UnknownAgent, missed_offer, transition
from ivr.errors import IvrError
from routing.model import (
    AgentChanged, CallLeft, CallQueued, Decision, Offer, Overflowed, QueueFailed, Reservation, WaitingCall,
)
from routing.queues import QueueSpec

DEFAULT_HANDLE_SECONDS = 180.0  # assumed talk + wrap-up before a queue has history
EWMA = 0.2  # weight of the newest handle time in the running average


class UnknownCall(IvrError):
    error_id = "E-ROUTING-UNKNOWN-CALL"


class UnknownQueue(IvrError):
    error_id = "E-ROUTING-UNKNOWN-QUEUE"


def _ts(at: datetime | None) -> float:
    return at.timestamp() if at is not None else 0.0


# The statuses as plain module constants: ``Status.READY`` is looked up through the enum's metaclass
# (which defines ``__getattr__``), about 0.2 µs a time, and every event compares statuses several times.
_LOGGED_OUT, _READY, _NOT_READY = Status.LOGGED_OUT, Status.READY, Status.NOT_READY
_RESERVED, _ON_CALL, _WRAP_UP = Status.RESERVED, Status.ON_CALL, Status.WRAP_UP
# ``status.value`` goes through an enum descriptor (~0.3 µs); every AgentChanged names the previous status.
_STATUS_VALUE: dict[Status, str] = {s: s.value for s in Status}
# ``tuple.__new__(Cls, fields)`` is what a NamedTuple's own ``__new__`` does after repacking its arguments
# in Python; the decisions and records built on every event (one call makes about a dozen) skip that step.
_make = tuple.__new__
# The hot paths build these by position and read their fields by position (a NamedTuple attribute is a
# descriptor call per read; `tuple.__new__` checks no length): their whole field lists are pinned here.
assert WaitingCall._fields == ("call_id", "queue", "since", "seq", "priority", "skills", "language", "preferred_agent",
                               "callback_number", "entered_queue_at", "offered_to")
assert AgentState._fields == ("agent_id", "status", "since", "reason", "call_id", "idle_since", "missed", "calls")
assert Reservation._fields == ("call_id", "agent_id", "offered_at", "expires_at")
assert Offer._fields == ("call_id", "agent_id", "queue", "expires_at", "explanation")
assert AgentChanged._fields == ("state", "previous", "cause") and CallQueued._fields == ("call",)
assert CallLeft._fields == ("call_id", "queue", "why", "at")


class Router:
    """Matches waiting calls with agents. Not thread-safe: one owner applies events in order."""

    def __init__(self, queues: dict[str, QueueSpec], roster: Iterable[AgentSpec]) -> None:
        self.queues = dict(queues)
        self.roster: dict[str, AgentSpec] = {a.id: a for a in roster}
        self.order = {aid: i for i, aid in enumerate(self.roster)}  # roster order, for round robin
        self.agents: dict[str, AgentState] = {aid: AgentState(aid) for aid in self.roster}
        self.calls: dict[str, WaitingCall] = {}
        self.lines: dict[str, list[tuple[int, float, int, str]]] = {q: [] for q in self.queues}
        self.reservations: dict[str, Reservation] = {}
        self.reserved_agent: dict[str, str] = {}  # agent -> call
        self.missed_by: dict[str, set[str]] = {}  # call -> agents that let it ring out
        self.handle_seconds: dict[str, float] = {q: DEFAULT_HANDLE_SECONDS for q in self.queues}
        self.call_started: dict[str, tuple[str, datetime]] = {}  # agent -> (queue, answered at)
        self.rr_next: dict[str, int] = {q: 0 for q in self.queues}
        self._seq = itertools.count()
        self._tseq = itertools.count()
        self._timers: list[tuple[float, int, str, str, Any]] = []
        # Ready agents in longest-idle order, overall and per skill (sorted lists of (idle_ts, roster order, id)).
        self._ready: list[tuple[float, int, str]] = []
        self._ready_by_skill: dict[str, list[tuple[float, int, str]]] = {}
        # Each waiting call's requirements, valid until its next step boundary, and the calls filed by one
        # skill they currently require ("" for none): an agent who becomes free looks only at the lists of
        # its own skills, across all queues, instead of at every waiting call.
        # Entries are (valid from ts, valid until ts, queue, (skills, language, step, preferred-only)).
        self._req: dict[str, tuple[float, float, str, tuple[Any, ...]]] = {}
        self._by_skill: dict[str, list[tuple[int, float, int, str]]] = {}
        # Who is logged in changes rarely: `_anyone_could_serve` answers are kept until it does.
        self._staff_version = 0
        self._servable: dict[tuple[Any, ...], tuple[int, bool]] = {}
        # What the hot paths would otherwise recompute on every event (see each helper for why it is safe):
        self._caps = {aid: (a.skills, a.languages) for aid, a in self.roster.items()}  # roster specs are frozen
        # The lists of waiting calls a free agent looks at: its skills' lists, in roster order, then "" (no
        # skill required). The lists are created here and only ever changed in place.
        self._agent_lines = {aid: tuple(self._by_skill.setdefault(skill, []) for skill in (*a.skills, ""))
                             for aid, a in self.roster.items()}
        self._ready_keys: dict[str, tuple[datetime | None, tuple[float, int, str]]] = {}  # agent -> (idle_since, key)
        self._line_keys: dict[str, tuple[int, float, int, str]] = {}  # waiting call -> its `_line_key`
        self._durations: dict[float, timedelta] = {}  # seconds -> timedelta, see `_seconds`
        self._step_reqs: dict[tuple[Any, ...], tuple[QueueSpec, tuple[tuple[str, int], ...]]] = {}
        self._stamp_at: datetime | None = None  # the datetime `_stamp` last converted, and its timestamp
        self._stamp_ts = 0.0
        # agent -> (status, reason) to take when their current call is over ("not ready after this call"):
        # taken *instead of* ready, so no waiting call can be offered in between (see `after_call`).
        self.after_call_to: dict[str, tuple[Status, str | None]] = {}

    # ================================================================== agents

    def login(self, agent_id: str, now: datetime, *, ready: bool = True) -> list[Decision]:
        """Log an agent in, ready (default) or not ready."""
        if self._agent(agent_id).status is not _LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is already logged in ({self.agents[agent_id].status.value})",
                                    details={"agent": agent_id})
        return self._agent_to(agent_id, _READY if ready else _NOT_READY, now, "login",
                              reason=None if ready else "other")

    def ready(self, agent_id: str, now: datetime) -> list[Decision]:
        self._logged_in(agent_id)
        return self._agent_to(agent_id, _READY, now, "ready")

    def pause(self, agent_id: str, reason: str, now: datetime) -> list[Decision]:
        self._logged_in(agent_id)
        return self._agent_to(agent_id, _NOT_READY, now, "pause", reason=reason)

    def unavailable(self, agent_id: str, now: datetime, *, reason: str = "offline") -> list[Decision]:
        """The agent cannot take calls any more (their softphone unregistered): not ready with ``reason``.

        Unlike a pause this also applies to a ringing agent: the offer is withdrawn without counting a
        miss (a phone that vanished is not an agent ignoring a call), the agent is made not ready *first*,
        and only then is the call matched again, so it can never be re-offered to the same dead phone.
        """
        out: list[Decision] = self._due(now)
        st = self._agent(agent_id)
        if st.status is not _RESERVED:
            self._logged_in(agent_id)
            after = self.after_call_to.get(agent_id) if self.after_call_to else None
            out += self._agent_to(agent_id, _NOT_READY, now, "unavailable", reason=reason, catch_up=False)
            if after is not None and after[0] is _LOGGED_OUT:  # the logout asked for still happens (a pause is moot)
                out += self._agent_to(agent_id, _LOGGED_OUT, now, "after-call", catch_up=False) + self._fail_unservable(now)
            return out
        call_id = next(c for c, r in self.reservations.items() if r.agent_id == agent_id)
        self._drop_reservation(call_id)
        new = transition(st, _NOT_READY, now, reason=reason)
        out.append(self._set_agent(new, st, "unavailable"))
        out += self._apply_after_call(agent_id, now)  # a pending logout still happens; a pause is moot
        self.calls[call_id] = _offered_to(self.calls[call_id], None)
        out.append(CallQueued(self.calls[call_id]))
        return out + self._match_call(call_id, now)

    def after_call(self, agent_id: str, to: Status, now: datetime, *, reason: str | None = None) -> list[Decision]:
        """Pause (``NOT_READY`` with ``reason``) or log out when the agent's current call and wrap-up end.

        Why not a plain pause at the end of wrap-up: the wrap-up timer makes the agent ready and offers
        them the next waiting call in the same step, so under load an agent asking for a break (or a
        shift ending) would never get one while anyone waits. Real ACDs call this "not ready after call".
        An agent who is not busy (ready, not ready) moves at once. A later explicit change (ready, pause,
        logout) replaces the request; a ringing agent whose caller leaves or who lets it ring out moves then.
        """
        if to is not _NOT_READY and to is not _LOGGED_OUT:
            raise IllegalTransition(f"after a call an agent can only pause or log out, not go {to.value}",
                                    details={"agent": agent_id, "to": to.value})
        status = self._agent(agent_id).status
        if status is _RESERVED or status is _ON_CALL or status is _WRAP_UP:
            if to is _NOT_READY:
                transition(AgentState(agent_id, _READY), _NOT_READY, now, reason=reason)  # refuses a bad reason now
            out = self._due(now)
            if self.agents[agent_id].status in (_RESERVED, _ON_CALL, _WRAP_UP):  # the timers did not free them
                self.after_call_to[agent_id] = (to, reason)
                return out
            return out + self._after_call_now(agent_id, to, now, reason)
        return self._after_call_now(agent_id, to, now, reason)

    def _after_call_now(self, agent_id: str, to: Status, now: datetime, reason: str | None) -> list[Decision]:
        if to is _LOGGED_OUT:
            return self.logout(agent_id, now)
        return self.pause(agent_id, reason or "other", now)

    def _logged_in(self, agent_id: str) -> None:
        if self._agent(agent_id).status is _LOGGED_OUT:
            raise IllegalTransition(f"agent {agent_id} is logged out; log in first (`ivr agents login {agent_id}`)",
                                    details={"agent": agent_id})

    def logout(self, agent_id: str, now: datetime) -> list[Decision]:
        out = self._agent_to(agent_id, _LOGGED_OUT, now, "logout")
        out += self._fail_unservable(now)
        return out

    def _agent_to(self, agent_id: str, to: Status, now: datetime, cause: str, *, reason: str | None = None,
                  catch_up: bool = True) -> list[Decision]:
        # catch_up=False from inside a timer: timers are already being applied in order, running them again
        # here would let a later timer act before this one finishes (a ring-out and a timeout in one tick).
        out: list[Decision] = self._due(now) if catch_up else []
        old = self.agents.get(agent_id)
        if old is None:
            old = self._agent(agent_id)  # raises UnknownAgent
        if old[1] is _RESERVED:  # AgentState.status
            # Only the router moves a ringing agent (answer, ring-no-answer, caller gone): a pause or logout
            # now would leave the call's reservation behind and let the agent be offered a second call.
            raise IllegalTransition(f"agent {agent_id} has call {old.call_id} ringing; answer it or let it ring out first",
                                    details={"agent": agent_id, "from": old.status.value, "to": to.value})
        new = transition(old, to, now, reason=reason)
        if self.after_call_to and cause != "after-call":
            # An explicit change replaces "not ready after this call", once it is allowed: a refused change
            # changes nothing, the request included.
            self.after_call_to.pop(agent_id, None)
        out.append(self._set_agent(new, old, cause))
        if to is _READY:  # (new.status is `to`)
            out += self._match_agent(agent_id, now)
        return out

    def _agent(self, agent_id: str) -> AgentState:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise UnknownAgent(f"no agent {agent_id!r} in the roster; check agents.yaml "
                               "(ids are case-sensitive)", details={"agent": agent_id}) from None

    def _set_agent(self, new: AgentState, old: AgentState, cause: str) -> AgentChanged:
        """Store the state and keep the ready index in step with it."""
        self.agents[new[0]] = new  # by position: a NamedTuple attribute is a descriptor call (every state change)
        was, now = old[1], new[1]
        if (was is _LOGGED_OUT) is not (now is _LOGGED_OUT):
            self._staff_version += 1
        if was is _READY:
            self._index_remove(old)
        if now is _READY:
            self._index_add(new)
        return _make(AgentChanged, (new, _STATUS_VALUE[was], cause))

    def _index_key(self, st: AgentState) -> tuple[float, int, str]:
        """Where a ready agent sorts: longest idle first, then roster order.

        Remembered with the ``idle_since`` it was made from, so taking the agent out again (every offer
        does) finds the key without converting the datetime a second time.
        """
        idle_since = st.idle_since
        kept = self._ready_keys.get(st.agent_id)
        if kept is not None and kept[0] is idle_since:
            return kept[1]
        key = (self._stamp(idle_since) if idle_since is not None else 0.0, self.order[st.agent_id], st.agent_id)
        self._ready_keys[st.agent_id] = (idle_since, key)
        return key

    def _index_add(self, st: AgentState) -> None:
        aid, idle_since = st[0], st[5]  # AgentState.agent_id, .idle_since
        kept = self._ready_keys.get(aid)
        if kept is not None and kept[0] is idle_since:
            key = kept[1]
        elif idle_since is not None and idle_since is self._stamp_at:  # `_index_key` with `_stamp` inlined:
            key = (self._stamp_ts, self.order[aid], aid)            # made ready "now", the usual case
            self._ready_keys[aid] = (idle_since, key)
        else:
            key = self._index_key(st)
        bisect.insort(self._ready, key)
        for skill in self._caps[aid][0]:
            bisect.insort(self._ready_by_skill.setdefault(skill, []), key)

    def _index_remove(self, st: AgentState) -> None:
        # `_index_key`'s remembered key and `_remove`, inlined: every offer takes its agent out of these lists.
        aid = st[0]  # AgentState.agent_id
        kept = self._ready_keys.get(aid)
        key = kept[1] if kept is not None and kept[0] is st[5] else self._index_key(st)  # st[5]: idle_since
        lst = self._ready
        i = bisect_left(lst, key)
        if i < len(lst) and lst[i] == key:
            del lst[i]
        else:
            _remove(lst, key)  # raises: the index and the states went out of step
        by_skill = self._ready_by_skill
        for skill in self._caps[aid][0]:
            lst = by_skill[skill]
            i = bisect_left(lst, key)
            if i < len(lst) and lst[i] == key:
                del lst[i]
            else:
                _remove(lst, key)

    # ================================================================== calls

    def enqueue(self, call_id: str, queue: str, now: datetime, *, skills: Iterable[tuple[str, int]] = (),
                language: str | None = None, priority: int = 0, since: datetime | None = None,
                preferred_agent: str | None = None, callback_number: str | None = None) -> list[Decision]:
        """A call joins ``queue``. ``since`` keeps an earlier place in line (a callback for someone who waited)."""
        spec = self.queues.get(queue)
        if spec is None:
            spec = self._queue(queue)  # raises UnknownQueue
        due = self._due(now)
        if call_id in self.calls:
            raise IvrError(f"call {call_id} is already waiting in {self.calls[call_id].queue}",
                           details={"call": call_id})
        if spec.max_length is not None and len(self.lines[queue]) >= spec.max_length:
            return due + [QueueFailed(call_id, queue, "full"), CallLeft(call_id, queue, "full", now)]
        # Every field by position (offered_to last, None): skips WaitingCall's Python-level __new__.
        call = _make(WaitingCall, (call_id, queue, since or now, next(self._seq), priority, tuple(sorted(skills)),
                                   language, preferred_agent, callback_number, now, None))
        if spec.when_nobody_logged_in == "fail" and not self._anyone_could_serve(call):
            return due + [QueueFailed(call_id, queue, "no_agents"), CallLeft(call_id, queue, "no_agents", now)]
        out: list[Decision] = due + [self._insert(call, now)]
        self._arm_call_timers(call, now)
        out += self._match_call(call_id, now)
        return out

    def _queue(self, queue: str) -> QueueSpec:
        try:
            return self.queues[queue]
        except KeyError:
            raise UnknownQueue(f"no queue {queue!r}; define it in queues.yaml (queues: {', '.join(self.queues)})",
                               details={"queue": queue}) from None

    def _insert(self, call: WaitingCall, now: datetime) -> CallQueued:
        call_id, since = call[0], call[2]
        self.calls[call_id] = call
        # A call's place in line does not change while it waits in one queue (an offer only sets
        # `offered_to`; overflow takes it out and inserts it again): its key is worked out once.
        # (`_line_key`, inlined; `since` is usually the `now` just converted.)
        key = self._line_keys[call_id] = (-call[4], self._stamp_ts if since is self._stamp_at else since.timestamp(),
                                          call[3], call_id)
        bisect.insort(self.lines[call[1]], key)
        self.requirements(call, now)  # files the call under a skill it needs
        return _make(CallQueued, (call,))

    def _remove_call(self, call_id: str) -> WaitingCall:
        call = self.calls.pop(call_id)
        key = self._line_keys.pop(call_id)
        _remove(self.lines[call[1]], key)  # WaitingCall.queue
        if self.missed_by:
            self.missed_by.pop(call_id, None)
        old = self._req.pop(call_id, None)
        if old is not None:
            skills = old[3][0]
            _remove(self._by_skill[skills[0][0] if skills else ""], key)  # `_filed_under`, inlined
        return call

    def answered(self, call_id: str, now: datetime, *, agent_id: str | None = None,
                 offered_at: datetime | None = None) -> list[Decision]:
        """The reserved agent picked up.

        ``agent_id`` / ``offered_at`` name the offer the phone answered: if the router has since moved the call
        to another offer (its ring timeout fired first), the answer is refused rather than credited to the
        wrong agent.
        """
        out: list[Decision] = self._due(now)
        res = self.reservations.get(call_id)
        if res is None or (agent_id is not None and res[1] != agent_id) or \
                (offered_at is not None and res[2] != offered_at):  # `_reservation`'s checks, inlined
            res = self._reservation(call_id, agent_id, offered_at)  # raises UnknownCall
        aid = res[1]  # Reservation.agent_id
        agent = self.agents[aid]
        new = transition(agent, _ON_CALL, now)
        out.append(self._set_agent(new, agent, "answered"))
        queue = self._remove_call(call_id)[1]  # WaitingCall.queue
        del self.reservations[call_id]  # `_drop_reservation`, inlined
        self.reserved_agent.pop(aid, None)
        self.call_started[aid] = (queue, now)
        out.append(_make(CallLeft, (call_id, queue, "answered", now)))
        return out

    def no_answer(self, call_id: str, now: datetime, *, agent_id: str | None = None,
                  offered_at: datetime | None = None) -> list[Decision]:
        """The offer rang out (or the agent declined): the call keeps its place; the agent may be paused.

        With ``agent_id`` / ``offered_at``, an offer the router already ended (its own ring timeout and
        Asterisk's both report one ring-out) is refused, so one ring-out is never counted twice.
        """
        due = self._due(now)
        self._reservation(call_id, agent_id, offered_at)
        return due + self._no_answer(call_id, now)

    def _no_answer(self, call_id: str, now: datetime) -> list[Decision]:
        res = self._reservation(call_id)
        call = self.calls[call_id]
        spec = self.queues[call.queue]
        self._drop_reservation(call_id)
        agent = self.agents[res.agent_id]
        new = missed_offer(agent, now, spec.max_no_answer)
        out: list[Decision] = [self._set_agent(new, agent, "no-answer")]
        if self.after_call_to and res.agent_id in self.after_call_to:
            # Freed from the ring: the pause or logout they asked for, before the call is matched again
            # (the missed-ring fallback could otherwise hand it straight back to them).
            out += self._apply_after_call(res.agent_id, now)
            new = self.agents[res.agent_id]
        self.calls[call_id] = _offered_to(call, None)
        self.missed_by.setdefault(call_id, set()).add(res.agent_id)
        entered = call.entered_queue_at or call.since
        waited_here = (now - entered).total_seconds()
        if spec.max_wait is not None and waited_here >= spec.max_wait:
            # the longest wait came due while it rang: it wins now, instead of another ring
            return out + self._leave(self.calls[call_id], now, "timeout") + self._match_agent_if_ready(new, now)
        if spec.overflow is not None and waited_here >= spec.overflow.after:
            out += self._fire("overflow", call_id, call.queue, now)
            return out + self._match_agent_if_ready(new, now)
        out.append(CallQueued(self.calls[call_id]))
        out += self._match_call(call_id, now)  # another agent first...
        if new.status is _READY and new.agent_id not in self.reserved_agent:
            out += self._match_agent(new.agent_id, now)  # ...then this agent may take some other call
        return out

    def _match_agent_if_ready(self, st: AgentState, now: datetime) -> list[Decision]:
        if st.status is _READY and st.agent_id not in self.reserved_agent:
            return self._match_agent(st.agent_id, now)
        return []

    def abandon(self, call_id: str, now: datetime, *, why: str = "abandoned") -> list[Decision]:
        """The caller hung up (``abandoned``) or left the queue by a key (``dequeued``)."""
        out: list[Decision] = self._due(now)
        if call_id not in self.calls:
            raise UnknownCall(f"call {call_id} is not waiting in any queue", details={"call": call_id})
        res = self.reservations.get(call_id)
        call = self._remove_call(call_id)
        if res is not None:
            self._drop_reservation(call_id)
            out += self._release(res.agent_id, now)  # not the agent's fault: no miss counted
        out.append(CallLeft(call_id, call.queue, why, now))
        if res is not None:
            out += self._match_agent(res.agent_id, now)
        return out

    def call_ended(self, agent_id: str, now: datetime) -> list[Decision]:
        """The conversation ended: the agent goes to wrap-up for the queue's wrap-up time."""
        out: list[Decision] = self._due(now)
        agent = self.agents.get(agent_id)
        if agent is None:
            agent = self._agent(agent_id)  # raises UnknownAgent
        new = transition(agent, _WRAP_UP, now)  # refuses before anything changes
        queue, started = self.call_started.pop(agent_id, (None, now))
        spec = self.queues.get(queue)  # type: ignore[arg-type]
        # A call the router did not see answered (a conversation adopted after an engine restart) has no
        # known queue: the longest wrap-up of any queue, as `restore` gives an agent found in wrap-up.
        wrap = spec.wrap_up if spec is not None else self._longest_wrap()
        out.append(self._set_agent(new, agent, "call-ended"))
        if spec is not None:
            talk = (now - started).total_seconds()
            self.handle_seconds[queue] = (1 - EWMA) * self.handle_seconds[queue] + EWMA * (talk + wrap)  # type: ignore[index]
        if wrap <= 0:
            # No wrap-up: the agent is free the moment the call ends, in this same step. (A timer due "now"
            # would leave them in wrap-up until the adapter's next tick, and cost every adapter a round trip.)
            # Timers due at this very instant (a caller's max wait) go first, as they did behind that tick.
            return out + self._due(now, inclusive=True) + self._end_wrap(agent_id, now)
        td = self._durations.get(wrap)  # `_seconds` and `_arm`, inlined (once per call)
        end = now + (td if td is not None else self._seconds(wrap))
        if self._tz is None:
            self._tz = end.tzinfo
        heapq.heappush(self._timers, (end.timestamp(), next(self._tseq), "wrap", agent_id, now))  # new.since is `now`
        return out

    # ================================================================== time

    def tick(self, now: datetime) -> list[Decision]:
        """Apply everything due by ``now``: relaxation steps, ring timeouts, wrap-up ends, max wait, overflow."""
        return self._due(now, inclusive=True)

    def _due(self, now: datetime, inclusive: bool = False) -> list[Decision]:
        """Fire timers due before ``now`` (or at it): every event first catches up with time, so the
        router never decides on requirements a step boundary has already relaxed."""
        timers = self._timers
        if not timers:
            return []
        # `_stamp` inlined: every public call starts here.
        if now is self._stamp_at:
            limit = self._stamp_ts
        else:
            limit = self._stamp(now)
        if timers[0][0] > limit:
            return []  # the usual case: nothing due
        out: list[Decision] = []
        while timers and (timers[0][0] < limit or (inclusive and timers[0][0] == limit)):
            _, _, kind, key, token = heapq.heappop(timers)
            out += self._fire(kind, key, token, now)
        return out

    def _stamp(self, at: datetime) -> float:
        """``at.timestamp()``, remembered for the last datetime converted.

        One event hands the same ``now`` to every step (the timers, the requirements, the ready index,
        the explanation), and each conversion costs about as much as the step it serves. Datetimes are
        immutable and the one remembered is held here, so the identity check cannot be fooled.
        """
        if at is self._stamp_at:
            return self._stamp_ts
        ts = at.timestamp()
        self._stamp_at, self._stamp_ts = at, ts
        return ts

    def _seconds(self, seconds: float) -> timedelta:
        """``timedelta(seconds=seconds)``, kept per value: building one from a float costs about 1 µs, and
        every offer, wrap-up and new call needs one for the same few queue settings."""
        td = self._durations.get(seconds)
        if td is None:
            td = self._durations[seconds] = timedelta(seconds=seconds)
        return td

    def next_wakeup(self) -> datetime | None:
        """When ``tick`` next has something to do (adapters schedule a timer for it)."""
        ts = self.next_wakeup_ts()
        return datetime.fromtimestamp(ts, tz=self._tz) if ts is not None else None

    def next_wakeup_ts(self) -> float | None:
        """``next_wakeup`` as a POSIX timestamp, without building a datetime (the day simulator asks after
        every decision). ``tick(datetime.fromtimestamp(ts, timezone.utc))`` fires exactly that timer.

        Timers that would do nothing (the ring timeout of an offer already answered, the wrap-up end of
        an agent who paused, the step change of a call that left) are dropped first: timers are never
        cancelled when their reason goes away, and a wake-up for nothing costs an adapter a whole tick.
        """
        timers = self._timers
        reservations, agents = self.reservations, self.agents
        while timers:
            ts, _, kind, key, token = timers[0]
            # `_stale` inlined for the two timers every call arms (asked after every decision of the day simulator)
            if kind == "ring":
                res = reservations.get(key)
                stale = res is None or res[2] != token  # Reservation.offered_at
            elif kind == "wrap":
                agent = agents.get(key)
                stale = agent is None or agent[1] is not _WRAP_UP or agent[2] != token  # AgentState.status, .since
            else:
                stale = self._stale(kind, key, token)
            if not stale:
                return ts
            heapq.heappop(timers)
        return None

    def _stale(self, kind: str, key: str, token: Any) -> bool:
        """Would firing this timer change nothing? (Mirrors the guards at the top of :meth:`_fire`.)"""
        if kind == "ring":
            res = self.reservations.get(key)
            return res is None or res.offered_at != token
        if kind == "wrap":
            agent = self.agents.get(key)
            return agent is None or agent.status is not _WRAP_UP or agent.since != token
        call = self.calls.get(key)
        if call is None:
            return True
        return kind in ("max_wait", "overflow") and call.queue != token

    _tz = None  # set from the first datetime seen

    def _arm(self, at: datetime, kind: str, key: str, token: Any) -> None:
        if self._tz is None:
            self._tz = at.tzinfo
        heapq.heappush(self._timers, (at.timestamp(), next(self._tseq), kind, key, token))

    def _arm_call_timers(self, call: WaitingCall, now: datetime) -> None:
        spec = self.queues[call.queue]
        start = 0.0
        seconds = self._seconds
        for step in spec.steps:
            if step.preferred_agent and call.preferred_agent:
                self._arm(call.since + seconds(start + step.preferred_agent), "rematch", call.call_id, None)
            if step.until is not None:
                self._arm(call.since + seconds(step.until), "rematch", call.call_id, None)
                start = step.until
        entered = call.entered_queue_at or now
        if spec.max_wait is not None:
            self._arm(entered + seconds(spec.max_wait), "max_wait", call.call_id, call.queue)
        if spec.overflow is not None:
            self._arm(entered + seconds(spec.overflow.after), "overflow", call.call_id, call.queue)

    def _release(self, agent_id: str, now: datetime) -> list[Decision]:
        """A ringing agent whose call went away (the caller left, or its limit came): ready, or straight to
        the pause they asked for (no zero-length ready in the event log). A pending logout is carried out
        by ``_match_agent``: a ringing agent cannot log out directly."""
        agent = self.agents[agent_id]
        after = self.after_call_to.get(agent_id) if self.after_call_to else None
        if after is not None and after[0] is _NOT_READY:
            del self.after_call_to[agent_id]
            return [self._set_agent(transition(agent, _NOT_READY, now, reason=after[1]), agent, "after-call")]
        return [self._set_agent(transition(agent, _READY, now), agent, "caller-left")]

    def _apply_after_call(self, agent_id: str, now: datetime) -> list[Decision]:
        """The agent is no longer busy: carry out their pending "after this call" request, if any.

        A pause asked for by an agent whose phone has just gone offline is dropped: offline says why they
        cannot take calls, and presence brings them back when the phone registers again.
        """
        after = self.after_call_to.pop(agent_id, None) if self.after_call_to else None
        if after is None:
            return []
        to, reason = after
        st = self.agents[agent_id]
        if to is _NOT_READY and st.status is _NOT_READY and st.reason == "offline":
            return []
        out = self._agent_to(agent_id, to, now, "after-call", reason=reason, catch_up=False)
        return out + self._fail_unservable(now) if to is _LOGGED_OUT else out

    def _longest_wrap(self) -> float:
        return max((q.wrap_up for q in self.queues.values()), default=0.0)

    def _end_wrap(self, agent_id: str, now: datetime) -> list[Decision]:
        """Wrap-up is over: ready for the next call, or the pause or logout asked for (never ready in between)."""
        if self.after_call_to and agent_id in self.after_call_to:
            return self._apply_after_call(agent_id, now)
        return self._agent_to(agent_id, _READY, now, "wrap-up-ended", catch_up=False)

    def _fire(self, kind: str, key: str, token: Any, now: datetime) -> list[Decision]:
        if kind == "ring":
            res = self.reservations.get(key)
            if res is not None and res.offered_at == token:
                return self._no_answer(key, now)
            return []
        if kind == "wrap":
            agent = self.agents.get(key)
            if agent is not None and agent.status is _WRAP_UP and agent.since == token:  # not a stale wrap-up
                return self._end_wrap(key, now)
            return []
        call = self.calls.get(key)
        if call is None:
            return []
        if kind == "rematch":
            return self._match_call(key, now) if call.offered_to is None else []
        if kind in ("max_wait", "overflow") and call.queue == token and call.offered_to is not None:
            # Ringing: let the ring play out (the agent may be picking up); look again when it ends.
            res = self.reservations.get(key)
            if res is not None:
                self._arm(res.expires_at + timedelta(microseconds=1), kind, key, token)
            return []
        if kind == "max_wait" and call.queue == token:
            return self._leave(call, now, "timeout")
        if kind == "overflow" and call.queue == token:
            to = self.queues[call.queue].overflow.to  # type: ignore[union-attr]
            target = self.queues[to]
            if target.max_length is not None and len(self.lines[to]) >= target.max_length:
                return []  # the overflow queue is full: the call stays where it is, in its place
            self._remove_call(call.call_id)
            # The new queue's own requirements apply (the tree's were for the first queue); language and place stay.
            moved = call._replace(queue=to, entered_queue_at=now, skills=())
            out: list[Decision] = [Overflowed(call.call_id, call.queue, to), self._insert(moved, now)]
            self._arm_call_timers(moved, now)
            return out + self._match_call(call.call_id, now)
        return []

    def _leave(self, call: WaitingCall, now: datetime, outcome: str) -> list[Decision]:
        out: list[Decision] = []
        res = self.reservations.get(call.call_id)
        if res is not None:  # ringing when the limit hit: let the agent go without a miss
            self._drop_reservation(call.call_id)
            out += self._release(res.agent_id, now)
        self._remove_call(call.call_id)
        out += [QueueFailed(call.call_id, call.queue, outcome), CallLeft(call.call_id, call.queue, outcome, now)]
        if res is not None:
            out += self._match_agent(res.agent_id, now)
        return out

    # ================================================================== matching

    def requirements(self, call: WaitingCall, now: datetime) -> tuple[tuple[tuple[str, int], ...], str | None, int, bool]:
        """(skills, language, step number from 1, preferred-agent-only) for ``call`` at ``now``.

        Cached until the call's next step boundary: matching asks this for many calls per decision.
        """
        call_id = call[0]  # by position: NamedTuple attributes are descriptor calls
        ts = self._stamp_ts if now is self._stamp_at else self._stamp(now)
        hit = self._req.get(call_id)
        if hit is not None and hit[0] <= ts < hit[1] and hit[2] == call[1]:
            return hit[3]  # type: ignore[return-value]
        req, start, valid_until = self._compute_requirements(call, now)
        if call_id in self.calls:
            key = self._line_keys[call_id]
            skills = req[0]
            filed = skills[0][0] if skills else ""  # `_filed_under`, inlined
            old = self._req.get(call_id)
            if old is None or _filed_under(old[3][0]) != filed:  # still under the same skill: it stays put
                if old is not None:
                    _remove(self._by_skill[_filed_under(old[3][0])], key)
                bisect.insort(self._by_skill.setdefault(filed, []), key)
            self._req[call_id] = (start, valid_until, call[1], req)
        return req

    def _compute_requirements(self, call: WaitingCall, now: datetime) -> tuple[Any, float, float]:
        """The requirements, when the current step began (ts) and until when they hold (ts)."""
        # Fields by position (NamedTuple attributes are descriptor calls): queue, since, skills, preferred_agent.
        queue, since_at, own, preferred = call[1], call[2], call[5], call[7]
        spec = self.queues[queue]
        steps = spec.steps
        waited = (now - since_at).total_seconds()
        start = 0.0
        idx = len(steps) - 1
        for i, step in enumerate(steps):
            if step.until is None or waited < step.until:
                idx = i
                break
            start = step.until
        step = steps[idx]
        hit = self._step_reqs.get((queue, idx, own))  # `_step_skills`' cache check, inlined
        skills = hit[1] if hit is not None and hit[0] is spec else self._step_skills(queue, spec, idx, own)
        language = call[6] if step.language == "caller" else None
        # `_stamp` inlined: a new call's place in line is usually the `now` just converted
        since = self._stamp_ts if since_at is self._stamp_at else since_at.timestamp()
        lo, hi = since + start, since + step.until if step.until is not None else float("inf")
        preferred_only = False
        if step.preferred_agent and preferred:
            window_end = since + start + step.preferred_agent
            preferred_only = waited - start < step.preferred_agent
            lo, hi = (lo, min(hi, window_end)) if preferred_only else (max(lo, window_end), hi)
        return (skills, language, idx + 1, preferred_only), lo, hi

    def _step_skills(self, queue: str, spec: QueueSpec, idx: int,
                     own: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        """The skills step ``idx`` of ``spec`` requires of a call whose own requirements are ``own``.

        They depend on nothing else, and a centre has few combinations, so each is worked out (dicts
        built and sorted) once; the entry remembers the spec it came from, so a replaced queue spec
        is never answered from the old one.
        """
        key = (queue, idx, own)
        hit = self._step_reqs.get(key)
        if hit is not None and hit[0] is spec:
            return hit[1]
        step = spec.steps[idx]
        base = dict(own) if own else dict(spec.skills)
        if step.skills is not None:
            base = dict(step.skills)
        if step.relax == "all":
            base = {}
        elif step.relax:
            base = {k: max(1, v - step.relax) for k, v in base.items()}
        skills = tuple(sorted(base.items()))
        self._step_reqs[key] = (spec, skills)
        return skills

    def _eligible(self, agent_id: str, skills: tuple[tuple[str, int], ...], language: str | None) -> bool:
        have, spoken = self._caps[agent_id]
        for skill, level in skills:
            if have.get(skill, 0) < level:
                return False
        return language is None or language in spoken

    def _anyone_could_serve(self, call: WaitingCall) -> bool:
        """Is any logged-in agent eligible at the queue's most relaxed step? (Otherwise: no_agents.)

        Remembered per (queue, the call's skills, language) until someone logs in or out: every enqueue
        asks, and a large centre would otherwise scan its whole roster for each call.
        """
        key = (call.queue, call.skills, call.language)
        hit = self._servable.get(key)
        if hit is not None and hit[0] == self._staff_version:
            return hit[1]
        far = call.since + timedelta(days=3650)
        (skills, language, _, _), _, _ = self._compute_requirements(call, far)
        ok = any(st.status is not _LOGGED_OUT and self._eligible(aid, skills, language)
                 for aid, st in self.agents.items())
        self._servable[key] = (self._staff_version, ok)
        return ok

    def _fail_unservable(self, now: datetime) -> list[Decision]:
        out: list[Decision] = []
        for call in list(self.calls.values()):
            if self.queues[call.queue].when_nobody_logged_in == "fail" and call.offered_to is None \
                    and not self._anyone_could_serve(call):
                out += self._leave(call, now, "no_agents")
        return out

    def _match_call(self, call_id: str, now: datetime) -> list[Decision]:
        """Find an agent for one waiting call; offer it if there is one."""
        call = self.calls.get(call_id)
        if call is None or call[-1] is not None:  # WaitingCall.offered_to
            return []
        # `requirements`' cache check, inlined: the call was usually filed a moment ago (enqueue) at this `now`.
        hit = self._req.get(call_id)
        if hit is not None and now is self._stamp_at and hit[0] <= self._stamp_ts < hit[1] and hit[2] == call[1]:
            req = hit[3]
        else:
            req = self.requirements(call, now)
        skills, language, step, preferred_only = req
        pick = self._pick_agent(call, skills, language, preferred_only, now)
        if pick is None:
            return []
        agent_id, rule, eligible = pick
        return self._offer(call, agent_id, now, step, skills, language, rule, eligible)

    def _pick_agent(self, call: WaitingCall, skills: tuple[tuple[str, int], ...], language: str | None,
                    preferred_only: bool, now: datetime) -> tuple[str, str, int] | None:
        if preferred_only and self._preferred_could_take(call, skills, language):
            pid = call.preferred_agent or ""
            if self.agents[pid].status is _READY:
                return pid, "preferred agent (the patient's last agent)", 1
            return None  # they are logged in and able: the call waits for them until the window ends
        # Candidates: ready agents holding the rarest required skill, in longest-idle order.
        pool = self._ready
        for skill, _ in skills:
            lst = self._ready_by_skill.get(skill)
            if not lst:
                return None
            if len(lst) < len(pool):
                pool = lst
        strategy = self.queues[call.queue].strategy
        missed = self.missed_by.get(call.call_id, ()) if self.missed_by else ()
        if strategy == "longest_idle":
            fallback = None
            caps = self._caps
            for idle_ts, _, aid in pool:
                # `_eligible`, inlined: the longest idle agent usually qualifies at once, so this runs once per call
                have, spoken = caps[aid]
                for skill, level in skills:
                    if have.get(skill, 0) < level:
                        break
                else:
                    if language is not None and language not in spoken:
                        continue
                    if aid in missed:
                        fallback = fallback or (aid, idle_ts)
                        continue  # let someone else try first: this agent just let it ring out
                    return aid, f"longest idle (idle {self._stamp(now) - idle_ts:.0f} s)", -1
            if fallback is not None:
                return fallback[0], f"longest idle, offered again after a missed ring (idle {self._stamp(now) - fallback[1]:.0f} s)", -1
            return None
        eligible = [aid for _, _, aid in pool if self._eligible(aid, skills, language)]
        if not eligible:
            return None
        fresh = [a for a in eligible if a not in missed] or eligible
        if strategy == "most_skilled":
            def score(a: str) -> int:
                have = self.roster[a].skills
                return sum(have.get(s, 0) for s, _ in skills) if skills else sum(have.values())
            best = max(fresh, key=lambda a: (score(a), -_ts(self.agents[a].idle_since)))
            return best, f"most skilled (score {score(best)})", len(eligible)
        if strategy == "fewest_calls":
            best = min(fresh, key=lambda a: (self.agents[a].calls, _ts(self.agents[a].idle_since)))
            return best, f"fewest calls ({self.agents[best].calls} since login)", len(eligible)
        # round robin: the next eligible agent in roster order after the last one picked for this queue
        n = len(self.order)
        start = self.rr_next[call.queue]
        best = min(fresh, key=lambda a: (self.order[a] - start) % n)
        self.rr_next[call.queue] = (self.order[best] + 1) % n
        return best, "round robin", len(eligible)

    def _match_agent(self, agent_id: str, now: datetime) -> list[Decision]:
        """A ready agent takes the best call it can serve across all queues: priority first, then longest wait."""
        st = self.agents[agent_id]
        if st[1] is not _READY:  # AgentState.status
            return []
        if self.after_call_to and agent_id in self.after_call_to:  # freed from a ring: the request comes first
            return self._apply_after_call(agent_id, now)
        lines = self._agent_lines[agent_id]
        if not any(lines):
            return []  # nobody waits for this agent's skills (the usual case when agents outnumber callers)
        best: WaitingCall | None = None
        best_key: tuple[int, float, int, str] | None = None  # whole line keys compare like their first three parts
        best_req: Any = None
        have, spoken = self._caps[agent_id]
        ts = self._stamp(now)
        cache, calls, missed_by = self._req, self.calls, self.missed_by
        for line in lines:
            if not line:
                continue
            # A copy: refreshing a stale requirement below may refile the call into another list mid-scan.
            for key in tuple(line):  # the hot loop: cache check and eligibility are inlined, nothing is sliced
                if best_key is not None and key >= best_key:
                    break  # nothing further down this list can beat the best found
                call = calls[key[3]]
                if call.offered_to is not None:
                    continue
                hit = cache.get(key[3])
                if hit is not None and hit[0] <= ts < hit[1]:
                    req = hit[3]
                else:
                    req = self.requirements(call, now)
                if req[3] and call.preferred_agent != agent_id and self._preferred_could_take(call, req[0], req[1]):
                    continue
                language = req[1]
                if language is not None and language not in spoken:
                    continue
                for sk, lvl in req[0]:
                    if have.get(sk, 0) < lvl:
                        break
                else:
                    if missed_by and agent_id in missed_by.get(key[3], ()) and self._someone_else(agent_id, req[0], req[1]):
                        continue
                    best, best_key, best_req = call, key, req
                    break
        if best is None:
            return []
        skills, language, step, preferred_only = best_req
        rule = "preferred agent (the patient's last agent)" if preferred_only else \
            "agent became free: highest priority, then longest wait, across its queues"
        return self._offer(best, agent_id, now, step, skills, language, rule, -1)

    def _preferred_could_take(self, call: WaitingCall, skills: Any, language: str | None) -> bool:
        """The preferred-agent window holds a call only for an agent who is logged in and eligible."""
        pid = call.preferred_agent
        st = self.agents.get(pid or "")
        return st is not None and st.status is not _LOGGED_OUT and self._eligible(pid, skills, language)  # type: ignore[arg-type]

    def _someone_else(self, agent_id: str, skills: Any, language: str | None) -> bool:
        return any(aid != agent_id and self._eligible(aid, skills, language) for _, _, aid in self._ready)

    def _offer(self, call: WaitingCall, agent_id: str, now: datetime, step: int, skills: Any, language: str | None,
               rule: str, eligible: int) -> list[Decision]:
        call_id, queue = call[0], call[1]  # by position: NamedTuple attributes are descriptor calls
        spec = self.queues[queue]
        agent = self.agents[agent_id]
        new = transition(agent, _RESERVED, now, call_id=call_id)
        ring = spec.ring_timeout
        td = self._durations.get(ring)  # `_seconds`, inlined (once per offer)
        expires = now + (td if td is not None else self._seconds(ring))
        self.reservations[call_id] = _make(Reservation, (call_id, agent_id, now, expires))
        self.reserved_agent[agent_id] = call_id
        self.calls[call_id] = _make(WaitingCall, (*call[:-1], agent_id))  # `_offered_to`, inlined
        if self._tz is None:  # `_arm`, inlined
            self._tz = expires.tzinfo
        heapq.heappush(self._timers, (expires.timestamp(), next(self._tseq), "ring", call_id, now))
        missed = self.missed_by.get(call_id)
        # The line key holds `call.since.timestamp()` already (an offered call is always waiting in a line).
        waited = round((self._stamp_ts if now is self._stamp_at else self._stamp(now)) - self._line_keys[call_id][1], 1)
        # Kept cheap: built on every offer, carried by the Offer to the store (`ivr queues explain` reads it
        # there). The router keeps no copy: a live engine would hold one per call for as long as it runs.
        explanation = {
            "call": call_id, "queue": queue, "agent": agent_id, "at": now,
            "waited": waited, "priority": call.priority,
            "step": step, "skills": dict(skills), "language": language or "any",
            "strategy": spec.strategy, "rule": rule,
            "eligible_ready_agents": eligible if eligible >= 0 else None,
            "missed_by": sorted(missed) if missed else [],
        }
        return [self._set_agent(new, agent, "offered"), _make(Offer, (call_id, agent_id, queue, expires, explanation))]

    def _reservation(self, call_id: str, agent_id: str | None = None,
                     offered_at: datetime | None = None) -> Reservation:
        res = self.reservations.get(call_id)
        if res is None:
            raise UnknownCall(f"call {call_id} is not ringing any agent", details={"call": call_id})
        if (agent_id is not None and res.agent_id != agent_id) or (offered_at is not None and res.offered_at != offered_at):
            raise UnknownCall(f"call {call_id} is no longer offered to {agent_id or res.agent_id} as it was "
                              "(the offer ended and a new one was made)", details={"call": call_id})
        return res

    def _drop_reservation(self, call_id: str) -> None:
        res = self.reservations.pop(call_id)
        self.reserved_agent.pop(res.agent_id, None)

    # ================================================================== announcements and restore

    def position(self, call_id: str) -> int:
        """1 for the next caller to be served in this queue."""
        call = self.calls[call_id]
        key = _line_key(call)
        return sum(1 for k in self.lines[call.queue] if k < key and self.calls[k[3]].offered_to is None) + 1

    def estimated_wait(self, call_id: str, now: datetime) -> float:
        """Seconds until an agent is likely free for this caller.

        Walks the queue's steps from the current one: at the first step where some logged-in, not
        paused agent is eligible, the wait is the time until that step plus, if the callers ahead
        outnumber the ready eligible agents, ``(ahead - ready) x average handle time / eligible agents``
        (the queue's running average of talk + wrap-up).
        """
        call = self.calls[call_id]
        spec = self.queues[call.queue]
        waited = (now - call.since).total_seconds()
        ahead = self.position(call_id)
        start = 0.0
        for step in spec.steps:
            end = step.until if step.until is not None else float("inf")
            if end > waited:
                at = call.since + timedelta(seconds=max(start, waited))
                (skills, language, _, _), _, _ = self._compute_requirements(call, at)
                active = ready = 0
                for aid, st in self.agents.items():
                    if st.status in (_LOGGED_OUT, _NOT_READY) or not self._eligible(aid, skills, language):
                        continue
                    active += 1
                    ready += st.status is _READY
                if active:
                    delay = max(0.0, start - waited)
                    if ready >= ahead:
                        return delay
                    return delay + (ahead - ready) * self.handle_seconds[call.queue] / active
            start = end
        return float("inf")

    def keep_memory_of(self, old: Router) -> None:
        """Take over what only lives in memory from ``old`` (a re-sync after a failed write, not a restart).

        The store holds agents, waiting calls and reservations; it does not hold a pending "not ready
        after this call", the queue each agent's current call came from (its wrap-up length), who let a
        waiting call ring out, the handle-time averages behind wait estimates, or round-robin positions.
        Dropping them on a re-sync would give an agent on a call the longest wrap-up and forget a break.
        """
        busy = (_RESERVED, _ON_CALL, _WRAP_UP)
        self.after_call_to = {a: req for a, req in old.after_call_to.items()
                              if a in self.agents and self.agents[a].status in busy}
        self.call_started = {a: v for a, v in old.call_started.items()
                             if a in self.agents and self.agents[a].status is _ON_CALL}
        self.missed_by = {c: set(agents) for c, agents in old.missed_by.items() if c in self.calls}
        self.handle_seconds.update({q: v for q, v in old.handle_seconds.items() if q in self.handle_seconds})
        self.rr_next.update({q: v for q, v in old.rr_next.items() if q in self.rr_next})

    def restore(self, agents: dict[str, AgentState], waiting: Iterable[WaitingCall],
                reservations: Iterable[Reservation], now: datetime, next_seq: int = 0, *,
                settle: bool = True) -> list[Decision]:
        """Rebuild after a restart from the store's snapshot, then settle what was in flight.

        Calls come back in the same order with the same place in line. A reservation that was ringing
        when the process died cannot be answered any more: the call returns to its place and the agent
        to ready, with no miss counted (it was not their fault); agents on a call stay on it.
        """
        unknown = [a for a in agents if a not in self.roster]
        out: list[Decision] = []
        for aid, st in agents.items():
            if aid in unknown:
                continue
            old = self.agents[aid]
            self.agents[aid] = st
            self._staff_version += 1
            if old.status is _READY:
                self._index_remove(old)
            if st.status is _READY:
                self._index_add(st)
        self._seq = itertools.count(max([next_seq] + [c.seq + 1 for c in waiting]))
        for call in sorted(waiting, key=_line_key):
            if call.queue not in self.queues:
                out += [QueueFailed(call.call_id, call.queue, "closed"), CallLeft(call.call_id, call.queue, "closed", now)]
                continue
            self._insert(call._replace(offered_to=None), now)
            self._arm_call_timers(call, now)
        for res in reservations:
            agent = self.agents.get(res.agent_id)
            if not settle and agent is not None and agent.status is _RESERVED and res.call_id in self.calls:
                # Not a restart (a re-sync after a failed write, or a command-line process): the offer is still
                # ringing on the agent's phone; keep it, with its ring timeout.
                self.reservations[res.call_id] = res
                self.reserved_agent[res.agent_id] = res.call_id
                self.calls[res.call_id] = self.calls[res.call_id]._replace(offered_to=res.agent_id)
                self._arm(res.expires_at, "ring", res.call_id, res.offered_at)
                continue
            if agent is not None and agent.status is _RESERVED:
                new = transition(agent, _READY, now)._replace(missed=agent.missed)
                out.append(self._set_agent(new, agent, "restart-settled"))
            if res.call_id in self.calls:
                out.append(CallQueued(self.calls[res.call_id]))
        for agent_id, st in list(self.agents.items()):
            if st.status is _WRAP_UP:
                # Which queue the last call came from is not stored: the longest wrap-up of any queue is the
                # safe choice (never cut a wrap-up short); the agent can make themselves ready sooner.
                queue_wrap = self._longest_wrap()
                end = (st.since or now) + timedelta(seconds=queue_wrap)
                self._arm(max(end, now), "wrap", agent_id, st.since)
        for call_id in [c.call_id for c in sorted(self.calls.values(), key=_line_key)]:
            out += self._match_call(call_id, now)
        return out


def _filed_under(skills: tuple[tuple[str, int], ...]) -> str:
    """The one skill a call is filed under for free agents: any skill it requires will do (all are needed)."""
    return skills[0][0] if skills else ""


def _offered_to(call: WaitingCall, agent_id: str | None) -> WaitingCall:
    """``call._replace(offered_to=agent_id)`` without ``_replace``'s generic field-by-field rebuild (~2 µs):
    every offer, answer and ring-out sets this one field, the last."""
    return _make(WaitingCall, (*call[:-1], agent_id))


def _line_key(call: WaitingCall) -> tuple[int, float, int, str]:
    """Order in line: higher priority first, then earlier place (``since``), then arrival order."""
    return (-call.priority, call.since.timestamp(), call.seq, call.call_id)


def _remove(lst: list[Any], key: Any) -> None:
    i = bisect.bisect_left(lst, key)
    if i < len(lst) and lst[i] == key:
        del lst[i]
    else:  # pragma: no cover - the index and the states went out of step: a bug, not a runtime condition
        raise IllegalTransition(f"routing index out of step for {key!r}")
