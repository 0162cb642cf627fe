"""The Asterisk engine: ARI events in, one :class:`CallSession` per call, the router in the middle.

Dispatch is by id: every channel, playback and recording the engine creates gets
an id the engine chose (``<call>-p3``, ``<call>-agent1``, ``<call>-voicemail1``),
registered *before* the request goes out, so an event that overtakes the
request's answer still finds its call. Events for ids nobody owns are dropped.

Resync: Asterisk replays nothing after the events socket drops, and an engine
restart forgets every session. On each (re)connection the engine lists the
channels and bridges and

* tells each live session what is still there (a prompt that ended or an agent
  who answered during the gap is caught up; a caller who left is cleaned up);
* adopts what no session owns: a caller and an agent talking in one of its
  bridges are left talking, and their hang-up still releases the agent into
  wrap-up; any other caller in the application is handed to the dialplan's human
  fallback, and agent legs ringing for nobody are hung up;
* clears the router of calls whose channel is gone, so no agent waits for a
  call that no longer exists.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from agents.roster import AgentSpec
from agents.state import Status
from ivr import commands as C
from ivr.clock import Clock
from ivr.interpreter import Interpreter
from ivr.routing_link import RoutingAdapter
from ivr.tree import CallTree

from .call import CallSession
from .client import AriClient
from .errors import AriError, AriNotFound

log = logging.getLogger(__name__)

CONNECTED = "_Connected"
RECONNECTED = "_Reconnected"
TALK_PREFIX = "ivr-talk:"
_AGENT_LEG = re.compile(r"-agent\d+$")  # ids the engine gives the agent legs it originates
ORPHAN_CONTINUE_TIMEOUT = 120.0  # longer than any prompt a restarted engine may find still playing


@dataclass
class TreeRoute:
    """Which tree answers a dialled number, and in which language."""

    name: str
    tree: CallTree
    language: str | None = None
    interpreter: Interpreter = field(init=False)
    wpm: float = field(init=False)

    def __post_init__(self) -> None:
        self.interpreter = Interpreter(self.tree)
        self.wpm = self.tree.spec.lints.speech_rate_wpm


@dataclass
class _Watched:
    """A caller and an agent talking in a bridge the engine found after a restart (no session any more)."""

    bridge_id: str
    agent_id: str
    channels: set[str]


class AriEngine(RoutingAdapter):
    def __init__(self, client: AriClient, routes: dict[str, TreeRoute], default_route: TreeRoute, *,
                 clock: Clock, routing: Any = None, agents: dict[str, AgentSpec] | None = None,
                 app: str = "ivr-engine", fallback: tuple[str, str, int] = ("ivr-fallback", "s", 1),
                 transfer_context: str = "ivr-transfer", announce_every: float = 45.0,
                 hooks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None) -> None:
        self.client = client
        self.routes = routes
        self.default_route = default_route
        self.clock = clock
        self.routing = routing  # a routing.service.RoutingService, or None (every queue then takes its fallback)
        self.agents = agents or {a.id: a for a in (routing.roster if routing is not None else [])}
        self.by_endpoint = {a.endpoint: a.id for a in self.agents.values()}
        self.queues = routing.queues if routing is not None else {}
        self.app = app
        self.fallback = fallback
        self.transfer_context = transfer_context
        self.announce_every = announce_every
        self.hooks = hooks or {}
        self.sessions: dict[str, CallSession] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.owner: dict[str, Any] = {}  # channel / playback / recording id -> CallSession or handler
        self.watched: dict[str, _Watched] = {}  # channel id -> talk adopted after a restart
        # leg channel id -> (callback id, agent, dialing|up, the offer's offered_at)
        self.callback_legs: dict[str, tuple[str, str, str, Any]] = {}
        self.offline: set[str] = set()  # agents whose softphone is unregistered
        self.before_offline: dict[str, tuple[Status, str | None]] = {}
        self.connected = False
        self.calls_handled = 0
        self.latency_by_type: dict[str, deque[float]] = {}
        self.events_in = 0  # events received from Asterisk (for the "no event lost" check)
        self.latencies: deque[float] = deque(maxlen=100_000)  # seconds from an ARI event's arrival to its commands done
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._init_routing_link()
        self._leg_seq = 0
        self.bridge_moh: bool | None = None  # does this Asterisk play MOH into bridges? learnt on first use
        self._stopping = False

    # ------------------------------------------------------------------ bookkeeping

    def measure(self, event_type: str, seconds: float) -> None:
        """One event's handling time (arrival to its commands answered), overall and by event type."""
        self.latencies.append(seconds)
        self.latency_by_type.setdefault(event_type, deque(maxlen=10_000)).append(seconds)

    def own(self, key: str, who: Any) -> None:
        self.owner[key] = who

    def disown(self, key: str) -> None:
        self.owner.pop(key, None)

    def _busy_inc(self) -> None:
        self._busy += 1
        self._idle.clear()

    def _busy_dec(self) -> None:
        self._busy -= 1
        if self._busy <= 0:
            self._busy = 0
            self._idle.set()

    async def settled(self) -> None:
        """Wait until no event, timer or routing step is being handled (tests and the benchmark use it)."""
        while True:
            await self._idle.wait()
            for _ in range(5):
                await asyncio.sleep(0)
            if self._idle.is_set():
                return

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        self._busy_inc()
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)

        def done(task: asyncio.Task[Any]) -> None:
            self.tasks.discard(task)
            self._busy_dec()
            if not task.cancelled() and task.exception() is not None:
                log.error("engine task failed: %s", type(task.exception()).__name__,
                          exc_info=task.exception())

        t.add_done_callback(done)
        return t

    def _background(self, coro: Any) -> None:
        """A task that may take long (minutes) and must not count as work in progress for :meth:`settled`."""
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------ events

    async def run(self) -> None:
        """Consume the events socket until the client is closed."""
        async for ev in self.client.events(connected_marker=True):
            self.dispatch(ev)

    def dispatch(self, ev: dict[str, Any]) -> None:
        """Route one ARI event to whoever owns its channel, playback or recording (never blocks)."""
        t = ev.get("type")
        ev["_rx"] = time.perf_counter()
        self.events_in += 1
        if t in (CONNECTED, RECONNECTED):
            self.connected = True
            self._spawn(self.resync(first=t == CONNECTED))
            return
        if t == "StasisStart":
            args = ev.get("args") or []
            ch = ev["channel"]
            if args[:1] == ["inbound"] and ch["id"] not in self.owner:
                self._new_call(ch, args[1] if len(args) > 1 else None)
                return
            if args[:1] in (["agent"], ["callback"]) and ch["id"] not in self.owner and ch["id"] not in self.callback_legs:
                # an agent answered a leg nobody rings any more (rung before a restart, or given up on):
                # hang it up, or the agent would sit on a silent line while the router offers them calls
                self._spawn(self._ignore(self.client.hangup(ch["id"])))
                return
        elif t == "ApplicationReplaced":
            log.error("another client took over the Stasis application %r: this engine gets no more calls", self.app)
            self.connected = False
            return
        key = None
        if t and t.startswith("Playback"):
            key = (ev.get("playback") or {}).get("id")
        elif t and t.startswith("Recording"):
            key = (ev.get("recording") or {}).get("name")
        else:
            key = (ev.get("channel") or ev.get("peer") or {}).get("id")
        who = self.owner.get(key) if key else None
        if isinstance(who, CallSession):
            who.post(("ari", ev))
        elif who == "fallback":
            if t in ("StasisEnd", "ChannelDestroyed"):
                self.owner.pop(key, None)
        elif key in self.callback_legs:
            self._spawn(self._callback_event(key, ev))
        elif key in self.watched:
            self._spawn(self._watched_event(key, ev))

    def _new_call(self, channel: dict[str, Any], called: str | None) -> None:
        if self._stopping:
            self._spawn(self._ignore(self.client.continue_in_dialplan(channel["id"], *self.fallback)))
            return
        route = self.routes.get(called or "", self.default_route)
        s = CallSession(self, channel, route, called)
        self.sessions[s.call_id] = s
        self.own(s.channel_id, s)
        s.post(("start",))
        t = asyncio.get_running_loop().create_task(s.run())
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _session_done(self, s: CallSession) -> None:
        self.sessions.pop(s.call_id, None)
        for k in [k for k, v in self.owner.items() if v is s]:
            del self.owner[k]
        self.calls_handled += 1
        if self.routing is not None:
            try:
                await self.routing.store.record_call(s.record())
            except Exception as exc:  # the call is over either way; losing its record must not crash the engine
                log.error("call %s: its call record could not be written (%s)", s.call_id, type(exc).__name__)

    async def _ignore(self, coro: Any) -> None:
        try:
            await coro
        except AriError:
            pass

    # ------------------------------------------------------------------ routing

    def on_decisions(self, decisions: list[Any]) -> None:
        """Decisions about our calls, from our own routing steps or another adapter's (Twilio)."""
        from routing.model import AgentChanged, CallLeft, CallQueued, Offer, Overflowed, QueueFailed

        by_call: dict[str, list[Any]] = {}
        for d in decisions:
            if isinstance(d, (Offer, QueueFailed, CallLeft, Overflowed)):
                by_call.setdefault(d.call_id, []).append(d)
            elif isinstance(d, CallQueued):
                by_call.setdefault(d.call.call_id, []).append(d)
        for call_id, ds in by_call.items():
            s = self.sessions.get(call_id)
            if s is not None:
                s.post(("routing", ds))
            elif call_id.endswith("-callback") and not call_id.startswith("CA"):  # CA...: Twilio's callbacks
                self._spawn(self._callback_sync(call_id))
        if self.offline and any(isinstance(d, AgentChanged) and d.state.agent_id in self.offline for d in decisions):
            self._spawn(self._apply_presence())

    async def request_callback(self, call_id: str, cmd: C.RequestCallback) -> None:
        """A caller asked to be called back: the promise waits in the queue like a call, keeping their place."""
        await self.route("enqueue", f"{call_id}-callback", cmd.queue, skills=cmd.skills, language=cmd.language,
                         priority=cmd.priority, since=cmd.keep_place_since, callback_number=cmd.number)

    # ------------------------------------------------------------------ callbacks (no caller channel yet)

    async def _callback_sync(self, cb_id: str) -> None:
        """Make the callback's agent leg match the router (as a session does for a caller waiting)."""
        router = self.router
        res = router.reservations.get(cb_id) if router is not None else None
        for leg, (cid, agent, state, offered_at) in list(self.callback_legs.items()):
            if cid == cb_id and state == "dialing" and (res is None or (agent, offered_at) != (res.agent_id, res.offered_at)):
                del self.callback_legs[leg]  # the router ended that offer: stop ringing
                await self._ignore(self.client.hangup(leg))
        if res is None or any(v[0] == cb_id for v in self.callback_legs.values()):
            return
        spec = self.agents.get(res.agent_id)
        self._leg_seq += 1
        leg = f"{cb_id}-agent{self._leg_seq}"
        if spec is None or not spec.endpoint.startswith(("PJSIP/", "SIP/")):
            await self.route("no_answer", cb_id, agent_id=res.agent_id, offered_at=res.offered_at)
            return
        self.callback_legs[leg] = (cb_id, res.agent_id, "dialing", res.offered_at)
        queue = self.queues.get(router.calls[cb_id].queue)
        try:
            await self.client.originate(spec.endpoint, app=self.app, app_args=f"callback,{cb_id}",
                                        caller_id='"Callback"',
                                        timeout=max(1, int(queue.ring_timeout) - 1) if queue else 19,
                                        variables={"IVR_CALL_ID": cb_id}, channel_id=leg)
        except AriError:
            self.callback_legs.pop(leg, None)
            await self._ignore(self.client.hangup(leg))
            await self.route("no_answer", cb_id, agent_id=res.agent_id, offered_at=res.offered_at)

    async def _callback_event(self, leg: str, ev: dict[str, Any]) -> None:
        if leg not in self.callback_legs:
            return
        cb_id, agent, state, offered_at = self.callback_legs[leg]
        t = ev.get("type")
        if t == "StasisStart" and state == "dialing":
            self.callback_legs[leg] = (cb_id, agent, "up", offered_at)
            call = self.router.calls.get(cb_id) if self.router is not None else None
            number = call.callback_number if call is not None else None
            if await self.route("answered", cb_id, agent_id=agent, offered_at=offered_at) is None or not number:
                self.callback_legs.pop(leg, None)
                await self._ignore(self.client.hangup(leg))
                return
            # The agent's own channel dials the patient through the dialplan's transfer context.
            await self._ignore(self.client.continue_in_dialplan(leg, self.transfer_context, number, 1))
        elif t in ("StasisEnd", "ChannelDestroyed"):
            self.callback_legs.pop(leg, None)
            if state == "dialing":
                await self.route("no_answer", cb_id, agent_id=agent, offered_at=offered_at)
            else:
                # The engine hands the conversation to the dialplan: wrap-up starts when it does.
                await self.route("call_ended", agent)

    # ------------------------------------------------------------------ resync

    async def resync(self, *, first: bool) -> None:
        """Catch up with Asterisk after a (re)connection (see the module docstring)."""
        try:
            channels = await self.client.list_channels()
            bridges = await self.client.list_bridges()
        except AriError as exc:
            log.warning("resync after reconnect failed (%s); will retry on the next connection", exc.error_id)
            return
        live = {c["id"]: c for c in channels}
        for s in list(self.sessions.values()):
            s.post(("reconcile", live))
        for leg in [k for k in self.callback_legs if k not in live]:
            await self._callback_event(leg, {"type": "ChannelDestroyed"})
        in_talk: set[str] = set()
        for b in bridges:
            name = b.get("name") or ""
            members = [c for c in b.get("channels", []) if c in live]
            if not name.startswith(TALK_PREFIX) or any(c in self.owner for c in members):
                continue
            if len(members) == 2 and not any(c in self.watched for c in members):
                w = _Watched(b["id"], name[len(TALK_PREFIX):], set(members))
                for c in members:
                    self.watched[c] = w
                in_talk.update(members)
                log.info("adopted a conversation in progress (agent %s)", w.agent_id)
            elif not members or len(members) == 1:
                await self._end_watched(_Watched(b["id"], name[len(TALK_PREFIX):], set(members)))
        for cid, ch in live.items():
            if cid in self.owner or cid in in_talk or cid in self.watched or cid in self.callback_legs:
                continue
            if _AGENT_LEG.search(cid):
                await self._ignore(self.client.hangup(cid))  # an agent leg of ours nobody owns (ringing: AppDial2)
                continue
            dp = ch.get("dialplan") or {}
            data = dp.get("app_data") or ""
            if dp.get("app_name") != "Stasis" or not data.startswith(self.app + ","):
                continue  # not ours: a dialplan call, or another application's
            kind = data.split(",")[1] if "," in data else ""
            if kind == "inbound":
                # A prompt from before the restart may still be playing, and its id is not known here:
                # Asterisk carries the request out when it ends, so wait that long, in the background.
                log.info("a caller with no session (engine restarted): handing the call to the human fallback")
                if any(b["id"] == f"hold-{cid}" for b in bridges):
                    await self._ignore(self.client.destroy_bridge(f"hold-{cid}"))
                self._background(self._ignore(self.client.continue_in_dialplan(cid, *self.fallback,
                                                                               timeout=ORPHAN_CONTINUE_TIMEOUT)))
                self.owner[cid] = "fallback"
                self.calls_handled += 1
            else:
                await self._ignore(self.client.hangup(cid))
        for b in bridges:
            bid = b["id"]
            if (bid.startswith(("hold-", "talk-")) and not any(c in live for c in b.get("channels", []))
                    and not any(s.hold_bridge == bid or s.talk_bridge == bid for s in self.sessions.values())):
                await self._ignore(self.client.destroy_bridge(bid))
        await self._settle_router(live)

    async def _settle_router(self, live: dict[str, dict[str, Any]]) -> None:
        """Remove from the router what no live channel backs: waiting calls without a caller, agents on a call
        that no longer exists."""
        await self.settled_sessions()
        router = self.router
        if router is None:
            return
        for call_id in list(router.calls):
            if call_id in self.sessions or call_id.endswith("-callback"):
                continue
            await self.route("abandon", call_id, why="lost")
        talking = {w.agent_id for w in self.watched.values()} | {
            s.leg.agent_id for s in self.sessions.values() if s.leg is not None and s.leg.state == "up"} | {
            a for (_, a, st, _at) in self.callback_legs.values() if st == "up"}
        for agent_id, st in list(router.agents.items()):
            if st.status is Status.ON_CALL and agent_id not in talking:
                await self.route("call_ended", agent_id)

    async def settled_sessions(self) -> None:
        """Let sessions finish the reconcile items just posted (so the router check sees their result)."""
        for _ in range(3):
            pending = [s for s in self.sessions.values() if not s.inbox.empty()]
            if not pending:
                return
            await asyncio.sleep(0)

    async def _watched_event(self, cid: str, ev: dict[str, Any]) -> None:
        if ev.get("type") not in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            return
        w = self.watched.get(cid)
        if w is not None:
            await self._end_watched(w)

    async def _end_watched(self, w: _Watched) -> None:
        for c in w.channels:
            self.watched.pop(c, None)
            await self._ignore(self.client.hangup(c))
        await self._ignore(self.client.destroy_bridge(w.bridge_id))
        router = self.router
        if router is not None and w.agent_id in router.agents and router.agents[w.agent_id].status is Status.ON_CALL:
            await self.route("call_ended", w.agent_id)

    # ------------------------------------------------------------------ presence (from AMI)

    async def presence(self, endpoint: str, online: bool) -> None:
        """An agent's softphone registered or unregistered: make them unavailable, or give back their state."""
        agent_id = self.by_endpoint.get(endpoint)
        if agent_id is None or self.router is None:
            return
        if not online:
            self.offline.add(agent_id)
            await self._apply_presence()
            return
        self.offline.discard(agent_id)
        st = self.router.agents.get(agent_id)
        if st is None or st.status is not Status.NOT_READY or st.reason != "offline":
            return
        prev = self.before_offline.pop(agent_id, (Status.READY, None))
        if prev[0] is Status.NOT_READY and prev[1]:
            await self.route("pause", agent_id, prev[1])
        else:
            await self.route("ready", agent_id)

    async def _apply_presence(self) -> None:
        router = self.router
        for agent_id in list(self.offline):
            st = router.agents.get(agent_id)
            if st is None or st.status not in (Status.READY, Status.NOT_READY, Status.RESERVED):
                continue  # logged out stays so; on a call or in wrap-up: made unavailable once that is over
            if st.status is Status.NOT_READY and st.reason == "offline":
                continue
            prior = (Status.READY, None) if st.status is Status.RESERVED else (st.status, st.reason)
            self.before_offline.setdefault(agent_id, prior)
            # a ringing offer is withdrawn (the session then hangs the leg up) and the call re-matched
            await self.route("unavailable", agent_id, "offline")

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self, timeout: float = 5.0) -> None:
        """SIGTERM: hand every caller not yet talking to the dialplan fallback, then stop listening."""
        self._stopping = True
        for s in list(self.sessions.values()):
            s.post(("shutdown",))
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._cancel_tick()
        await self.client.close()

    def status(self) -> dict[str, Any]:
        """For the health endpoint: counts only, nothing about callers."""
        return {"connected": self.connected, "calls_in_progress": len(self.sessions),
                "calls_handled": self.calls_handled, "agents_offline": len(self.offline)}


__all__ = ["AriEngine", "TreeRoute", "AriNotFound"]
