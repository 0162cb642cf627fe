"""One inbound call on Asterisk: the interpreter's commands carried out over ARI, ARI's events fed back.

Each call is one asyncio task reading its own inbox (ARI events for its channels,
playbacks and recordings; its timers; routing decisions about it), so everything
about a call happens in order and a slow request on one call never holds up
another. The session holds no call logic: the tree's decisions come from
:class:`ivr.interpreter.Interpreter`, the routing decisions from the router; this
class only translates, and keeps the bookkeeping ARI needs (playback ids, bridges,
the agent's leg).

What the caller always gets, whatever fails:

* a prompt whose playback never reports its end (lost event, unsupported media)
  is ended by a watchdog after its expected length, so the call moves on;
* an ARI request that fails while the caller waits hands the call to the
  dialplan's human fallback (``continueInDialplan`` into ``ivr-fallback``);
* a queue the router does not know, or a routing store that fails, gives the
  tree's ``no_agents`` fallback, which the validator guarantees leads to a person.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ivr import commands as C
from ivr import events as E
from ivr.interpreter import CallState
from ivr.timing import item_seconds

from .errors import AriError, AriNotFound, AriServerError
from .media import position_media, prompt_media

if TYPE_CHECKING:
    from .engine import AriEngine, TreeRoute

log = logging.getLogger(__name__)

WATCHDOG_SLACK = 10.0  # seconds past a prompt's expected length before the engine stops waiting for its end


@dataclass
class AgentLeg:
    """The channel ringing (``dialing``) or connected to (``up``) the agent."""

    channel_id: str
    agent_id: str
    offered_at: Any = None  # the reservation this leg rings for (the router may re-offer the same agent)
    state: str = "dialing"


class CallSession:
    def __init__(self, engine: AriEngine, channel: dict[str, Any], route: TreeRoute, called: str | None) -> None:
        self.engine = engine
        self.client = engine.client
        self.clock = engine.clock
        self.channel_id: str = channel["id"]
        self.call_id = self.channel_id
        self.route = route
        self.interp = route.interpreter
        self.caller: str | None = (channel.get("caller") or {}).get("number") or None
        self.called = called
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.state: CallState | None = None
        self.started_at: datetime = self.clock.now()
        self.playing: dict[str, tuple[int, C.Collect | None]] = {}  # playback id -> (prompt id, collect)
        self.stopped: set[str] = set()
        self.collect: tuple[int, C.Collect] | None = None  # prompt whose keys are being collected
        self.timers: dict[str, Any] = {}
        self.hold_bridge: str | None = None
        self.talk_bridge: str | None = None
        self.leg: AgentLeg | None = None
        self.in_router = False  # waiting in (or ringing from) a router queue
        self.queue: str | None = None
        self.queued_at: datetime | None = None
        self.answered_at: datetime | None = None
        self.agent_id: str | None = None
        self.agent_ended_at: datetime | None = None
        self.recording: str | None = None
        self.recordings_made = 0
        self.record_started: datetime | None = None
        self.announcements = 0
        self.announcing: set[str] = set()
        self.hook_tasks: set[asyncio.Task[Any]] = set()
        self.gone = False  # the caller's channel left Stasis (hung up, transferred, handed to the dialplan)
        self.ended_by = "caller"
        self.fallback_taken = False
        self.changed = asyncio.Event()  # set after every item handled (tests and the benchmark wait on it)

    # ------------------------------------------------------------------ the task

    def post(self, item: tuple[Any, ...]) -> None:
        self.engine._busy_inc()
        self.inbox.put_nowait(item)

    async def run(self) -> None:
        try:
            while not self.gone:
                item = await self.inbox.get()
                try:
                    await self._handle(item)
                    rx = item[1].get("_rx") if item[0] == "ari" else None
                    if rx is not None:
                        self.engine.measure(item[1].get("type", ""), time.perf_counter() - rx)
                except asyncio.CancelledError:
                    raise
                except AriError as exc:
                    if isinstance(exc, AriNotFound) or "not found" in exc.message.lower():
                        log.info("call %s: the channel went away while handling %s", self.call_id, item[0])
                    else:
                        log.warning("call %s: ARI refused a request while handling %s (%s); handing the call "
                                    "to the human fallback", self.call_id, item[0], exc.error_id)
                        await self.to_fallback("ari-error")
                except Exception:
                    # Never let a bug strand a patient: log (no PHI: the type only) and hand the call to a person.
                    log.exception("call %s: error handling %s; handing the call to the human fallback",
                                  self.call_id, item[0])
                    await self.to_fallback("error")
                finally:
                    self.changed.set()
                    self.engine._busy_dec()
        finally:
            for h in self.timers.values():
                h.cancel()
            for t in self.hook_tasks:
                t.cancel()
            while not self.inbox.empty():  # items that arrived after the end: nothing to do, but count them
                self.inbox.get_nowait()
                self.engine._busy_dec()
            await self.engine._session_done(self)
            self.changed.set()

    async def _start(self) -> None:
        at = self.clock.now()
        state, cmds = self.interp.start(E.CallStarted(at=at, call_id=self.call_id, caller=self.caller,
                                                      called=self.called, language=self.route.language))
        self.state = state
        await self._carry_out(cmds)

    async def _step(self, event: Any) -> None:
        assert self.state is not None
        if self.state.phase == "ended":
            return
        self.state, cmds = self.interp.step(self.state, event)
        await self._carry_out(cmds)

    # ------------------------------------------------------------------ inbox

    async def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "start":
            await self._start()
        elif kind == "ari":
            await self._on_ari(item[1])
        elif kind == "timer":
            await self._on_timer(item[1], item[2])
        elif kind == "routing":
            await self._on_routing(item[1])
        elif kind == "reconcile":
            await self._reconcile(item[1])
        elif kind == "shutdown":
            await self._shutdown()

    async def _on_ari(self, ev: dict[str, Any]) -> None:
        t = ev.get("type")
        chan = (ev.get("channel") or ev.get("peer") or {}).get("id")
        if t in ("PlaybackFinished",):
            await self._playback_finished(ev["playback"]["id"])
        elif t in ("RecordingFinished", "RecordingFailed"):
            await self._recording_finished(ev["recording"], failed=t == "RecordingFailed")
        elif chan == self.channel_id:
            if t == "ChannelDtmfReceived":
                await self._digit(ev.get("digit", ""))
            elif t in ("ChannelHangupRequest", "StasisEnd", "ChannelDestroyed"):
                await self._caller_gone(t)
        elif self.leg is not None and chan == self.leg.channel_id:
            if t == "StasisStart":
                await self._agent_answered()
            elif t in ("ChannelDestroyed", "StasisEnd", "ChannelHangupRequest"):
                await self._leg_gone()

    # ------------------------------------------------------------------ commands

    async def _carry_out(self, cmds: list[Any]) -> None:
        for cmd in cmds:
            if self.gone:
                return
            try:
                await self._command(cmd)
            except AriError as exc:
                if isinstance(exc, AriNotFound) or "not found" in exc.message.lower():
                    # The channel went away under us (addChannel says so with a 400): its hang-up event is on
                    # its way and ends the session.
                    log.info("call %s: %s found the channel gone", self.call_id, type(cmd).__name__)
                    continue
                log.warning("call %s: %s failed (%s); handing the call to the human fallback",
                            self.call_id, type(cmd).__name__, exc.error_id)
                await self.to_fallback("ari-error")
                return

    async def _command(self, cmd: Any) -> None:
        c = self.client
        if isinstance(cmd, C.PlayPrompt):
            await self._play(cmd)
        elif isinstance(cmd, C.StopPrompt):
            for pb, (pid, _collect) in list(self.playing.items()):
                if pid == cmd.prompt_id:
                    self.stopped.add(pb)
                    self.playing.pop(pb, None)
                    self._cancel(f"watchdog:{pb}")
                    await self._ignore_gone(c.stop_playback(pb))
            if self.collect is not None and self.collect[0] == cmd.prompt_id:
                self._arm_collect()  # the caller barged in: their next key (or silence) is timed from now
        elif isinstance(cmd, C.Answer):
            await c.answer(self.channel_id)
        elif isinstance(cmd, C.Enqueue):
            await self._enqueue(cmd)
        elif isinstance(cmd, C.Dequeue):
            await self._leave_router("dequeued")
            await self._unhold()
        elif isinstance(cmd, C.Transfer):
            await self._leave_router("transferred")
            await self._silence()
            await self._unhold()
            await c.continue_in_dialplan(self.channel_id, self.engine.transfer_context, cmd.to, 1)
            self.ended_by = "transfer"
            await self._step(E.TransferResult(self.clock.now(), True))
        elif isinstance(cmd, C.Record):
            await self._record(cmd)
        elif isinstance(cmd, C.HangupCall):
            self.ended_by = "engine"
            await self._leave_router("abandoned")
            await c.hangup(self.channel_id)
        elif isinstance(cmd, C.CallHook):
            self._run_hook(cmd)
        elif isinstance(cmd, C.RequestCallback):
            await self.engine.request_callback(self.call_id, cmd)
        elif isinstance(cmd, C.SendSms):
            log.info("call %s: text message not sent: no SMS provider is configured for Asterisk", self.call_id)

    async def _silence(self) -> None:
        """Stop whatever plays on the caller's channel.

        Asterisk runs a channel's commands in order *behind* a running playback (recorded: an ``answer`` or
        ``addChannel`` sent during a playback is answered only when it ends), so moving the caller to an
        agent, a transfer or the fallback must first stop the prompt or announcement, or wait for it.
        """
        for pb in list(self.playing) + list(self.announcing):
            self.stopped.add(pb)
            self.playing.pop(pb, None)
            self.announcing.discard(pb)
            self._cancel(f"watchdog:{pb}")
            await self._ignore_gone(self.client.stop_playback(pb))

    async def _ignore_gone_or_idle(self, coro: Any) -> None:
        try:
            await coro
        except AriError:
            pass  # the channel is gone, or had no music playing

    async def _ignore_gone(self, coro: Any) -> None:
        try:
            await coro
        except AriNotFound:
            pass

    # ------------------------------------------------------------------ prompts and keys

    async def _play(self, cmd: C.PlayPrompt) -> None:
        pb = f"{self.call_id}-p{cmd.prompt_id}"
        self.playing[pb] = (cmd.prompt_id, cmd.collect)
        self.engine.own(pb, self)
        if cmd.collect is not None:
            self.collect = (cmd.prompt_id, cmd.collect)
            self._cancel("collect")  # armed when the prompt ends
        expected = sum(item_seconds(i, self.route.wpm) for i in cmd.items)
        self._arm(f"watchdog:{pb}", expected + WATCHDOG_SLACK, ("watchdog", pb))
        lang = cmd.items[0].language if cmd.items and hasattr(cmd.items[0], "language") else None
        await self.client.play(self.channel_id, prompt_media(cmd.items), playback_id=pb, lang=lang)

    async def _playback_finished(self, pb: str) -> None:
        self.engine.disown(pb)
        self._cancel(f"watchdog:{pb}")
        self.announcing.discard(pb)
        if pb in self.stopped:
            self.stopped.discard(pb)
            return
        entry = self.playing.pop(pb, None)
        if entry is None:
            return  # an announcement, or a prompt already given up on
        pid, collect = entry
        if collect is not None and self.collect is not None and self.collect[0] == pid:
            self._arm_collect()
        await self._step(E.PromptFinished(self.clock.now(), pid))

    def _arm_collect(self) -> None:
        if self.collect is None:
            return
        pid, col = self.collect
        self._arm("collect", col.timeout, ("collect", pid))

    async def _digit(self, digit: str) -> None:
        if not digit:
            return
        if self.collect is not None and not any(p == self.collect[0] for p, _ in self.playing.values()):
            self._arm_collect()  # the inter-digit timeout restarts on every key once the prompt is over
        await self._step(E.Digit(self.clock.now(), digit))

    # ------------------------------------------------------------------ timers

    def _arm(self, name: str, delay: float, payload: tuple[Any, ...]) -> None:
        self._cancel(name)
        self.timers[name] = self.clock.call_later(delay, lambda: self.post(("timer", name, payload)))

    def _cancel(self, name: str) -> None:
        h = self.timers.pop(name, None)
        if h is not None:
            h.cancel()

    async def _on_timer(self, name: str, payload: tuple[Any, ...]) -> None:
        if self.timers.get(name) is None:
            return  # cancelled after it fired
        del self.timers[name]
        what = payload[0]
        if what == "collect":
            pid = payload[1]
            assert self.state is not None
            if self.collect is not None and self.collect[0] == pid and self.state.prompt_id == pid:
                await self._step(E.InputTimeout(self.clock.now(), pid))
        elif what == "watchdog":
            pb = payload[1]
            if pb in self.playing:
                log.warning("call %s: playback %s never reported its end; moving on", self.call_id, pb)
                await self._ignore_gone(self.client.stop_playback(pb))
                await self._playback_finished(pb)
        elif what == "announce":
            await self._announce()
        elif what == "max-wait":
            if self.in_router and (self.leg is None or self.leg.state == "dialing"):
                await self._leave_router("timeout")
                await self._unhold()
                await self._step(E.QueueResult(self.clock.now(), "timeout"))
        elif what == "hook":
            rid, ok, values, error = payload[1:]
            await self._step(E.HookResult(self.clock.now(), rid, ok, values=values, error=error))

    # ------------------------------------------------------------------ queue and agent

    async def _enqueue(self, cmd: C.Enqueue) -> None:
        c = self.client
        self.queue = cmd.queue
        if self.queued_at is None:
            self.queued_at = self.clock.now()
        if self.hold_bridge is None:
            bridge = await c.create_bridge("holding", bridge_id=f"hold-{self.call_id}", name=f"ivr-hold:{cmd.queue}")
            self.hold_bridge = bridge["id"]
            await c.add_channel(self.hold_bridge, self.channel_id, role="participant")
            moh = cmd.hold_music or "default"
            if self.engine.bridge_moh is not False:
                try:
                    await c.bridge_moh(self.hold_bridge, moh)
                    self.engine.bridge_moh = True
                except AriServerError:
                    # Builds without chan_bridge_media refuse bridge MOH (500, "Allocation failed"): remember
                    # it, and play music on the caller's channel instead, now and for every later caller.
                    self.engine.bridge_moh = False
            if self.engine.bridge_moh is False:
                await c.start_moh(self.channel_id, moh)
        ticket = self.state.ticket if self.state is not None else None
        decisions = await self.engine.route("enqueue", self.call_id, cmd.queue, skills=cmd.skills,
                                            language=cmd.language, priority=cmd.priority,
                                            since=ticket.since if ticket is not None else self.clock.now())
        if decisions is None:  # routing refused (unknown queue, store down): the tree's fallback takes the call
            await self._unhold()
            await self._step(E.QueueResult(self.clock.now(), "no_agents"))
            return
        self.in_router = True
        if cmd.max_wait:
            self._arm("max-wait", cmd.max_wait, ("max-wait",))
        if cmd.announce:
            self._arm("announce", self.engine.announce_every, ("announce",))
        await self._on_routing(decisions)

    async def _announce(self) -> None:
        if not self.in_router or self.leg is not None:
            if self.in_router:
                self._arm("announce", self.engine.announce_every, ("announce",))
            return
        router = self.engine.router
        if router is None or self.call_id not in router.calls:
            return
        now = self.clock.now()
        pos = router.position(self.call_id)
        wait = router.estimated_wait(self.call_id, now)
        self.announcements += 1
        pb = f"{self.call_id}-a{self.announcements}"
        self.engine.own(pb, self)
        self.announcing.add(pb)
        lang = self.state.language if self.state is not None else None
        await self._ignore_gone(self.client.play(self.channel_id, position_media(pos, wait), playback_id=pb,
                                                 lang=lang))
        self._arm("announce", self.engine.announce_every, ("announce",))

    async def _on_routing(self, decisions: list[Any]) -> None:
        """Make the agent leg match the router: ring who it reserved, stop ringing who it no longer does."""
        from routing.model import QueueFailed

        if not self.in_router:
            return
        router = self.engine.router
        failed = next((d.outcome for d in decisions if isinstance(d, QueueFailed) and d.call_id == self.call_id), None)
        res = router.reservations.get(self.call_id) if router is not None else None
        want = res.agent_id if res is not None else None
        if self.leg is not None and self.leg.state == "dialing" and (
                self.leg.agent_id != want or res is None or self.leg.offered_at != res.offered_at):
            old, self.leg = self.leg, None  # the router moved on (ring timeout, caller's turn passed): stop ringing
            await self._hangup_quietly(old.channel_id)
        if res is not None and self.leg is None:
            await self._ring(want, res.offered_at)
        if failed is None and router is not None and self.call_id not in router.calls and (
                self.leg is None or self.leg.state != "up"):
            failed = "no_agents"  # gone from the router without a word (should not happen): never wait forever
        if failed is not None and self.call_id not in (router.calls if router is not None else {}):
            self.in_router = False
            self._cancel("announce")
            self._cancel("max-wait")
            await self._unhold()
            await self._step(E.QueueResult(self.clock.now(), failed))  # type: ignore[arg-type]

    async def _ring(self, agent_id: str, offered_at: Any) -> None:
        spec = self.engine.agents.get(agent_id)
        self.engine._leg_seq += 1
        leg_id = f"{self.call_id}-agent{self.engine._leg_seq}"
        if spec is None or not spec.endpoint.startswith(("PJSIP/", "SIP/")):
            log.warning("call %s: agent %s has no Asterisk endpoint; counting the offer as not answered",
                        self.call_id, agent_id)
            await self._no_answer(agent_id, offered_at)
            return
        self.leg = AgentLeg(leg_id, agent_id, offered_at)
        self.engine.own(leg_id, self)
        queue = self.engine.queues.get(self.queue or "")
        # Asterisk gives up a second before the router does, so its "no answer" (or the agent's answer) is
        # what ends the ring, never a race with the router's own timer.
        ring = max(1, int(queue.ring_timeout) - 1) if queue is not None else 19
        lang = self.state.language if self.state is not None else ""
        variables = {"IVR_CALL_ID": self.call_id, "IVR_QUEUE": self.queue or "", "IVR_LANGUAGE": lang,
                     "IVR_TREE": self.route.name}
        try:
            await self.client.originate(spec.endpoint, app=self.engine.app, app_args=f"agent,{self.call_id}",
                                        caller_id=f'"{self.queue}" <{self.caller or "anonymous"}>',
                                        timeout=ring, variables=variables, channel_id=leg_id)
        except AriError as exc:
            # 500 "Allocation failed": no contact registered (softphone offline) or Asterisk refused the dial.
            # No answer at all (timeout): the channel may exist anyway, so hang up the id we chose.
            log.info("call %s: ringing agent %s failed (%s)", self.call_id, agent_id, exc.error_id)
            if not isinstance(exc, AriServerError):
                await self._hangup_quietly(leg_id)
            if self.leg is not None and self.leg.channel_id == leg_id:
                self.leg = None
                self.engine.disown(leg_id)
                await self._no_answer(agent_id, offered_at)

    async def _no_answer(self, agent_id: str, offered_at: Any) -> None:
        router = self.engine.router
        res = router.reservations.get(self.call_id) if router is not None else None
        if res is None or res.agent_id != agent_id or res.offered_at != offered_at:
            return  # the router already ended that offer (its own ring timeout, the caller left)
        decisions = await self.engine.route("no_answer", self.call_id, agent_id=agent_id, offered_at=offered_at)
        if decisions is not None:
            await self._on_routing(decisions)

    async def _leg_gone(self) -> None:
        leg = self.leg
        if leg is None:
            return
        self.leg = None
        self.engine.disown(leg.channel_id)
        if leg.state == "dialing":
            await self._no_answer(leg.agent_id, leg.offered_at)
            return
        # the agent hung up: the caller continues at the tree's after-call node (a survey) or the call ends
        self.agent_ended_at = self.clock.now()
        await self._destroy_talk()
        await self.engine.route("call_ended", leg.agent_id)
        self.ended_by = "agent"
        await self._step(E.AgentDisconnected(self.clock.now()))

    async def _agent_answered(self) -> None:
        leg = self.leg
        assert leg is not None
        router = self.engine.router
        res = router.reservations.get(self.call_id) if router is not None else None
        if res is None or res.agent_id != leg.agent_id:
            self.leg = None  # answered just as the router gave up on them: the caller stays where they are
            await self._hangup_quietly(leg.channel_id)
            return
        leg.state = "up"
        explanation = ""
        decisions = await self.engine.route("answered", self.call_id, agent_id=leg.agent_id, offered_at=leg.offered_at)
        if decisions is None:  # the router ended this offer just before the answer: the caller keeps waiting
            self.leg = None
            await self._hangup_quietly(leg.channel_id)
            await self._on_routing([])
            return
        self.in_router = False
        self._cancel("announce")
        self._cancel("max-wait")
        self.answered_at = self.clock.now()
        self.agent_id = leg.agent_id
        await self._silence()
        if self.hold_bridge is not None and self.engine.bridge_moh is False:
            await self._ignore_gone_or_idle(self.client.stop_moh(self.channel_id))  # as recorded: music off first
        bridge = await self.client.create_bridge("mixing", bridge_id=f"talk-{self.call_id}",
                                                 name=f"ivr-talk:{leg.agent_id}")
        self.talk_bridge = bridge["id"]
        await self.client.add_channel(self.talk_bridge, [self.channel_id, leg.channel_id])
        if self.hold_bridge is not None:
            await self._destroy_hold()
        await self._step(E.AgentConnected(self.clock.now(), leg.agent_id, explanation))

    async def _leave_router(self, why: str) -> None:
        """The caller leaves the queue (hung up, pressed a key, timed out): release whoever was ringing."""
        self._cancel("announce")
        self._cancel("max-wait")
        if self.leg is not None and self.leg.state == "dialing":
            leg, self.leg = self.leg, None
            await self._hangup_quietly(leg.channel_id)
        if self.in_router:
            self.in_router = False
            router = self.engine.router
            if router is not None and self.call_id in router.calls:
                await self.engine.route("abandon", self.call_id, why=why)

    async def _unhold(self) -> None:
        if self.hold_bridge is None:
            return
        try:
            await self.client.stop_moh(self.channel_id)
        except AriError:
            pass  # no channel MOH was playing (bridge MOH), or the channel is gone
        await self._destroy_hold()

    async def _destroy_hold(self) -> None:
        b, self.hold_bridge = self.hold_bridge, None
        if b is not None:
            await self._ignore_gone(self.client.destroy_bridge(b))

    async def _destroy_talk(self) -> None:
        b, self.talk_bridge = self.talk_bridge, None
        if b is not None:
            await self._ignore_gone(self.client.destroy_bridge(b))

    async def _hangup_quietly(self, channel_id: str) -> None:
        try:
            await self.client.hangup(channel_id)
        except AriError:
            pass  # already gone
        self.engine.disown(channel_id)

    # ------------------------------------------------------------------ record, hooks

    async def _record(self, cmd: C.Record) -> None:
        self.recordings_made += 1
        name = f"{self.call_id}-{cmd.kind}{self.recordings_made}"
        self.recording = name
        self.record_started = self.clock.now()
        self.engine.own(name, self)
        await self.client.record(self.channel_id, name, max_duration=int(cmd.max_length), beep=cmd.beep,
                                 terminate_on=cmd.finish_key or "#")

    async def _recording_finished(self, rec: dict[str, Any], *, failed: bool) -> None:
        name = rec.get("name")
        if name != self.recording:
            return
        self.engine.disown(name)
        self.recording = None
        started = self.record_started or self.clock.now()
        duration = float(rec.get("duration") or (self.clock.now() - started).total_seconds())
        await self._step(E.RecordingFinished(self.clock.now(), 0.0 if failed else duration, name or ""))

    def _run_hook(self, cmd: C.CallHook) -> None:
        fn = self.engine.hooks.get(cmd.hook)

        async def run() -> None:
            if fn is None:
                result: tuple[Any, ...] = ("hook", cmd.request_id, False, {}, "no hook registered")
            else:
                try:
                    values = await asyncio.wait_for(asyncio.to_thread(fn, dict(cmd.args)), cmd.timeout)
                    ok = isinstance(values, dict) and not values.get("error")
                    result = ("hook", cmd.request_id, ok, values if isinstance(values, dict) else {},
                              "" if ok else "hook error")
                except asyncio.TimeoutError:
                    result = ("hook", cmd.request_id, False, {}, "timeout")
                except Exception as exc:  # a deployment hook failing must not break the call
                    result = ("hook", cmd.request_id, False, {}, type(exc).__name__)
            self.timers[f"hook{cmd.request_id}"] = _Fired()
            self.post(("timer", f"hook{cmd.request_id}", result))

        t = asyncio.get_running_loop().create_task(run())
        self.hook_tasks.add(t)
        t.add_done_callback(self.hook_tasks.discard)

    # ------------------------------------------------------------------ the end

    async def _caller_gone(self, how: str) -> None:
        if self.gone:
            return
        self.gone = True
        if how == "lost":
            self.ended_by = "asterisk"  # the channel vanished while the events socket was down
        now = self.clock.now()
        for pb in list(self.playing):
            self.engine.disown(pb)
        if self.leg is not None:
            leg, self.leg = self.leg, None
            await self._hangup_quietly(leg.channel_id)
            if leg.state == "up":
                self.agent_ended_at = now
                await self.engine.route("call_ended", leg.agent_id)
        if self.in_router:
            self.in_router = False
            router = self.engine.router
            if router is not None and self.call_id in router.calls:
                await self.engine.route("abandon", self.call_id)
        await self._destroy_hold()
        await self._destroy_talk()
        if self.state is not None and self.state.phase != "ended" and how != "left-stasis":
            self.state, _ = self.interp.step(self.state, E.Hangup(now))  # commands moot: the line is gone

    async def to_fallback(self, why: str) -> None:
        """Hand the caller to the dialplan's human fallback (``ivr-fallback``): used on errors and shutdown."""
        if self.gone or self.fallback_taken:
            return
        self.fallback_taken = True
        self.ended_by = "fallback"
        for step in (lambda: self._leave_router("fallback"), self._silence, self._unhold, self._destroy_talk):
            try:
                await step()
            except Exception as exc:  # tidying up must never stop the caller from reaching the fallback
                log.warning("call %s: cleanup before the fallback failed (%s)", self.call_id,
                            getattr(exc, "error_id", type(exc).__name__))
        ctx, exten, prio = self.engine.fallback
        try:
            await self.client.continue_in_dialplan(self.channel_id, ctx, exten, prio)
        except AriError as exc:
            log.error("call %s: could not hand the call to the dialplan fallback (%s)", self.call_id, exc.error_id)
        await self._caller_gone("left-stasis")

    async def _shutdown(self) -> None:
        if self.leg is not None and self.leg.state == "up":
            # talking to an agent: leave them be; the bridge lives on in Asterisk without the engine
            self.ended_by = "engine"
            self.gone = True
            return
        await self.to_fallback("shutdown")

    async def _reconcile(self, live: dict[str, dict[str, Any]]) -> None:
        """After the events socket came back: replay what the gap may have swallowed."""
        if self.channel_id not in live:
            await self._caller_gone("lost")
            return
        if self.leg is not None:
            ch = live.get(self.leg.channel_id)
            if ch is None:
                await self._leg_gone()
            elif self.leg.state == "dialing" and ch.get("state") == "Up":
                await self._agent_answered()
        for pb in list(self.playing):
            try:
                await self.client.get_playback(pb)
            except AriNotFound:
                await self._playback_finished(pb)
        if self.recording is not None:
            try:
                await self.client.get_live_recording(self.recording)
            except AriNotFound:
                await self._recording_finished({"name": self.recording}, failed=False)

    def record(self) -> Any:
        """The call record for the store (no PHI)."""
        from routing.store import CallRecord

        st = self.state
        outcome = "fallback" if self.fallback_taken else (st.outcome.kind if st is not None and st.outcome else "hangup")
        return CallRecord(self.call_id, self.route.name, "asterisk", self.started_at, self.clock.now(), outcome,
                          st.node if st is not None else "", self.ended_by, queue=self.queue, agent_id=self.agent_id,
                          queued_at=self.queued_at, answered_at=self.answered_at, agent_ended_at=self.agent_ended_at)


class _Fired:
    """A timer slot for a hook result that has already arrived (so ``_on_timer`` accepts it)."""

    def cancel(self) -> None:
        pass
