"""ARI stand-in: an aiohttp server on 127.0.0.1 that behaves like Asterisk 22.10.1.

Every REST request goes through :func:`standin.apidocs.validate`; requests that
Asterisk would reject (or that break the API contract in ways Asterisk silently
tolerates) are recorded in ``server.violations`` and answered as Asterisk does.
State errors (e.g. 404 on a channel that just hung up) go to ``server.rejections``.

Use ``async with AriStandIn() as server:`` -- on exit it asserts no violations.
Nothing here finishes on a timer: playbacks end by ``finish_playback`` or DELETE.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import WSMsgType, web

from . import apidocs

ASTERISK_ID = "02:fc:00:00:00:01"
SERVER_HEADERS = {"Server": "Asterisk/22.10.1", "Cache-Control": "no-cache, no-store"}
BAD_REQUEST_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
    "<title>400 Bad Request</title>\r\n</head><body>\r\n<h1>Bad Request</h1>\r\n"
    "<p>HTTP request is missing param: [app]</p>\r\n<hr />\r\n"
    "<address>Asterisk Server</address>\r\n</body></html>\r\n")
RTP_VARS = ["RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES"]
BRIDGE_TECH = {"mixing": "simple_bridge", "holding": "holding_bridge", "dtmf_events": "simple_bridge",
               "proxy_media": "simple_bridge", "video_sfu": "softmix", "video_single": "simple_bridge",
               "sdp_label": "simple_bridge"}
CAUSE_TXT = {16: "Normal Clearing", 17: "User busy", 19: "User alerting, no answer", 0: "Unknown"}


def ts() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


class CallRejected(Exception):
    """Stasis app not active: a real caller would get SIP 603 Decline."""


@dataclass
class Channel:
    id: str
    name: str
    state: str
    protocol_id: str
    caller: dict
    connected: dict
    dialplan: dict
    creationtime: str
    app: str | None = None
    in_stasis: bool = False
    originated: bool = False
    args: list = field(default_factory=list)
    bridge: str | None = None
    variables: dict = field(default_factory=dict)
    queue: list = field(default_factory=list)  # playback ids, first = current
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    dialstring: str = ""

    def json(self):
        return {"id": self.id, "name": self.name, "state": self.state,
                "protocol_id": self.protocol_id, "caller": dict(self.caller),
                "connected": dict(self.connected), "accountcode": "",
                "dialplan": dict(self.dialplan), "creationtime": self.creationtime,
                "language": "en"}


@dataclass
class Bridge:
    id: str
    bridge_type: str
    name: str
    creationtime: str
    channels: list = field(default_factory=list)
    emptied_by_move: bool = False

    def json(self):
        return {"id": self.id, "technology": BRIDGE_TECH.get(self.bridge_type, "simple_bridge"),
                "bridge_type": self.bridge_type, "bridge_class": "stasis", "creator": "Stasis",
                "name": self.name, "channels": list(self.channels),
                "creationtime": self.creationtime, "video_mode": "talker"}


@dataclass
class Playback:
    id: str
    media: list
    target: str
    language: str
    state: str = "queued"

    def json(self):
        d = {"id": self.id, "media_uri": self.media[0]}
        if len(self.media) > 1:
            d["next_media_uri"] = self.media[1]
        d.update(target_uri=self.target, language=self.language, state=self.state)
        return d


class AriStandIn:
    def __init__(self, app: str = "ivr-engine", username: str = "USER", password: str = "SECRET",
                 endpoints: dict | None = None, missing_sounds: set | None = None,
                 bridge_media: bool = False, strict: bool = True):
        self.app_name = app
        self.username, self.password = username, password
        # tech/resource -> "online" | "offline"
        self.endpoints = endpoints if endpoints is not None else {
            "PJSIP/agent1001": "online", "PJSIP/agent1002": "online", "PJSIP/agent1003": "offline"}
        self.missing_sounds = missing_sounds or set()
        self.bridge_media = bridge_media  # False mirrors the recorded build (no chan_bridge_media)
        self.strict = strict
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.playbacks: dict[str, list[Playback]] = {}  # id -> playbacks sharing that id
        self.recordings: dict[str, dict] = {}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.violations: list[str] = []
        self.rejections: list[tuple] = []
        self.requests: list[tuple] = []
        self.events: list[dict] = []  # every event emitted (also ones lost for lack of a socket)
        self._seq = itertools.count(20)
        self._epoch = int(time.time())
        self._tasks: set[asyncio.Task] = set()
        self._ws_waiters: list[asyncio.Future] = []
        self._runner = None
        self.port = None

    # ------------------------------------------------------------ lifecycle
    async def start(self):
        self.docs = apidocs.docs()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}/ari"

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}/ari/events?app={self.app_name}"

    @property
    def auth(self):
        return (self.username, self.password)

    async def close(self):
        for ws in list(self.sockets.values()):
            await ws.close()
        for t in list(self._tasks):
            t.cancel()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, et, e, tb):
        await self.close()
        if et is None:
            assert_no_violations(self)

    # ---------------------------------------------------------------- events
    async def _emit(self, event: dict, app: str | None = None):
        app = app or self.app_name
        if "application" not in event:
            event["asterisk_id"] = ASTERISK_ID
            event["application"] = app
        self.events.append(event)
        ws = self.sockets.get(app)
        if ws is not None and not ws.closed:
            await ws.send_str(json.dumps(event, separators=(",", ":")))

    def _later(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _ev(self, type_, *, pre: dict | None = None, **kw):
        d = dict(pre or {})
        d["type"] = type_
        d["timestamp"] = ts()
        d.update(kw)
        return d

    async def _chan_event(self, type_, ch: Channel, pre=None, **kw):
        await self._emit(self._ev(type_, pre=pre, **kw, channel=ch.json()), ch.app)

    # ---------------------------------------------------------- scripting API
    def _new_id(self):
        return f"{self._epoch}.{next(self._seq)}"

    async def wait_connected(self, timeout=5.0):
        if self.app_name in self.sockets:
            return
        fut = asyncio.get_running_loop().create_future()
        self._ws_waiters.append(fut)
        await asyncio.wait_for(fut, timeout)

    async def inject_call(self, caller: str = "5550100", exten: str = "100",
                          caller_name: str = "Test Caller", args: list | None = None,
                          stasis: bool = True) -> str:
        """A caller dials ``exten`` which runs Stasis(app,inbound,exten)."""
        cid = self._new_id()
        args = ["inbound", exten] if args is None else list(args)
        seq = int(cid.split(".")[1])
        ch = Channel(cid, f"PJSIP/caller-{seq:08x}", "Ring", f"{uuid.uuid4().hex[:8]}@127.0.0.1",
                     {"name": caller_name, "number": caller}, {"name": "", "number": ""},
                     {"context": "from-caller", "exten": exten, "priority": 2,
                      "app_name": "Stasis", "app_data": ",".join([self.app_name] + args)}, ts())
        ch.idle.set()
        if not stasis:  # e.g. ext 300 Echo(): a dialplan channel the app does not own
            ch.state = "Up"
            ch.dialplan.update(priority=1, app_name="Echo", app_data="")
            self.channels[cid] = ch
            return cid
        if self.app_name not in self.sockets:
            raise CallRejected(f"Stasis app '{self.app_name}' not active (SIP 603 Decline)")
        ch.app, ch.in_stasis, ch.args = self.app_name, True, args
        self.channels[cid] = ch
        await self._emit(self._ev("StasisStart", args=args, channel=ch.json()), ch.app)
        return cid

    async def send_dtmf(self, channel_id: str, digits: str, duration_ms: int = 280):
        ch = self.channels[channel_id]
        for d in digits:
            await self._chan_event_pre("ChannelDtmfReceived", ch, digit=d, duration_ms=duration_ms)

    async def _chan_event_pre(self, type_, ch, **fields):
        ev = {"type": type_, "timestamp": ts(), **fields, "channel": ch.json()}
        await self._emit(ev, ch.app)

    async def hangup(self, channel_id: str, cause: int | None = None):
        """The far end hangs up (SIP BYE)."""
        ch = self.channels[channel_id]
        for var in RTP_VARS:
            await self._emit({"variable": var, "value": "", "type": "ChannelVarset",
                              "timestamp": ts(), "channel": ch.json()}, ch.app)
        pre = {"cause": cause} if cause is not None else None
        await self._end_channel(ch, pre, destroy_cause=16)

    async def _end_channel(self, ch: Channel, hangup_pre, destroy_cause=16):
        await self._emit(self._ev("ChannelHangupRequest", pre=hangup_pre, channel=ch.json()), ch.app)
        await self._stop_channel_playbacks(ch)
        if ch.bridge:
            await self._leave_bridge(ch)
        if ch.in_stasis:
            ch.in_stasis = False
            await self._chan_event("StasisEnd", ch)
        if ch.originated:
            ch.dialplan.update(app_name="AppDial2", app_data="(Outgoing Line)")
            await self._emit({"type": "ChannelDestroyed", "timestamp": ts(), "cause": destroy_cause,
                              "cause_txt": CAUSE_TXT.get(destroy_cause, ""), "channel": ch.json()}, ch.app)
        self.channels.pop(ch.id, None)

    async def ring(self, channel_id: str):
        """An originated leg starts ringing."""
        ch = self.channels[channel_id]
        ch.state = "Ringing"
        await self._chan_event("ChannelStateChange", ch)
        await self._dial(ch, "RINGING")

    async def answer_originated(self, channel_id: str):
        """The agent picks up: Up, Dial ANSWER, then StasisStart."""
        ch = self.channels[channel_id]
        if ch.state != "Ringing":
            await self.ring(channel_id)
        ch.state = "Up"
        await self._chan_event("ChannelStateChange", ch)
        await self._dial(ch, "ANSWER")
        ch.in_stasis = True
        ch.dialplan.update(app_name="Stasis", app_data=",".join([ch.app] + ch.args))
        await self._emit(self._ev("StasisStart", args=ch.args, channel=ch.json()), ch.app)

    async def reject(self, channel_id: str):
        """The agent declines (SIP 486)."""
        ch = self.channels[channel_id]
        await self._emit(self._ev("ChannelHangupRequest", pre={"cause": 17, "tech_cause": 486},
                                  channel=ch.json()), ch.app)
        await self._dial(ch, "BUSY")
        await self._emit({"type": "ChannelDestroyed", "timestamp": ts(), "cause": 17,
                          "cause_txt": "User busy", "channel": ch.json()}, ch.app)
        self.channels.pop(ch.id, None)

    async def no_answer(self, channel_id: str):
        """The originate timeout expires: only ChannelDestroyed 19."""
        ch = self.channels[channel_id]
        await self._emit({"type": "ChannelDestroyed", "timestamp": ts(), "cause": 19,
                          "cause_txt": "User alerting, no answer", "tech_cause": 480,
                          "channel": ch.json()}, ch.app)
        self.channels.pop(ch.id, None)

    async def _dial(self, ch, status):
        await self._emit({"type": "Dial", "timestamp": ts(), "dialstatus": status, "forward": "",
                          "dialstring": ch.dialstring, "peer": ch.json()}, ch.app)

    async def finish_playback(self, playback_id: str, state: str = "done"):
        """The current media of a playback ends (PlaybackContinuing if more media)."""
        pb = self.playbacks[playback_id][0]
        if len(pb.media) > 1:
            pb.media.pop(0)
            await self._emit(self._ev("PlaybackContinuing", playback=pb.json()))
            return
        await self._finish(pb, state)

    async def drop_websocket(self, app: str | None = None):
        ws = self.sockets.pop(app or self.app_name, None)
        if ws is not None:
            await ws.close()

    async def restart(self):
        """Asterisk restarts: every channel, bridge, playback and recording vanishes without an event,
        and the events socket closes (the client must reconnect and find nothing)."""
        self.channels.clear()
        self.bridges.clear()
        self.playbacks.clear()
        self.recordings.clear()
        for app in list(self.sockets):
            await self.drop_websocket(app)

    async def finish_recording(self, name: str):
        rec = self.recordings.pop(name)
        rec["state"] = "done"
        await self._emit(self._ev("RecordingFinished", recording=rec))

    # ------------------------------------------------------------- playbacks
    async def _start_next(self, ch: Channel):
        if not ch.queue:
            ch.idle.set()
            return
        pb = ch.queue[0]
        pb.state = "playing"
        await self._emit(self._ev("PlaybackStarted", playback=pb.json()))
        scheme = pb.media[0].split(":", 1)[0] if ":" in pb.media[0] else ""
        if scheme not in ("sound", "recording", "number", "digits", "characters", "tone"):
            return  # Asterisk: PlaybackStarted and never a PlaybackFinished
        if scheme == "sound" and pb.media[0][6:] in self.missing_sounds:
            await self._finish(pb, "failed")

    def _detach(self, pb: Playback):
        lst = self.playbacks.get(pb.id, [])
        if pb in lst:
            lst.remove(pb)
        if not lst:
            self.playbacks.pop(pb.id, None)
        ch = self.channels.get(pb.target.split(":", 1)[1])
        was_current = bool(ch and ch.queue and ch.queue[0] is pb)
        if ch and pb in ch.queue:
            ch.queue.remove(pb)
        return ch, was_current

    async def _finish(self, pb: Playback, state: str, detached=None):
        ch, was_current = detached or self._detach(pb)
        pb.state = state
        await self._emit(self._ev("PlaybackFinished", playback=pb.json()))
        if ch and was_current:
            await self._start_next(ch)

    async def _stop_channel_playbacks(self, ch):
        for pb in list(ch.queue):
            lst = self.playbacks.get(pb.id, [])
            if pb in lst:
                lst.remove(pb)
            if not lst:
                self.playbacks.pop(pb.id, None)
        ch.queue.clear()
        ch.idle.set()

    # --------------------------------------------------------------- bridges
    async def _leave_bridge(self, ch, moving=False):
        br = self.bridges.get(ch.bridge)
        ch.bridge = None
        if br is None:
            return
        br.channels.remove(ch.id)
        if moving and not br.channels:
            br.emptied_by_move = True
        await self._emit(self._ev("ChannelLeftBridge", bridge=br.json(), channel=ch.json()), ch.app)

    # ------------------------------------------------------------------ HTTP
    @web.middleware
    async def _middleware(self, request, handler):
        resp = await handler(request)
        for k, v in SERVER_HEADERS.items():
            resp.headers.setdefault(k, v)
        return resp

    def _authorized(self, request) -> bool:
        h = request.headers.get("Authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return (user, pw) == (self.username, self.password)
        key = request.query.get("api_key")
        return key == f"{self.username}:{self.password}"

    @staticmethod
    def _json(status, body, headers=None):
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, text=json.dumps(body, separators=(",", ":")),
                            content_type="application/json", headers=headers)

    def _error(self, request, e: apidocs.ApiError, state=True):
        if state:
            self.rejections.append((request.method, request.path, dict(request.query), e.status, e.body))
        return self._json(e.status, e.body, e.headers or None)

    async def _dispatch(self, request: web.Request):
        path = request.path
        if not path.startswith("/ari"):
            return self._json(404, {"message": "Resource not found"})
        if not self._authorized(request):
            return self._json(401, {"message": "Authentication required"},
                              {"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'})
        if path.rstrip("/") == "/ari/events" and request.method == "GET":
            return await self._websocket(request)
        query: dict = {}
        for k, v in request.query.items():
            if k == "api_key":
                continue
            query.setdefault(k, []).append(v)
        query = {k: v[0] if len(v) == 1 else ",".join(v) for k, v in query.items()}
        body = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.violations.append(f"{request.method} {path}: body is not JSON")
        self.requests.append((request.method, path, query, body))
        verdict = apidocs.validate(request.method, path, query, body)
        if isinstance(verdict, apidocs.ApiError):
            self.violations.append(
                f"{request.method} {path} {query}: Asterisk answers {verdict.status} {verdict.body}")
            return self._error(request, verdict, state=False)
        if self.strict:
            self.violations.extend(f"{request.method} {path}: {w}" for w in verdict.warnings)
        fn = getattr(self, f"_op_{verdict.resource}_{verdict.nickname}", None)
        if fn is None:
            self.violations.append(f"{request.method} {path}: {verdict.resource}.{verdict.nickname} "
                                   "is valid ARI but not modelled by the stand-in")
            return self._json(501, {"message": "Not implemented by the Asterisk stand-in"})
        result = await fn(verdict, **verdict.path_params)
        if isinstance(result, apidocs.ApiError):
            return self._error(request, result)
        return result

    async def _websocket(self, request):
        apps = [a for a in request.query.get("app", "").split(",") if a]
        if not apps:
            return web.Response(status=400, text=BAD_REQUEST_HTML, content_type="text/html")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        for a in apps:
            old = self.sockets.get(a)
            if old is not None and not old.closed:
                await old.send_str(json.dumps({"type": "ApplicationReplaced", "timestamp": ts(),
                                               "application": a, "asterisk_id": ASTERISK_ID},
                                              separators=(",", ":")))
            self.sockets[a] = ws
        for f in self._ws_waiters:
            if not f.done():
                f.set_result(None)
        self._ws_waiters.clear()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            for a in apps:
                if self.sockets.get(a) is ws:
                    del self.sockets[a]
        return ws

    # ------------------------------------------------------------ operations
    def _chan(self, cid, *, stasis=True, code409=409):
        ch = self.channels.get(cid)
        if ch is None:
            return apidocs._err(404, "Channel not found")
        if stasis and not ch.in_stasis:
            return apidocs._err(code409, "Channel not in Stasis application")
        return ch

    async def _queued(self, ch):
        """Channel commands wait behind a running channel playback."""
        await ch.idle.wait()

    async def _op_channels_list(self, r):
        return self._json(200, [c.json() for c in self.channels.values()])

    async def _op_channels_get(self, r, channelId):
        ch = self._chan(channelId, stasis=False)
        return ch if isinstance(ch, apidocs.ApiError) else self._json(200, ch.json())

    async def _originate(self, r, channel_id=None):
        q = r.query
        ep = q["endpoint"]
        app = q.get("app")
        if self.endpoints.get(ep) != "online" or (app and app not in self.sockets):
            return apidocs._err(500, "Allocation failed", key="error")
        if channel_id and channel_id in self.channels:
            return apidocs._err(409, "Channel with given unique ID already exists", recorded=False)
        cid = channel_id or self._new_id()
        name, number = "", ""
        if q.get("callerId"):
            cid_s = q["callerId"]
            if "<" in cid_s:
                name, number = cid_s.split("<", 1)[0].strip(), cid_s.split("<", 1)[1].rstrip(">")
            else:
                number = cid_s
        resource = ep.split("/", 1)[1]
        ch = Channel(cid, f"{ep}-{next(self._seq):08x}", "Down", str(uuid.uuid4()),
                     {"name": name, "number": number}, {"name": name, "number": number},
                     {"context": "from-agents", "exten": "s", "priority": 1,
                      "app_name": "AppDial2", "app_data": "(Outgoing Line)"}, ts(),
                     app=app, originated=True, dialstring=resource,
                     args=[a for a in (q.get("appArgs") or "").split(",") if a] if q.get("appArgs") else [])
        ch.idle.set()
        self.channels[cid] = ch
        if r.nickname in ("originate", "originateWithId"):
            self._later(self._dial(ch, ""))
        return self._json(200, ch.json())

    async def _op_channels_originate(self, r):
        return await self._originate(r, r.query.get("channelId"))

    async def _op_channels_originateWithId(self, r, channelId):
        return await self._originate(r, channelId)

    async def _op_channels_create(self, r):
        return await self._originate(r, r.query.get("channelId"))

    async def _op_channels_dial(self, r, channelId):
        ch = self._chan(channelId, stasis=False)
        if isinstance(ch, apidocs.ApiError):
            return ch
        self._later(self._dial(ch, ""))
        return self._json(204, None)

    async def _op_channels_hangup(self, r, channelId):
        ch = self._chan(channelId, stasis=False)
        if isinstance(ch, apidocs.ApiError):
            return ch
        if not ch.in_stasis and not ch.originated:
            self.channels.pop(ch.id)
            return self._json(204, None)
        if ch.originated and ch.state != "Up":
            async def cancel():
                await self._emit(self._ev("ChannelHangupRequest", pre={"cause": 32, "soft": True},
                                          channel=ch.json()), ch.app)
                await self._dial(ch, "NOANSWER")
                await self._emit({"type": "ChannelDestroyed", "timestamp": ts(), "cause": 16,
                                  "cause_txt": "Normal Clearing", "channel": ch.json()}, ch.app)
            self.channels.pop(ch.id)
            await cancel()
            return self._json(204, None)
        await self._end_channel(ch, {"cause": 32, "soft": True})
        return self._json(204, None)

    async def _op_channels_answer(self, r, channelId):
        ch = self._chan(channelId)
        if isinstance(ch, apidocs.ApiError):
            return ch
        await self._queued(ch)
        if ch.state != "Up":
            ch.state = "Up"
            await self._chan_event("ChannelStateChange", ch)
        return self._json(204, None)

    async def _simple_204(self, r, channelId, stasis=True):
        ch = self._chan(channelId, stasis=stasis)
        return ch if isinstance(ch, apidocs.ApiError) else self._json(204, None)

    async def _op_channels_startMoh(self, r, channelId):
        return await self._simple_204(r, channelId)
    _op_channels_stopMoh = _op_channels_startMoh
    _op_channels_ring = _op_channels_startMoh
    _op_channels_ringStop = _op_channels_startMoh
    _op_channels_progress = _op_channels_startMoh
    _op_channels_hold = _op_channels_startMoh
    _op_channels_unhold = _op_channels_startMoh
    _op_channels_mute = _op_channels_startMoh
    _op_channels_unmute = _op_channels_startMoh
    _op_channels_startSilence = _op_channels_startMoh
    _op_channels_stopSilence = _op_channels_startMoh
    _op_channels_sendDTMF = _op_channels_startMoh

    async def _op_channels_continueInDialplan(self, r, channelId):
        ch = self._chan(channelId)
        if isinstance(ch, apidocs.ApiError):
            return ch
        await self._queued(ch)
        if ch.bridge:
            await self._leave_bridge(ch)
        ch.in_stasis = False
        await self._chan_event("StasisEnd", ch)
        return self._json(204, None)

    async def _op_channels_getChannelVar(self, r, channelId):
        ch = self._chan(channelId, stasis=False)
        if isinstance(ch, apidocs.ApiError):
            return ch
        name = r.query["variable"]
        if name not in ch.variables:
            return apidocs._err(404, "Provided variable was not found", recorded=False)
        return self._json(200, {"value": ch.variables[name]})

    async def _op_channels_setChannelVar(self, r, channelId):
        ch = self._chan(channelId, stasis=False)
        if isinstance(ch, apidocs.ApiError):
            return ch
        ch.variables[r.query["variable"]] = r.query.get("value", "")
        return self._json(204, None)

    async def _play(self, r, channelId, playback_id):
        ch = self._chan(channelId)
        if isinstance(ch, apidocs.ApiError):
            return ch
        pb = Playback(playback_id or str(uuid.uuid4()), list(r.query["media"]),
                      f"channel:{ch.id}", r.query.get("lang", "en"))
        self.playbacks.setdefault(pb.id, []).append(pb)
        ch.queue.append(pb)
        ch.idle.clear()
        body = pb.json()
        if len(ch.queue) == 1:
            self._later(self._start_next(ch))
        return self._json(201, body, {"Location": f"/ari/playbacks/{pb.id}"})

    async def _op_channels_play(self, r, channelId):
        return await self._play(r, channelId, r.query.get("playbackId"))

    async def _op_channels_playWithId(self, r, channelId, playbackId):
        return await self._play(r, channelId, playbackId)

    async def _op_channels_record(self, r, channelId):
        ch = self._chan(channelId)
        if isinstance(ch, apidocs.ApiError):
            return ch
        name = r.query["name"]
        if name in self.recordings:
            return apidocs._err(409, "Recording with the same name already in progress", recorded=False)
        rec = {"name": name, "format": r.query["format"], "target_uri": f"channel:{ch.id}",
               "state": "queued"}
        self.recordings[name] = rec

        async def started():
            rec["state"] = "recording"
            await self._emit(self._ev("RecordingStarted", recording=dict(rec)))
        self._later(started())
        return self._json(201, dict(rec), {"Location": f"/ari/recordings/live/{name}"})

    async def _op_recordings_stop(self, r, recordingName):
        if recordingName not in self.recordings:
            return apidocs._err(404, "Recording not found", recorded=False)
        await self.finish_recording(recordingName)
        return self._json(204, None)

    async def _op_recordings_getLive(self, r, recordingName):
        if recordingName not in self.recordings:
            return apidocs._err(404, "Recording not found", recorded=False)
        return self._json(200, self.recordings[recordingName])

    async def _op_playbacks_get(self, r, playbackId):
        lst = self.playbacks.get(playbackId)
        if not lst:
            return apidocs._err(404, "Playback not found")
        return self._json(200, lst[0].json())

    async def _op_playbacks_stop(self, r, playbackId):
        lst = self.playbacks.get(playbackId)
        if not lst:
            return apidocs._err(404, "Playback not found")
        pb = lst[0]
        self._later(self._finish(pb, "done", self._detach(pb)))
        return self._json(204, None)

    async def _op_playbacks_control(self, r, playbackId):
        if not self.playbacks.get(playbackId):
            return apidocs._err(404, "Playback not found")
        return self._json(204, None)

    async def _op_bridges_list(self, r):
        return self._json(200, [b.json() for b in self.bridges.values()])

    async def _create_bridge(self, r, bridge_id):
        types = (r.query.get("type") or "mixing").split(",")
        btype = types[0]
        if any(t not in BRIDGE_TECH for t in types):
            return apidocs._err(500, "Unable to create bridge. Possible duplicate bridge id '(null)'")
        if bridge_id in self.bridges:
            return apidocs._err(409, f"Bridge with id '{bridge_id}' already exists")
        br = Bridge(bridge_id or str(uuid.uuid4()), btype, r.query.get("name", ""), ts())
        self.bridges[br.id] = br
        return self._json(200, br.json())

    async def _op_bridges_create(self, r):
        return await self._create_bridge(r, r.query.get("bridgeId"))

    async def _op_bridges_createWithId(self, r, bridgeId):
        return await self._create_bridge(r, bridgeId)

    def _bridge(self, bid):
        br = self.bridges.get(bid)
        return br if br is not None else apidocs._err(404, "Bridge not found")

    async def _op_bridges_get(self, r, bridgeId):
        br = self._bridge(bridgeId)
        return br if isinstance(br, apidocs.ApiError) else self._json(200, br.json())

    async def _op_bridges_destroy(self, r, bridgeId):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        for cid in list(br.channels):
            await self._leave_bridge(self.channels[cid])
        del self.bridges[bridgeId]
        if not br.emptied_by_move:
            self._later(self._emit(self._ev("BridgeDestroyed", bridge=br.json())))
        return self._json(204, None)

    async def _op_bridges_addChannel(self, r, bridgeId):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        chans = []
        for cid in r.query["channel"]:
            ch = self.channels.get(cid)
            if ch is None:
                return apidocs._err(400, "Channel not found")
            if not ch.in_stasis:
                return apidocs._err(422, "Channel not in Stasis application")
            chans.append(ch)
        for ch in chans:
            await self._queued(ch)
            if ch.bridge == br.id:
                continue
            if ch.bridge:
                await self._leave_bridge(ch, moving=True)
            ch.bridge = br.id
            br.channels.append(ch.id)
            br.emptied_by_move = False
            await self._emit(self._ev("ChannelEnteredBridge", bridge=br.json(), channel=ch.json()), ch.app)
        if br.bridge_type == "mixing" and len(br.channels) == 2:
            a, b = (self.channels[c] for c in br.channels)
            a.connected = {"name": b.caller["name"], "number": b.caller["number"]}
            b.connected = {"name": a.caller["name"], "number": a.caller["number"]}
            await self._chan_event("ChannelConnectedLine", b)
            await self._chan_event("ChannelConnectedLine", a)
        return self._json(204, None)

    async def _op_bridges_removeChannel(self, r, bridgeId):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        for cid in r.query["channel"]:
            ch = self.channels.get(cid)
            if ch is None:
                return apidocs._err(400, "Channel not found")
            if ch.bridge != br.id:
                return apidocs._err(422, "Channel not in this bridge")
        for cid in r.query["channel"]:
            await self._leave_bridge(self.channels[cid])
        return self._json(204, None)

    async def _op_bridges_startMoh(self, r, bridgeId):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        if not self.bridge_media:
            return apidocs._err(500, "Allocation failed", key="error")
        return self._json(204, None)

    async def _op_bridges_stopMoh(self, r, bridgeId):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        return apidocs._err(409, "Bridge isn't playing music")

    async def _op_bridges_play(self, r, bridgeId, playbackId=None):
        br = self._bridge(bridgeId)
        if isinstance(br, apidocs.ApiError):
            return br
        return apidocs._err(500, "Could not create playback channel")
    _op_bridges_playWithId = _op_bridges_play

    async def _op_applications_list(self, r):
        return self._json(200, [self._app_json(a) for a in {self.app_name, *self.sockets}])

    def _app_json(self, name):
        return {"name": name,
                "channel_ids": [c.id for c in self.channels.values() if c.app == name and c.in_stasis],
                "bridge_ids": list(self.bridges), "endpoint_ids": [], "device_names": [],
                "events_allowed": [], "events_disallowed": []}

    async def _op_applications_get(self, r, applicationName):
        if applicationName != self.app_name and applicationName not in self.sockets:
            return apidocs._err(404, "Application not found", recorded=False)
        return self._json(200, self._app_json(applicationName))

    async def _op_endpoints_get(self, r, tech, resource):
        state = self.endpoints.get(f"{tech}/{resource}")
        if state is None:
            return apidocs._err(404, "Endpoint not found", recorded=False)
        return self._json(200, {"technology": tech, "resource": resource, "state": state,
                                "channel_ids": [c.id for c in self.channels.values()
                                                if c.name.startswith(f"{tech}/{resource}-")]})

    async def _op_asterisk_ping(self, r):
        return self._json(200, {"asterisk_id": ASTERISK_ID, "ping": "pong", "timestamp": ts()})

    async def _op_asterisk_getInfo(self, r):
        return self._json(200, {"system": {"version": "22.10.1", "entity_id": ASTERISK_ID}})


def assert_no_violations(server: AriStandIn):
    """Teardown check: the client sent nothing Asterisk would reject."""
    assert not server.violations, "ARI contract violations:\n" + "\n".join(server.violations)
