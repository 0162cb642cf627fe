"""Twilio calls: webhook requests in as interpreter events, TwiML out.

Twilio asks, the engine answers: each webhook is turned into events for the
call's interpreter, the resulting commands are rendered as TwiML, and the
interpreter is stepped on as far as it can go without the caller (a prompt with
no key to wait for is taken as played, since Twilio plays the TwiML in order),
so most turns cost one request. Routing is the same router as on Asterisk:

* ``<Enqueue>`` holds a caller the router has not placed yet (its wait URL plays
  the position and the expected wait, and listens for the queue's keys);
* when the router offers the call to an agent, the call is redirected through
  Twilio's REST API to ``/twilio/connect``, which answers ``<Dial>`` to the
  agent's client identity, SIP URI or number with the queue's ring timeout;
* the dialled leg's status callback says when the agent answers; the ``<Dial>``
  action says how it ended: no answer puts the caller back in line with their
  place kept, a finished conversation moves the tree on (a survey).

Twilio retries a webhook that did not answer in time: the answer to every
request is remembered per call, so a retry gets the same TwiML and the call
does not advance twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from ivr import commands as C
from ivr import events as E
from ivr.interpreter import CallState
from ivr.routing_link import RoutingAdapter
from ivr.timing import item_seconds

from .twiml import add_items, say_language

log = logging.getLogger(__name__)

# Twilio's own hold music (the one <Enqueue> plays by default), served by Twilio
TWILIO_HOLD_MUSIC = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"
MAX_CACHED = 64  # answers remembered per call for retried webhooks


@dataclass
class TwilioCall:
    sid: str
    route: Any
    caller: str | None
    started_at: datetime
    state: CallState | None = None
    vclock: float = 0.0  # seconds of prompts already played out ahead of the wall clock
    in_router: bool = False
    queue: str | None = None
    queued_at: datetime | None = None
    offer: tuple[str, datetime, int] | None = None  # agent, offered_at, dial number
    offers: int = 0
    talking: str | None = None  # agent id while connected
    answered_at: datetime | None = None
    agent_id: str | None = None
    agent_ended_at: datetime | None = None
    stashed: list[Any] = field(default_factory=list)  # commands waiting for the caller to leave <Enqueue>
    answers: dict[str, str] = field(default_factory=dict)
    ended: bool = False
    ended_by: str = "caller"
    redirecting: bool = False
    parked: bool = False  # sitting in <Enqueue>: the only state in which a REST redirect may move the call
    handed_off: bool = False  # sent to the fallback number after an error: routing leaves it alone
    collect: tuple[int, Any] | None = None  # the prompt whose <Gather> is out, and its Collect
    redirects: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one webhook at a time per call (retries wait)


class TwilioAdapter(RoutingAdapter):
    def __init__(self, routes: dict[str, Any], default_route: Any, *, clock: Any, routing: Any = None,
                 rest: Any = None, fallback_number: str | None = None, media_base: str = "",
                 hooks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
                 announce_every: float = 30.0, from_number: str | None = None,
                 hold_music: str | None = TWILIO_HOLD_MUSIC) -> None:
        self.routes = routes
        self.default_route = default_route
        self.clock = clock
        self.routing = routing
        self.rest = rest  # ivr.twilio.rest.TwilioRest or None (no redirects, no SMS)
        self.fallback_number = fallback_number
        self.media_base = media_base.rstrip("/")
        self.hooks = hooks or {}
        self.announce_every = announce_every
        self.from_number = from_number
        self.hold_music = hold_music
        self.agents = {a.id: a for a in (routing.roster if routing is not None else [])}
        self.queues = routing.queues if routing is not None else {}
        self.calls: dict[str, TwilioCall] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._init_routing_link()
        self.calls_handled = 0

    # ------------------------------------------------------------------ idempotency

    @staticmethod
    def request_key(path_qs: str, form: dict[str, str], token: str | None) -> str:
        if token:
            return f"{path_qs}|{token}"
        body = "&".join(f"{k}={v}" for k, v in sorted(form.items()))
        return path_qs + "|" + hashlib.sha256(body.encode()).hexdigest()

    def remember(self, call: TwilioCall, key: str, twiml: str) -> str:
        if len(call.answers) >= MAX_CACHED:
            call.answers.pop(next(iter(call.answers)))
        call.answers[key] = twiml
        return twiml

    # ------------------------------------------------------------------ webhooks

    async def incoming(self, form: dict[str, str]) -> str:
        sid = form["CallSid"]
        known = self.calls.get(sid)
        if known is not None:  # Twilio retried the first webhook: same call, started once; the same answer
            async with known.lock:
                return known.answers.get("voice") or _fallback_twiml(self.fallback_number)
        route = self.routes.get(form.get("To") or "", self.default_route)
        now = self.clock.now()
        call = TwilioCall(sid, route, form.get("From") or None, now)
        self.calls[sid] = call
        async with call.lock:
            state, cmds = route.interpreter.start(E.CallStarted(now, sid, call.caller, form.get("To") or None,
                                                                route.language))
            call.state = state
            vr = VoiceResponse()
            await self._render(call, cmds, vr)
            return self.remember(call, "voice", str(vr))

    async def gather(self, call: TwilioCall, prompt_id: int, digits: str | None, finished_on_key: str = "") -> str:
        """The caller's keys for prompt ``prompt_id`` (all at once), or none (the input timed out).

        Twilio strips the finishing key from ``Digits`` and reports it as ``FinishedOnKey``: it is given back
        to the interpreter as the terminator it is. An entry still incomplete after the keys timed out after
        the last of them (the InputTimeout is dated one collect timeout later, as it happened).
        """
        st = call.state
        assert st is not None
        now = self._now(call)
        cmds: list[Any] = []
        col = call.collect[1] if call.collect is not None and call.collect[0] == prompt_id else None
        if st.prompt_id == prompt_id and st.phase in ("prompt", "collect"):
            if st.phase == "prompt":
                cmds += self._step(call, E.PromptFinished(now, prompt_id))
            keys = digits or ""
            if finished_on_key and col is not None and col.terminator == finished_on_key:
                keys += finished_on_key
            for d in keys:
                cmds += self._step(call, E.Digit(now, d))
            st = call.state
            if st is not None and st.phase == "collect" and st.prompt_id == prompt_id:
                later = now + timedelta(seconds=col.timeout if col is not None else 5.0)
                cmds += self._step(call, E.InputTimeout(later, prompt_id))  # nothing (more) came: Gather timed out
        vr = VoiceResponse()
        await self._render(call, cmds, vr)
        return str(vr)

    async def wait(self, call: TwilioCall, form: dict[str, str]) -> str:
        """``<Enqueue>``'s wait URL: position and expected wait, music, and the queue's keys."""
        vr = VoiceResponse()
        router = self.router
        lang = call.state.language if call.state is not None else "en"
        node_keys = self._queue_keys(call)
        parent: Any = vr
        if node_keys:
            parent = vr.gather(input="dtmf", num_digits=1, timeout=1, action=_url("waitkey", call.sid),
                               method="POST")
        if router is not None and call.sid in router.calls:
            pos = router.position(call.sid)
            ewt = router.estimated_wait(call.sid, self.clock.now())
            text = "You are next." if pos <= 1 else f"There are {pos - 1} callers ahead of you."
            if ewt != float("inf") and ewt >= 60:
                text += f" The expected wait is about {round(ewt / 60)} minutes."
            parent.say(text, language=say_language(lang))
        if self.hold_music:
            vr.play(self.hold_music)  # Twilio fetches the wait URL again when it ends: the next announcement
        else:
            vr.pause(length=int(self.announce_every))
        return str(vr)

    async def wait_key(self, call: TwilioCall, digits: str | None) -> str:
        """A key pressed while waiting: the tree decides; if it leaves the queue, ``<Leave>`` first."""
        cmds: list[Any] = []
        for d in digits or "":
            cmds += self._step(call, E.Digit(self._now(call), d))
        vr = VoiceResponse()
        if any(isinstance(c, C.Dequeue) for c in cmds):
            call.stashed = cmds  # carried out when Twilio calls <Enqueue>'s action after <Leave>
            vr.leave()
        return str(vr)

    async def enqueue_done(self, call: TwilioCall, result: str) -> str:
        """``<Enqueue>``'s action: the caller left the Twilio queue (``leave``, ``redirected``, ``hangup``...).

        After a REST redirect Twilio goes to the new URL, so nothing is done here for ``redirected``.
        """
        vr = VoiceResponse()
        if result in ("redirected", "hangup", "bridged"):
            return str(vr)
        await self.resume(call, vr)
        return str(vr)

    async def resume(self, call: TwilioCall, vr: VoiceResponse | None = None) -> str:
        """Carry on with what the tree decided while the caller waited (a key, the queue giving up)."""
        vr = vr if vr is not None else VoiceResponse()
        call.redirecting = False
        if call.stashed:
            cmds, call.stashed = call.stashed, []
            await self._render(call, cmds, vr)
        else:
            await self._connect_or_wait(call, vr)
        return str(vr)

    async def connect(self, call: TwilioCall) -> str:
        """Where the engine redirects a waiting call once the router has chosen an agent."""
        call.redirecting = False
        vr = VoiceResponse()
        await self._connect_or_wait(call, vr)
        return str(vr)

    async def agent_status(self, call: TwilioCall, offer: int, status: str) -> None:
        """The dialled agent's leg: ``in-progress``/``answered`` means they picked up."""
        if status not in ("in-progress", "answered") or call.offer is None or call.offer[2] != offer:
            return
        agent, offered_at, _ = call.offer
        decisions = await self.route("answered", call.sid, agent_id=agent, offered_at=offered_at)
        if decisions is None:
            return
        call.in_router = False
        call.talking = call.agent_id = agent
        call.answered_at = self.clock.now()
        call.offer = None
        self._step(call, E.AgentConnected(self._now(call), agent, ""))

    async def dial_done(self, call: TwilioCall, offer: int, status: str, call_status: str = "") -> str:
        """``<Dial>``'s action: the agent's leg ended (conversation over) or never connected."""
        vr = VoiceResponse()
        if call.talking is None and status in ("completed", "answered") and call.offer is not None \
                and call.offer[2] == offer:
            await self.agent_status(call, offer, "in-progress")  # the "answered" callback was lost: it was answered
        if call.talking is not None:
            agent, call.talking = call.talking, None
            call.agent_ended_at = self.clock.now()
            call.ended_by = "agent"
            await self.route("call_ended", agent)
            if call_status == "completed":
                return str(vr)  # the caller hung up: the status callback ends the call
            await self._render(call, self._step(call, E.AgentDisconnected(self._now(call))), vr)
            return str(vr)
        if call.offer is not None and call.offer[2] == offer:
            agent, offered_at, _ = call.offer
            call.offer = None
            if call_status == "completed":  # the caller hung up while it rang: not the agent's miss
                await self._leave_router(call, "abandoned")
                return str(vr)
            await self.route("no_answer", call.sid, agent_id=agent, offered_at=offered_at)
        await self._connect_or_wait(call, vr)
        return str(vr)

    def hand_off(self, call: TwilioCall) -> None:
        """The call went to the fallback number after an error: routing must not move it again."""
        call.handed_off = True
        call.parked = False
        if call.in_router:
            call.in_router = False
            if self.router is not None and call.sid in self.router.calls:
                self._spawn(self.route("abandon", call.sid, why="fallback"))

    async def transfer_done(self, call: TwilioCall, status: str) -> str:
        ok = status in ("completed", "answered")
        vr = VoiceResponse()
        await self._render(call, self._step(call, E.TransferResult(self._now(call), ok, "" if ok else status)), vr)
        return str(vr)

    async def record_done(self, call: TwilioCall, duration: float, recording_sid: str) -> str:
        vr = VoiceResponse()
        await self._render(call, self._step(call, E.RecordingFinished(self._now(call), duration, recording_sid)), vr)
        return str(vr)

    async def status(self, call: TwilioCall, status: str) -> None:
        """The call's status callback: ``completed`` (and the other final states) end it."""
        if status not in ("completed", "busy", "failed", "no-answer", "canceled") or call.ended:
            return
        call.ended = True
        if call.talking is not None:
            agent, call.talking = call.talking, None
            call.agent_ended_at = self.clock.now()
            await self.route("call_ended", agent)
        elif call.in_router:
            call.in_router = False
            if self.router is not None and call.sid in self.router.calls:
                await self.route("abandon", call.sid)
        if call.state is not None and call.state.phase != "ended":
            self._step(call, E.Hangup(self._now(call)))
        self.calls.pop(call.sid, None)
        self.calls_handled += 1
        await self._record(call)

    # ------------------------------------------------------------------ commands -> TwiML

    def _step(self, call: TwilioCall, event: Any) -> list[Any]:
        assert call.state is not None
        call.state, cmds = call.route.interpreter.step(call.state, event)
        return cmds

    def _now(self, call: TwilioCall) -> datetime:
        """The interpreter's time for this call: never behind the prompts already taken as played."""
        now = self.clock.now()
        ahead = call.started_at + timedelta(seconds=call.vclock)
        return max(now, ahead)

    async def _render(self, call: TwilioCall, cmds: list[Any], vr: VoiceResponse) -> None:
        pending = list(cmds)
        while pending:
            cmd = pending.pop(0)
            if isinstance(cmd, (C.Answer, C.StopPrompt)):
                continue  # Twilio answers with the first TwiML; a key stops a <Gather>'s prompt by itself
            if isinstance(cmd, C.PlayPrompt):
                if cmd.collect is not None:
                    col = cmd.collect
                    g = vr.gather(input="dtmf", action=_url("gather", call.sid, prompt=cmd.prompt_id), method="POST",
                                  timeout=max(1, math.ceil(col.timeout)), num_digits=col.max_digits,
                                  action_on_empty_result=True,
                                  **({"finish_on_key": col.terminator} if col.terminator else {"finish_on_key": ""}))
                    add_items(g, cmd.items, self.media_base)
                    call.collect = (cmd.prompt_id, col)
                    return  # the caller's keys (or their silence) come back to /twilio/gather
                add_items(vr, cmd.items, self.media_base)
                call.vclock = (self._now(call) - call.started_at).total_seconds() + sum(
                    item_seconds(i, call.route.wpm) for i in cmd.items)
                pending += self._step(call, E.PromptFinished(self._now(call), cmd.prompt_id))
            elif isinstance(cmd, C.Enqueue):
                await self._enqueue(call, cmd, vr, pending)
                if call.in_router:
                    return
            elif isinstance(cmd, C.Dequeue):
                await self._leave_router(call, "dequeued")
            elif isinstance(cmd, C.Transfer):
                await self._leave_router(call, "transferred")
                d = vr.dial(action=_url("transfer", call.sid), method="POST", timeout=int(cmd.timeout))
                d.number(cmd.to)
                return
            elif isinstance(cmd, C.Record):
                vr.record(action=_url("record", call.sid), method="POST", max_length=int(cmd.max_length),
                          finish_on_key=cmd.finish_key or "#", play_beep=cmd.beep,
                          recording_status_callback=_url("recording", call.sid))
                # with no audio at all Twilio skips the action and goes on to the next verb: bring it back here
                vr.redirect(_url("record", call.sid, empty=1), method="POST")
                return
            elif isinstance(cmd, C.HangupCall):
                await self._leave_router(call, "abandoned")
                call.ended_by = "engine"
                vr.hangup()
                return
            elif isinstance(cmd, C.CallHook):
                pending += self._step(call, await self._hook(cmd, call))
            elif isinstance(cmd, C.RequestCallback):
                # Placing a callback on Twilio (ring the agent, then the patient) is not built yet: queueing it
                # would reserve agents for a call nobody dials. Say so loudly, by call sid and queue (no number:
                # staff find it in Twilio's call log under that sid).
                log.error("call %s: callback requested in queue %s cannot be placed on Twilio yet; call the "
                          "patient back from the call log (E-TWILIO-CALLBACK)", call.sid, cmd.queue)
            elif isinstance(cmd, C.SendSms):
                self._send_sms(cmd)

    async def _enqueue(self, call: TwilioCall, cmd: C.Enqueue, vr: VoiceResponse, pending: list[Any]) -> None:
        call.queue = cmd.queue
        call.queued_at = call.queued_at or self.clock.now()
        ticket = call.state.ticket if call.state is not None else None
        decisions = await self.route("enqueue", call.sid, cmd.queue, skills=cmd.skills, language=cmd.language,
                                     priority=cmd.priority, since=ticket.since if ticket else self.clock.now())
        if decisions is None:
            pending += self._step(call, E.QueueResult(self._now(call), "no_agents"))
            return
        call.in_router = True
        failed = self._failed(call, decisions)
        if failed is not None:
            call.in_router = False
            pending += self._step(call, E.QueueResult(self._now(call), failed))
            return
        await self._connect_or_wait(call, vr)

    async def _connect_or_wait(self, call: TwilioCall, vr: VoiceResponse, depth: int = 0) -> None:
        """Dial the agent the router reserved; else wait in line; else the tree's fallback."""
        call.parked = False
        router = self.router
        res = router.reservations.get(call.sid) if router is not None else None
        if res is not None:
            spec = self.agents.get(res.agent_id)
            noun = _agent_noun(spec.endpoint) if spec is not None else None
            if noun is None:  # an Asterisk-only softphone: not reachable from Twilio
                await self.route("no_answer", call.sid, agent_id=res.agent_id, offered_at=res.offered_at)
                depth += 1
                if depth < 5:
                    await self._connect_or_wait(call, vr, depth)
                    return
                res = None  # keep the caller waiting rather than ring unreachable phones in a loop
            else:
                self._dial(call, vr, res, noun)
                return
        if router is not None and call.sid in router.calls:
            vr.enqueue(call.sid, wait_url=_url("wait", call.sid), wait_url_method="POST",
                       action=_url("enqueued", call.sid), method="POST")
            call.parked = True
            return
        call.in_router = False
        if call.stashed:  # the queue gave up on the caller while this webhook was being handled
            cmds, call.stashed = call.stashed, []
            await self._render(call, cmds, vr)
            return
        await self._render(call, self._step(call, E.QueueResult(self._now(call), "no_agents")), vr)

    def _dial(self, call: TwilioCall, vr: VoiceResponse, res: Any, noun: tuple[str, str]) -> None:
        call.offers += 1
        call.offer = (res.agent_id, res.offered_at, call.offers)
        queue = self.queues.get(call.queue or "")
        ring = max(1, int(queue.ring_timeout) - 1) if queue is not None else 19
        d = vr.dial(action=_url("dial", call.sid, offer=call.offers), method="POST", timeout=ring)
        kind, target = noun
        cb = {"status_callback": _url("agent", call.sid, offer=call.offers),
              "status_callback_event": "answered completed", "status_callback_method": "POST"}
        getattr(d, kind)(target, **cb)

    async def _leave_router(self, call: TwilioCall, why: str) -> None:
        if call.in_router:
            call.in_router = False
            call.offer = None
            if self.router is not None and call.sid in self.router.calls:
                await self.route("abandon", call.sid, why=why)

    def _failed(self, call: TwilioCall, decisions: list[Any]) -> str | None:
        from routing.model import QueueFailed

        return next((d.outcome for d in decisions if isinstance(d, QueueFailed) and d.call_id == call.sid), None)

    def _queue_keys(self, call: TwilioCall) -> tuple[str, ...]:
        node = call.route.tree.spec.nodes.get(call.state.node) if call.state is not None else None
        return tuple(getattr(node, "keys", {}) or ())

    async def _hook(self, cmd: C.CallHook, call: TwilioCall) -> E.HookResult:
        fn = self.hooks.get(cmd.hook)
        now = self._now(call)
        if fn is None:
            return E.HookResult(now, cmd.request_id, False, error="no hook registered")
        try:
            values = await asyncio.wait_for(asyncio.to_thread(fn, dict(cmd.args)), cmd.timeout)
        except asyncio.TimeoutError:
            return E.HookResult(self._now(call), cmd.request_id, False, error="timeout")
        except Exception as exc:  # a deployment hook failing must not break the call
            return E.HookResult(self._now(call), cmd.request_id, False, error=type(exc).__name__)
        ok = isinstance(values, dict) and not values.get("error")
        return E.HookResult(self._now(call), cmd.request_id, ok, values=values if isinstance(values, dict) else {},
                            error="" if ok else "hook error")

    def _send_sms(self, cmd: C.SendSms) -> None:
        if self.rest is None or not self.from_number:
            log.info("text message not sent: no Twilio REST client or sender number configured")
            return
        self._spawn(self.rest.send_sms(self.from_number, cmd.to, cmd.text))

    # ------------------------------------------------------------------ routing

    def on_decisions(self, decisions: list[Any]) -> None:
        """Decisions about Twilio calls (whoever's routing step made them): redirect waiting callers to an agent,
        send the tree's fallback to callers the queue gave up on."""
        from routing.model import Offer, QueueFailed

        for d in decisions:
            call = self.calls.get(d.call_id) if isinstance(d, (Offer, QueueFailed)) else None
            if call is None or call.ended or call.handed_off or not call.in_router:
                continue
            if isinstance(d, QueueFailed):
                call.in_router = False
                call.stashed = self._step(call, E.QueueResult(self._now(call), d.outcome))  # type: ignore[arg-type]
                if call.parked and not call.redirecting:  # else the webhook in progress renders it
                    call.redirecting = True
                    self._spawn(self._redirect(call, "resume"))
            elif call.parked and call.offer is None and not call.redirecting:
                # only a caller sitting in <Enqueue> is moved; a call in a webhook or a <Dial> is handled there
                call.redirecting = True
                self._spawn(self._redirect(call))

    async def _redirect(self, call: TwilioCall, kind: str = "connect") -> None:
        if self.rest is None:
            log.warning("call %s: cannot move the caller out of the queue: no Twilio REST client", call.sid)
            return
        call.redirects += 1
        try:  # a fresh URL per redirect: two moves of one call are two requests, never a cached "retry"
            await self.rest.redirect(call.sid, _url(kind, call.sid, r=call.redirects))
        except Exception as exc:
            call.redirecting = False
            log.warning("call %s: Twilio refused the redirect (%s)", call.sid, type(exc).__name__)

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def settled(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _record(self, call: TwilioCall) -> None:
        if self.routing is None:
            return
        from routing.store import CallRecord

        st = call.state
        rec = CallRecord(call.sid, call.route.name, "twilio", call.started_at, self.clock.now(),
                         st.outcome.kind if st is not None and st.outcome else "hangup",
                         st.node if st is not None else "", call.ended_by, queue=call.queue, agent_id=call.agent_id,
                         queued_at=call.queued_at, answered_at=call.answered_at, agent_ended_at=call.agent_ended_at)
        try:
            await self.routing.store.record_call(rec)
        except Exception as exc:
            log.error("call %s: its call record could not be written (%s)", call.sid, type(exc).__name__)


def _url(kind: str, sid: str, **q: Any) -> str:
    return f"/twilio/{kind}?" + urlencode({"call": sid, **q})


def _agent_noun(endpoint: str) -> tuple[str, str] | None:
    if endpoint.startswith("client:"):
        return "client", endpoint[len("client:"):]
    if endpoint.startswith(("sip:", "sips:")):
        return "sip", endpoint
    if endpoint.lstrip("+").isdigit():
        return "number", endpoint
    return None


def _fallback_twiml(number: str | None) -> str:
    """For a request about a call the engine does not know (it restarted): straight to a person."""
    vr = VoiceResponse()
    vr.say("Please hold while we connect you.", language="en-US")
    if number:
        vr.dial(number)
    else:
        vr.say("We are sorry, we cannot take your call right now. If this is an emergency, hang up and dial 9 1 1.",
               language="en-US")
    return str(vr)


fallback_twiml = _fallback_twiml
