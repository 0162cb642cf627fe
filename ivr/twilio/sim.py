"""A simulated Twilio: drives whole calls against the engine's webhooks, plus a fake REST API.

Used by the tests and by the README demo, so nothing here prints: calls return
transcripts (:class:`TranscriptLine`, ``render()`` / :func:`format_transcript` for
people) and keep every HTTP exchange they made (:attr:`SimCall.requests`).

Everything runs over real HTTP on 127.0.0.1 with aiohttp, the way Twilio talks to a
deployed engine:

- :class:`SimTwilio` places inbound calls. A :class:`SimCall` POSTs the voice webhook,
  then follows the TwiML it gets back verb by verb (``Say``, ``Play``, ``Pause``,
  ``Gather``, ``Redirect``, ``Enqueue``, ``Dial``, ``Record``, ``Hangup``, ``Reject``),
  pressing the keys it was given, and ends with the call status callback. Every request
  is form-encoded and signed (``X-Twilio-Signature``) with the account's auth token over
  the URL Twilio would have requested: the engine's own URL, or with ``public_url`` the
  public URL of a reverse proxy in front of it (``public_url`` + path?query).
- :class:`FakeTwilioRest` is the REST API the engine calls back: redirect a live call
  (``POST .../Calls/{CallSid}.json`` with ``Url``/``Method``; the simulated call leaves
  its ``<Enqueue>`` wait and fetches ``Url``) and send an SMS (``POST .../Messages.json``).

Sim time: each call keeps a virtual clock (speech at ~150 words a minute, 2 s a
``<Play>``, ``<Pause length>``, ring and talk times) that stamps the transcript; it is
informational only. Real waiting happens only where a call waits for the engine (in a
queue until the REST redirect comes, ``enqueue_timeout``) or for the test (``talk_wait``).

What the simulation does *not* do: speech input, conferences, ``<Connect>``/``<Stream>``,
re-polling ``waitUrl`` while queued (it is fetched once), Twilio's request retries.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

__all__ = [
    "AgentBehaviour",
    "FakeTwilioRest",
    "HttpReply",
    "LineKind",
    "RestMessage",
    "RestRedirect",
    "RestRequest",
    "SimCall",
    "SimRequest",
    "SimTwilio",
    "TranscriptLine",
    "format_transcript",
    "new_sid",
    "public_view",
    "sign",
    "signed_post",
]

API_VERSION = "2010-04-01"
LineKind = Literal["say", "play", "gather", "enqueue", "dial", "record", "redirect", "hangup", "note"]
AgentBehaviour = Literal["answer", "no-answer", "busy", "failed"]
_BEHAVIOURS: frozenset[str] = frozenset(get_args(AgentBehaviour))
_WORDS_PER_SECOND = 150 / 60
_PLAY_SECONDS = 2.0
_RING_SECONDS = 4.0
# Real TwiML verbs the simulation does not act out: noted in the transcript, then skipped.
_UNSIMULATED_VERBS = frozenset(
    {"Connect", "Echo", "Leave", "Message", "Sms", "Pay", "Prompt", "Queue", "Refer", "Start", "Stop"}
)
_DIAL_NOUNS = frozenset({"Client", "Sip", "Number", "Queue", "Conference", "Application"})
_KEY_TOKEN = re.compile(r"[0-9*#]*")


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits (``new_sid("CA")``)."""
    return prefix + secrets.token_hex(16)


# --------------------------------------------------------------------------- signing


def sign(url: str, params: Mapping[str, str], token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a request to ``url`` with form ``params``."""
    return str(RequestValidator(token).compute_signature(url, dict(params)))


def public_view(url: str, public_url: str | None) -> str:
    """The URL Twilio signs when it reaches ``url`` through a proxy at ``public_url``.

    That is ``public_url`` + the path and query of ``url``; ``url`` itself when there is
    no proxy.
    """
    if not public_url:
        return url
    parts = urlsplit(url)
    return public_url.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer: status, body text and content type (no charset)."""

    status: int
    text: str
    content_type: str = ""


def _with_query(url: str, query: str) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


async def _send(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    signed_url: str,
    params: Mapping[str, str],
    token: str,
    timeout: float,
    *,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpReply:
    """One Twilio-style request: POST form (or GET query) to ``url``, signed over ``signed_url``."""
    method = method.upper()
    headers = {"User-Agent": "TwilioProxy/1.1 (clinic-ivr simulator)", **(headers or {})}
    body: bytes | None = None
    if method == "GET":
        query = urlencode(params)
        url, signed_url = _with_query(url, query), _with_query(signed_url, query)
        signed_params: Mapping[str, str] = {}
    else:
        body = urlencode(params).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        signed_params = params
    headers["X-Twilio-Signature"] = signature if signature is not None else sign(signed_url, signed_params, token)
    async with session.request(
        method,
        URL(url, encoded=True),
        data=body,
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as resp:
        return HttpReply(resp.status, await resp.text(), resp.content_type)


async def signed_post(
    session: aiohttp.ClientSession,
    url: str,
    params: Mapping[str, str],
    token: str,
    public_url: str | None = None,
    *,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpReply:
    """POST ``params`` form-encoded to ``url`` the way Twilio does, signed with ``token``.

    The signature covers ``public_view(url, public_url)``. Pass a wrong ``token`` or an
    explicit ``signature`` (``""`` for an empty header) to forge a request; ``headers``
    are added (an ``I-Twilio-Idempotency-Token``, say).
    """
    view = public_view(url, public_url)
    return await _send(session, "POST", url, view, params, token, timeout, signature=signature, headers=headers)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class TranscriptLine:
    """One thing that happened on the call, stamped with the virtual clock (seconds)."""

    kind: LineKind
    text: str
    attrs: dict[str, str] = field(default_factory=dict)
    at: float = 0.0

    def render(self) -> str:
        extras = " ".join(f"{k}={v}" for k, v in self.attrs.items() if v != "")
        return f"{self.at:7.1f}s  {self.kind:<8} {self.text}" + (f"  [{extras}]" if extras else "")


def format_transcript(lines: Sequence[TranscriptLine]) -> str:
    """A transcript as text, one line per event."""
    return "\n".join(line.render() for line in lines)


@dataclass(frozen=True)
class SimRequest:
    """One request a simulated call made to the engine, and its answer (status 0: no answer)."""

    kind: str  # voice, gather, redirect, rest-redirect, wait, enqueue-action, dial-action, dial-status, ...
    method: str
    url: str  # where it was sent
    signed_url: str  # what the signature covers (the URL as Twilio sees it)
    params: dict[str, str]
    status: int
    text: str
    at: float
    idempotency_token: str = ""


@dataclass(frozen=True)
class RestRedirect:
    """A ``POST Calls/{sid}.json`` the fake REST API accepted."""

    call_sid: str
    url: str | None
    method: str
    twiml: str | None
    status: str | None  # "completed"/"canceled": the engine hung the call up
    form: dict[str, str]


@dataclass(frozen=True)
class RestMessage:
    """A ``POST Messages.json`` the fake REST API accepted."""

    sid: str
    to: str
    from_: str
    body: str
    form: dict[str, str]


@dataclass(frozen=True)
class RestRequest:
    """Any request the fake REST API got, with the status it answered."""

    method: str
    path: str
    form: dict[str, str]
    status: int


class _Changes:
    """Lets coroutines wait until a predicate over some state becomes true."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            event = self._event
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass


# --------------------------------------------------------------------------- fake REST API

_CALL_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json$")
_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")


def _twilio_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status=status,
        headers=headers or None,
    )


def _rfc2822_now() -> str:
    return format_datetime(datetime.now(UTC), usegmt=True)


class FakeTwilioRest:
    """The two Twilio REST calls the engine makes, on ``127.0.0.1`` (a free port by default).

    - ``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with ``Url`` (and
      ``Method``, default POST) redirects a live simulated call: recorded in
      :attr:`redirects`, answered 200 with a Call resource, and the :class:`SimCall` with
      that SID fetches ``Url`` next (leaving its ``<Enqueue>`` wait). ``Twiml`` instead of
      ``Url`` runs that TwiML; ``Status=completed`` (or ``canceled``) hangs the call up.
      Unknown SID: 404 (code 20404); a call that has ended: 400 (code 21220).
      ``GET`` on the same path returns the Call resource.
    - ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with ``To``, ``From`` (or
      ``MessagingServiceSid``) and ``Body``: recorded in :attr:`messages`, answered 201
      with a Message resource (``sid`` "SM..."); a missing field is 400 (21604/21603/21602).

    Every request needs HTTP Basic auth with the account SID and auth token (else 401,
    code 20003) and is logged in :attr:`requests`; a path for another account is 404;
    anything else is 404 (code 20404). :meth:`fail_next` makes the next requests answer
    500 before anything else is checked.
    """

    def __init__(self, account_sid: str, auth_token: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.redirects: list[RestRedirect] = []
        self.messages: list[RestMessage] = []
        self.requests: list[RestRequest] = []
        self._calls: dict[str, SimCall] = {}
        self._fail_count = 0
        self._fail_status = 500
        self._changes = _Changes()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # lifecycle

    async def start(self) -> Self:
        if self._runner is not None:
            return self
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._base_url = f"http://{self.host}:{address[1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; what the engine uses instead of ``https://api.twilio.com``."""
        if self._base_url is None:
            raise RuntimeError("FakeTwilioRest is not started")
        return self._base_url

    # test controls

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Answer the next ``count`` requests with ``status`` (Twilio error JSON), recording nothing else."""
        self._fail_count = count
        self._fail_status = status

    def attach_call(self, call: SimCall) -> None:
        """Make ``call`` known to the Calls endpoint (:class:`SimTwilio` does this for its calls)."""
        self._calls[call.sid] = call

    async def wait_for_redirects(self, count: int = 1, timeout: float = 5.0) -> list[RestRedirect]:
        """Wait until at least ``count`` redirects were accepted; returns them all."""
        await self._changes.wait_until(lambda: len(self.redirects) >= count, timeout, f"{count} redirect(s)")
        return list(self.redirects)

    async def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[RestMessage]:
        """Wait until at least ``count`` messages were accepted; returns them all."""
        await self._changes.wait_until(lambda: len(self.messages) >= count, timeout, f"{count} message(s)")
        return list(self.messages)

    # handlers

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.post()).items()}
        response = await self._handle(request, form)
        self.requests.append(RestRequest(request.method, request.path, form, response.status))
        self._changes.notify()
        return response

    async def _handle(self, request: web.Request, form: dict[str, str]) -> web.Response:
        if self._fail_count > 0:
            self._fail_count -= 1
            return _twilio_error(self._fail_status, 20500, "Internal Server Error")
        if not self._authorized(request):
            return _twilio_error(401, 20003, "Authenticate", **{"WWW-Authenticate": 'Basic realm="Twilio API"'})
        not_found = _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if m := _CALL_PATH.match(request.path):
            if m["account"] != self.account_sid:
                return not_found
            call = self._calls.get(m["sid"])
            if call is None:
                return not_found
            if request.method == "GET":
                return web.json_response(self._call_resource(call))
            if request.method == "POST":
                return self._update_call(call, form)
            return _twilio_error(405, 20004, "Method not allowed")
        if m := _MESSAGES_PATH.match(request.path):
            if m["account"] != self.account_sid:
                return not_found
            if request.method == "POST":
                return self._create_message(form)
            return _twilio_error(405, 20004, "Method not allowed")
        return not_found

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = f"{self.account_sid}:{self.auth_token}".encode()
        return bool(sep) and hmac.compare_digest(f"{login}:{password}".encode(), expected)

    def _update_call(self, call: SimCall, form: dict[str, str]) -> web.Response:
        if call.done:
            return _twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        url, twiml, status = form.get("Url"), form.get("Twiml"), form.get("Status")
        method = form.get("Method", "POST").upper()
        if status is not None and status not in ("completed", "canceled"):
            return _twilio_error(400, 20001, f"Status must be completed or canceled, not {status!r}")
        if url is None and twiml is None and status is None:
            return _twilio_error(400, 20001, "Url, Twiml or Status is required")
        if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            return _twilio_error(400, 21205, f"Url is not a valid URL: {url}")
        if method not in ("GET", "POST"):
            return _twilio_error(400, 20001, f"Method must be GET or POST, not {method!r}")
        self.redirects.append(RestRedirect(call.sid, url, method, twiml, status, dict(form)))
        if status is not None:
            call._on_rest_hangup()
        else:
            call._on_rest_redirect(url, method, twiml)
        resource = self._call_resource(call)
        if status is not None:
            resource["status"] = "completed"
        return web.json_response(resource)

    def _call_resource(self, call: SimCall) -> dict[str, Any]:
        now = _rfc2822_now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{call.sid}"
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": now if call.done else None,
            "duration": str(int(call.clock)) if call.done else None,
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.call_status,
            "direction": "inbound",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "price": None,
            "price_unit": "USD",
            "uri": uri + ".json",
            "subresource_uris": {
                "notifications": uri + "/Notifications.json",
                "recordings": uri + "/Recordings.json",
                "payments": uri + "/Payments.json",
                "events": uri + "/Events.json",
                "siprec": uri + "/Siprec.json",
                "streams": uri + "/Streams.json",
                "user_defined_message_subscriptions": uri + "/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": uri + "/UserDefinedMessages.json",
            },
        }

    def _create_message(self, form: dict[str, str]) -> web.Response:
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        service = form.get("MessagingServiceSid")
        if not to:
            return _twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return _twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl"):
            return _twilio_error(400, 21602, "Message body is required.")
        sid = new_sid("SM")
        self.messages.append(RestMessage(sid, to, from_, body, dict(form)))
        now = _rfc2822_now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "body": body,
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": from_ or None,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "status": "queued" if service is None else "accepted",
                "to": to,
                "uri": uri + ".json",
                "subresource_uris": {"media": uri + "/Media.json", "feedback": uri + "/Feedback.json"},
            },
            status=201,
        )


# --------------------------------------------------------------------------- simulated Twilio


def _has_prefix(url: str, base: str) -> bool:
    return url == base or url.startswith((base + "/", base + "?"))


class SimTwilio:
    """Twilio's side of inbound calls to one engine.

    ``engine_base_url`` is where the engine listens (``http://127.0.0.1:PORT``); the
    voice webhook is ``voice_path`` under it and the call status callback ``status_path``
    (``None``: not configured). With ``public_url`` (a reverse proxy's address), Twilio
    "sees" that address: signatures cover ``public_url`` + path?query, TwiML URLs on
    ``public_url`` are sent to the engine, and TwiML URLs pointing at the engine's own
    address are followed but noted as unreachable for a real Twilio (:attr:`SimCall.warnings`).
    """

    def __init__(
        self,
        engine_base_url: str,
        account_sid: str,
        auth_token: str,
        rest: FakeTwilioRest | None = None,
        public_url: str | None = None,
        *,
        voice_path: str = "/twilio/voice",
        status_path: str | None = "/twilio/status",
        request_timeout: float = 15.0,
    ) -> None:
        self.engine_base_url = engine_base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.rest = rest
        self.public_url = public_url.rstrip("/") if public_url else None
        self.voice_path = voice_path
        self.status_path = status_path
        self.request_timeout = request_timeout
        self.calls: list[SimCall] = []
        self._session: aiohttp.ClientSession | None = None
        self._queue_sids: dict[str, str] = {}
        self._queues: dict[str, list[SimCall]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (the REST server is the caller's to close)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def view_url(self, path: str) -> str:
        """The URL Twilio uses for ``path`` on the engine (public when behind a proxy)."""
        return (self.public_url or self.engine_base_url) + path

    def to_engine_url(self, view_url: str) -> str:
        """Where a request for ``view_url`` actually goes."""
        if self.public_url and _has_prefix(view_url, self.public_url):
            return self.engine_base_url + view_url[len(self.public_url) :]
        return view_url

    async def place_call(
        self,
        from_: str = "+15555550123",
        to: str = "+15550100000",
        keys: str | Sequence[str] = (),
        agent: AgentBehaviour | Sequence[AgentBehaviour] = "answer",
        talk_seconds: float = 60.0,
        *,
        enqueue_timeout: float = 5.0,
        talk_wait: float = 0.0,
        recording_seconds: int = 12,
        record_finish: str = "#",
        call_sid: str | None = None,
    ) -> SimCall:
        """A new inbound call, not started yet: ``await call.run()`` plays it through.

        ``keys``: one token per ``<Gather>``: digits (``"12#"``; the Gather's finishOnKey
        ends the input, numDigits truncates it), ``""`` or ``"."`` for no input, ``"h"`` to
        hang up at that prompt. A string is split on whitespace (``"1 1 ."``). Once the
        tokens run out every Gather times out.
        ``agent``: what the dialled party does, per ``<Dial>`` in order (the last repeats).
        ``talk_seconds``: virtual length of an answered conversation; ``talk_wait``: real
        seconds the bridge stays up, during which the test may call :meth:`SimCall.hangup`.
        ``enqueue_timeout``: real seconds a queued call waits for the engine's REST
        redirect before the caller gives up (abandons).
        ``recording_seconds``/``record_finish`` (``"#"``, another key or ``"hangup"``): how
        a ``<Record>`` goes.
        """
        tokens = keys.split() if isinstance(keys, str) else list(keys)
        for token in tokens:
            if token not in (".", "h") and not _KEY_TOKEN.fullmatch(token):
                raise ValueError(f"bad key token {token!r}: digits, '*', '#', '' or '.', or 'h'")
        behaviours = [agent] if isinstance(agent, str) else list(agent)
        if not behaviours or any(b not in _BEHAVIOURS for b in behaviours):
            raise ValueError(f"agent must be one of {sorted(_BEHAVIOURS)} or a non-empty list of them: {agent!r}")
        if record_finish != "hangup" and not re.fullmatch(r"[0-9*#]", record_finish):
            raise ValueError(f"record_finish must be one key or 'hangup': {record_finish!r}")
        call = SimCall(
            self,
            sid=call_sid or new_sid("CA"),
            from_=from_,
            to=to,
            keys=tokens,
            behaviours=behaviours,
            talk_seconds=talk_seconds,
            enqueue_timeout=enqueue_timeout,
            talk_wait=talk_wait,
            recording_seconds=recording_seconds,
            record_finish=record_finish,
        )
        self.calls.append(call)
        if self.rest is not None:
            self.rest.attach_call(call)
        return call

    async def run_call(self, max_steps: int = 200, **kwargs: Any) -> SimCall:
        """``place_call(**kwargs)`` then ``run(max_steps)``; returns the finished call."""
        call = await self.place_call(**kwargs)
        await call.run(max_steps=max_steps)
        return call

    async def replay(self, request: SimRequest) -> HttpReply:
        """Send ``request`` again with the same form, signature and idempotency token: a Twilio retry.

        The answer is returned, not followed; the call it belonged to is not affected.
        """
        return await _send(
            self.session,
            request.method,
            request.url,
            request.signed_url,
            request.params,
            self.auth_token,
            self.request_timeout,
            headers={"I-Twilio-Idempotency-Token": request.idempotency_token},
        )

    def _queue_sid(self, name: str) -> str:
        return self._queue_sids.setdefault(name, new_sid("QU"))


class _CallEnded(Exception):
    def __init__(self, reason: str, status: str = "completed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class _Doc:
    url: str  # as Twilio sees it
    verbs: list[ET.Element]
    pos: int = 0

    def next(self) -> ET.Element | None:
        if self.pos >= len(self.verbs):
            return None
        verb = self.verbs[self.pos]
        self.pos += 1
        return verb


@dataclass(frozen=True)
class _Update:
    url: str | None
    method: str
    twiml: str | None


@dataclass
class _Leg:
    noun: str
    target: str
    sid: str
    status_callback: str | None
    events: frozenset[str]
    callback_method: str


def _text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _loops(el: ET.Element) -> int:
    # loop="0" is "forever" on Twilio; once is enough for a transcript.
    return max(1, int(_number(el.get("loop"), 1)))


class SimCall:
    """One simulated inbound call; create with :meth:`SimTwilio.place_call`.

    ``await run()`` returns :attr:`transcript`. While it runs (``asyncio.create_task``),
    a test may :meth:`hangup` or :meth:`wait_for_line`. Afterwards :attr:`requests` has
    every HTTP exchange, :attr:`errors` the failures (a TwiML fetch that failed ends the
    call, as Twilio's "application error" would; a failed callback is only recorded),
    :attr:`status` the final CallStatus.
    """

    def __init__(
        self,
        sim: SimTwilio,
        *,
        sid: str,
        from_: str,
        to: str,
        keys: list[str],
        behaviours: Sequence[str],
        talk_seconds: float,
        enqueue_timeout: float,
        talk_wait: float,
        recording_seconds: int,
        record_finish: str,
    ) -> None:
        self.sim = sim
        self.sid = sid
        self.from_ = from_
        self.to = to
        self.talk_seconds = talk_seconds
        self.enqueue_timeout = enqueue_timeout
        self.talk_wait = talk_wait
        self.recording_seconds = recording_seconds
        self.record_finish = record_finish
        self.transcript: list[TranscriptLine] = []
        self.requests: list[SimRequest] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.clock = 0.0
        self.call_status = "queued"  # the CallStatus parameter: ringing, in-progress, completed, ...
        self.state = "new"  # new, running, queued, dialing, talking, recording, completed
        self.queue: str | None = None
        self.status: str | None = None  # final CallStatus once ended
        self.end_reason: str | None = None
        self._keys = deque(keys)
        self._behaviours = deque(behaviours)
        self._started = False
        self._hangup_requested = False
        self._remote_hangup = False
        self._pending: deque[_Update] = deque()
        self._wake = asyncio.Event()
        self._changes = _Changes()

    # ------------------------------------------------------------------ public

    @property
    def done(self) -> bool:
        return self.state == "completed"

    def hangup(self) -> None:
        """The caller hangs up now (takes effect at the next verb, or at once while waiting)."""
        self._hangup_requested = True
        self._wake.set()

    def lines(self, kind: LineKind | None = None) -> list[TranscriptLine]:
        return [line for line in self.transcript if kind is None or line.kind == kind]

    def said(self) -> list[str]:
        """The text of every ``<Say>``, in order."""
        return [line.text for line in self.transcript if line.kind == "say"]

    def requests_of(self, kind: str) -> list[SimRequest]:
        return [r for r in self.requests if r.kind == kind]

    async def wait_for_line(
        self, kind: LineKind, contains: str | None = None, timeout: float = 5.0
    ) -> TranscriptLine:
        """Wait (while ``run`` goes on in another task) for a transcript line of ``kind``."""

        def find() -> TranscriptLine | None:
            for line in self.transcript:
                if line.kind == kind and (contains is None or contains in line.text):
                    return line
            return None

        await self._changes.wait_until(lambda: find() is not None or self.done, timeout, f"a {kind} line")
        found = find()
        if found is None:
            raise AssertionError(f"call ended without a {kind} line:\n{format_transcript(self.transcript)}")
        return found

    async def run(self, max_steps: int = 200) -> list[TranscriptLine]:
        """Play the call to its end; returns the transcript. ``max_steps`` bounds the verbs run."""
        if self._started:
            raise RuntimeError("a SimCall runs once")
        self._started = True
        self.state = "running"
        try:
            doc = await self._fetch_doc("voice", self.sim.view_url(self.sim.voice_path), "POST", {}, "ringing")
            self.call_status = "in-progress"
            steps = 0
            while True:
                doc = await self._boundary(doc)
                verb = doc.next()
                if verb is None:
                    raise _CallEnded("end of TwiML")
                steps += 1
                if steps > max_steps:
                    self._error(f"gave up after {max_steps} verbs (max_steps)")
                    raise _CallEnded("max_steps reached")
                doc = await self._execute(verb, doc) or doc
        except _CallEnded as end:
            await self._finish(end)
        except BaseException:
            self.state = "completed"
            self._changes.notify()
            raise
        return self.transcript

    # ------------------------------------------------------------------ REST hooks

    def _on_rest_redirect(self, url: str | None, method: str, twiml: str | None) -> None:
        self._pending.append(_Update(url, method, twiml))
        self._wake.set()

    def _on_rest_hangup(self) -> None:
        self._remote_hangup = True
        self._wake.set()

    # ------------------------------------------------------------------ machinery

    def _line(self, kind: LineKind, text: str, **attrs: str | None) -> None:
        clean = {k: v for k, v in attrs.items() if v is not None}
        self.transcript.append(TranscriptLine(kind, text, clean, round(self.clock, 1)))
        self._changes.notify()

    def _error(self, message: str) -> None:
        self.errors.append(message)
        self._line("note", message, error="true")

    def _app_error(self, code: int, message: str) -> _CallEnded:
        self._error(f"application error {code}: {message}")
        return _CallEnded(f"application error {code}")

    def _interrupt(self) -> str | None:
        if self._hangup_requested:
            return "hangup"
        if self._remote_hangup:
            return "remote-hangup"
        if self._pending:
            return "redirect"
        return None

    async def _wait_interrupt(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` real seconds for a hangup or redirect; the virtual clock follows."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + timeout
        try:
            while (reason := self._interrupt()) is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    pass
            return reason
        finally:
            self.clock += loop.time() - start

    def _ended_by(self, reason: str) -> _CallEnded:
        if reason == "remote-hangup":
            return _CallEnded("hung up by the engine (REST Status=completed)")
        return _CallEnded("caller hung up")

    async def _boundary(self, doc: _Doc) -> _Doc:
        """Between verbs: honour a hangup, or a REST redirect (which replaces the document)."""
        while (reason := self._interrupt()) is not None:
            if reason != "redirect":
                raise self._ended_by(reason)
            update = self._pending.popleft()
            if update.twiml is not None:
                self._line("redirect", "(inline TwiML)", source="rest")
                doc = self._parse(update.twiml, doc.url)
            else:
                assert update.url is not None
                target = self._normalize(update.url)
                self._line("redirect", target, source="rest", method=update.method)
                doc = await self._fetch_doc("rest-redirect", target, update.method, {})
        return doc

    def _normalize(self, url: str) -> str:
        public, engine = self.sim.public_url, self.sim.engine_base_url
        if public and _has_prefix(url, engine):
            message = f"TwiML points at the engine's own address {url}, unreachable behind {public}"
            self.warnings.append(message)
            self._line("note", message, warning="true")
            return public + url[len(engine) :]
        return url

    def _resolve(self, ref: str | None, doc: _Doc) -> str:
        """An action/URL attribute resolved like Twilio does: relative to the current document."""
        if not ref or not ref.strip():
            return doc.url
        return self._normalize(urljoin(doc.url, ref.strip()))

    def _standard_params(self, call_status: str | None) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": self.sim.account_sid,
            "From": self.from_,
            "To": self.to,
            "Caller": self.from_,
            "Called": self.to,
            "Direction": "inbound",
            "CallStatus": call_status or self.call_status,
            "ApiVersion": API_VERSION,
        }

    async def _request(
        self, kind: str, view_url: str, method: str, extra: Mapping[str, str], call_status: str | None = None
    ) -> HttpReply | None:
        params = self._standard_params(call_status)
        params.update(extra)
        params = {k: v for k, v in params.items() if v is not None}
        actual = self.sim.to_engine_url(view_url)
        method = (method or "POST").upper()
        token = f"{self.sid}-{secrets.token_hex(8)}"
        try:
            answer = await _send(
                self.sim.session,
                method,
                actual,
                view_url,
                params,
                self.sim.auth_token,
                self.sim.request_timeout,
                headers={"I-Twilio-Idempotency-Token": token},
            )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reply: HttpReply | None = None
            text = f"{type(exc).__name__}: {exc}"
        else:
            reply, text = answer, answer.text
        status = reply.status if reply is not None else 0
        self.requests.append(
            SimRequest(kind, method, actual, view_url, params, status, text, round(self.clock, 1), token)
        )
        return reply

    async def _callback(
        self, kind: str, view_url: str, method: str, extra: Mapping[str, str], call_status: str | None = None
    ) -> None:
        """A request whose answer Twilio ignores; a failure is recorded, the call goes on."""
        reply = await self._request(kind, view_url, method, extra, call_status)
        if reply is None or not 200 <= reply.status < 300:
            got = f"HTTP {reply.status}" if reply is not None else self.requests[-1].text
            self._error(f"{kind} callback {method} {view_url} failed: {got}")

    async def _fetch_doc(
        self, kind: str, view_url: str, method: str, extra: Mapping[str, str], call_status: str | None = None
    ) -> _Doc:
        reply = await self._request(kind, view_url, method, extra, call_status)
        if reply is None:
            raise self._app_error(11200, f"no HTTP answer from {method.upper()} {view_url}: {self.requests[-1].text}")
        if reply.status != 200:
            raise self._app_error(11200, f"HTTP {reply.status} from {method.upper()} {view_url}")
        return self._parse(reply.text, view_url)

    def _parse(self, text: str, url: str) -> _Doc:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise self._app_error(12100, f"document parse failure for {url}: {exc}") from None
        if root.tag != "Response":
            raise self._app_error(12100, f"root element is <{root.tag}>, not <Response>, in {url}")
        return _Doc(url, list(root))

    def _next_key(self) -> str:
        return self._keys.popleft() if self._keys else ""

    def _next_behaviour(self) -> str:
        return self._behaviours.popleft() if len(self._behaviours) > 1 else self._behaviours[0]

    # ------------------------------------------------------------------ verbs

    async def _execute(self, verb: ET.Element, doc: _Doc) -> _Doc | None:
        """Run one verb; a new document when the verb fetched one."""
        tag = verb.tag
        if tag in ("Say", "Play", "Pause"):
            self._media(verb)
            return None
        if tag == "Gather":
            return await self._gather(verb, doc)
        if tag == "Redirect":
            url = _text(verb)
            if not url:
                raise self._app_error(12200, "<Redirect> without a URL")
            target = self._resolve(url, doc)
            method = verb.get("method", "POST")
            self._line("redirect", target, source="twiml", method=method.upper())
            return await self._fetch_doc("redirect", target, method, {})
        if tag == "Enqueue":
            return await self._enqueue(verb, doc)
        if tag == "Dial":
            return await self._dial(verb, doc)
        if tag == "Record":
            return await self._record(verb, doc)
        if tag == "Hangup":
            raise _CallEnded("<Hangup>")
        if tag == "Reject":
            reason = verb.get("reason", "rejected")
            raise _CallEnded(f"<Reject reason={reason}>", "busy" if reason == "busy" else "no-answer")
        if tag in _UNSIMULATED_VERBS:
            self._line("note", f"<{tag}> not simulated; skipped")
            return None
        raise self._app_error(12200, f"unknown TwiML verb <{tag}>")

    def _media(self, el: ET.Element, **context: str) -> None:
        """Say/Play/Pause (top level, inside Gather, or in queue wait TwiML)."""
        if el.tag == "Say":
            text = _text(el)
            self._line("say", text, language=el.get("language"), voice=el.get("voice"), **context)
            self.clock += _loops(el) * max(1.0, len(text.split()) / _WORDS_PER_SECOND)
        elif el.tag == "Play":
            digits = el.get("digits")
            self._line("play", digits if digits else _text(el), digits="true" if digits else None, **context)
            self.clock += _loops(el) * _PLAY_SECONDS
        elif el.tag == "Pause":
            self.clock += _number(el.get("length"), 1)
        else:
            self._line("note", f"<{el.tag}> ignored here", **context)

    def _gather_input(self, el: ET.Element, doc: _Doc, **context: str) -> tuple[str, str | None]:
        """Play a Gather's prompts and take the caller's next key token.

        Returns the resolved action and the digits to post (``""`` for a timeout that
        still posts, None for "go on with the next verb"); raises/flags a hangup for "h".
        """
        action = self._resolve(el.get("action"), doc)
        finish_on_key = el.get("finishOnKey", "#")
        num_digits = el.get("numDigits")
        for child in el:
            self._media(child, **context)
        token = self._next_key()
        if token == "h":
            self._line("gather", "(caller hung up)", action=action, **context)
            self._hangup_requested = True
            return action, None
        digits = "" if token == "." else token
        if finish_on_key and finish_on_key in digits:
            digits = digits.split(finish_on_key, 1)[0]
        if num_digits and num_digits.isdigit():
            digits = digits[: int(num_digits)]
        self._line(
            "gather",
            digits if digits else "(no input)",
            action=action,
            numDigits=num_digits,
            timeout=el.get("timeout"),
            finishOnKey=el.get("finishOnKey"),
            **context,
        )
        if digits:
            self.clock += 0.5 * len(digits)
            return action, digits
        self.clock += _number(el.get("timeout"), 5)
        return action, "" if el.get("actionOnEmptyResult", "false").lower() == "true" else None

    async def _gather(self, el: ET.Element, doc: _Doc) -> _Doc | None:
        action, digits = self._gather_input(el, doc)
        if self._hangup_requested:
            raise _CallEnded("caller hung up at the prompt")
        if digits is None:
            return None
        return await self._fetch_doc("gather", action, el.get("method", "POST"), {"Digits": digits})

    def _queue_params(self, name: str, entered: float) -> dict[str, str]:
        members = self.sim._queues.get(name, [])
        position = members.index(self) + 1 if self in members else len(members) + 1
        return {
            "QueueSid": self.sim._queue_sid(name),
            "QueuePosition": str(position),
            "QueueTime": str(int(self.clock - entered)),
            "AvgQueueTime": "0",
            "CurrentQueueSize": str(len(members)),
        }

    async def _enqueue(self, el: ET.Element, doc: _Doc) -> _Doc | None:
        name = _text(el)
        action = self._resolve(el.get("action"), doc) if el.get("action") else None
        method = el.get("method", "POST")
        wait_url = self._resolve(el.get("waitUrl"), doc) if el.get("waitUrl") else None
        members = self.sim._queues.setdefault(name, [])
        members.append(self)
        self.state, self.queue = "queued", name
        entered = self.clock
        self._line("enqueue", name, waitUrl=wait_url, action=action)
        try:
            outcome: str | None = None
            if wait_url is not None:
                wait_doc = await self._fetch_doc(
                    "wait", wait_url, el.get("waitUrlMethod", "POST"), self._queue_params(name, entered)
                )
                outcome = await self._play_wait(wait_doc, name, entered)
            if outcome is None:
                outcome = await self._wait_interrupt(self.enqueue_timeout) or "abandoned"
            params = self._queue_params(name, entered)
        finally:
            members.remove(self)
            self.state, self.queue = "running", None
        if outcome == "leave":
            if action is None:
                return None
            return await self._fetch_doc("enqueue-action", action, method, {**params, "QueueResult": "leave"})
        result = "redirected" if outcome == "redirect" else "hangup"
        call_status = "in-progress" if result == "redirected" else "completed"
        if action is not None:
            await self._callback("enqueue-action", action, method, {**params, "QueueResult": result}, call_status)
        if outcome == "abandoned":
            raise _CallEnded(f"caller abandoned the queue after {self.enqueue_timeout:g} s without a redirect")
        if outcome == "wait-hangup":
            raise _CallEnded("<Hangup> in the wait TwiML")
        if outcome == "redirect":
            return None  # the boundary takes the pending redirect
        raise self._ended_by(outcome)

    async def _play_wait(self, wait_doc: _Doc, name: str, entered: float, depth: int = 0) -> str | None:
        """The wait TwiML, once, with the keys pressed in it.

        Returns "leave" (``<Leave/>``), "wait-hangup" (``<Hangup/>``), "hangup" (the caller
        hung up at a wait ``<Gather>``), or None: keep waiting. A ``<Gather>``'s action
        answer is played by the same rules.
        """
        if depth > 10:
            raise self._app_error(12200, "wait TwiML gathers nested more than 10 deep")
        for verb in wait_doc.verbs:
            if self._interrupt() is not None:
                return "hangup" if self._hangup_requested else None
            if verb.tag in ("Say", "Play", "Pause"):
                self._media(verb, queue="wait")
            elif verb.tag == "Leave":
                return "leave"
            elif verb.tag == "Hangup":
                return "wait-hangup"
            elif verb.tag == "Gather":
                action, digits = self._gather_input(verb, wait_doc, queue="wait")
                if self._hangup_requested:
                    return "hangup"
                if digits is None:
                    continue
                params = {**self._queue_params(name, entered), "Digits": digits}
                answer = await self._fetch_doc("wait-gather", action, verb.get("method", "POST"), params)
                return await self._play_wait(answer, name, entered, depth + 1)
            else:
                self._line("note", f"<{verb.tag}> in wait TwiML not simulated", queue="wait")
        return None

    def _legs(self, el: ET.Element, doc: _Doc) -> list[_Leg]:
        legs: list[_Leg] = []
        for child in el:
            if child.tag not in _DIAL_NOUNS:
                continue
            target = _text(child)
            if child.tag == "Client" and not target.startswith("client:"):
                target = "client:" + target
            callback = child.get("statusCallback")
            events = frozenset((child.get("statusCallbackEvent") or "completed").replace(",", " ").split())
            legs.append(
                _Leg(
                    noun=child.tag,
                    target=target,
                    sid=new_sid("CA"),
                    status_callback=self._resolve(callback, doc) if callback else None,
                    events=events,
                    callback_method=child.get("statusCallbackMethod", "POST"),
                )
            )
        if not legs and (number := _text(el)):
            legs.append(_Leg("Number", number, new_sid("CA"), None, frozenset(), "POST"))
        return legs

    async def _leg_event(
        self, leg: _Leg, event: str, status: str, caller_id: str, duration: float | None = None
    ) -> None:
        if leg.status_callback is None or event not in leg.events:
            return
        extra = {
            "CallSid": leg.sid,
            "ParentCallSid": self.sid,
            "From": caller_id,
            "To": leg.target,
            "Caller": caller_id,
            "Called": leg.target,
            "Direction": "outbound-dial",
            "CallbackSource": "call-progress-events",
            "StatusCallbackEvent": event,
            "Timestamp": _rfc2822_now(),
        }
        if duration is not None:
            extra["CallDuration"] = str(int(duration))
        await self._callback("dial-status", leg.status_callback, leg.callback_method, extra, status)

    async def _dial(self, el: ET.Element, doc: _Doc) -> _Doc | None:
        behaviour = self._next_behaviour()
        action = self._resolve(el.get("action"), doc) if el.get("action") else None
        method = el.get("method", "POST")
        timeout = _number(el.get("timeout"), 30)
        caller_id = el.get("callerId") or self.from_
        legs = self._legs(el, doc)
        if not legs:
            raise self._app_error(12200, "<Dial> with nothing to dial")
        self._line(
            "dial",
            ", ".join(leg.target for leg in legs),
            result=behaviour,
            callerId=el.get("callerId"),
            timeout=el.get("timeout"),
            action=action,
            sids=",".join(leg.sid for leg in legs),
        )
        self.state = "dialing"
        for leg in legs:
            await self._leg_event(leg, "initiated", "initiated", caller_id)
        for leg in legs:
            if behaviour in ("answer", "no-answer"):
                await self._leg_event(leg, "ringing", "ringing", caller_id)
        dial: dict[str, str] = {"DialCallSid": legs[0].sid}
        if behaviour != "answer":
            self.clock += timeout if behaviour == "no-answer" else 1.0
            for leg in legs:
                await self._leg_event(leg, "completed", behaviour, caller_id, 0)
            self.state = "running"
            if action is None:
                return None
            return await self._fetch_doc("dial-action", action, method, {**dial, "DialCallStatus": behaviour})

        answered, others = legs[0], legs[1:]
        self.clock += _RING_SECONDS
        for leg in others:
            await self._leg_event(leg, "completed", "canceled", caller_id, 0)
        await self._leg_event(answered, "answered", "in-progress", caller_id)
        self.state = "talking"
        talk_start = self.clock
        reason = await self._wait_interrupt(self.talk_wait) if self.talk_wait > 0 else self._interrupt()
        talked = self.clock - talk_start if reason is not None else self.talk_seconds
        self.clock = talk_start + talked
        await self._leg_event(answered, "completed", "completed", caller_id, talked)
        self.state = "running"
        dial.update(DialCallStatus="completed", DialCallDuration=str(int(talked)))
        if reason == "redirect":
            return None  # the redirect ends the bridge; the boundary fetches it
        if reason is not None:
            if action is not None:
                await self._callback("dial-action", action, method, dial, "completed")
            raise self._ended_by(reason)
        if action is None:
            return None
        return await self._fetch_doc("dial-action", action, method, dial)

    async def _record(self, el: ET.Element, doc: _Doc) -> _Doc | None:
        action = self._resolve(el.get("action"), doc)
        method = el.get("method", "POST")
        max_length = _number(el.get("maxLength"), 3600)
        seconds = int(min(self.recording_seconds, max_length))
        finish = self.record_finish
        hung_up = finish == "hangup"
        self._line(
            "record",
            f"{seconds} s, ended by {'hangup' if hung_up else 'key ' + finish}",
            action=action,
            maxLength=el.get("maxLength"),
            finishOnKey=el.get("finishOnKey"),
            playBeep=el.get("playBeep"),
        )
        self.state = "recording"
        self.clock += seconds + (1.0 if el.get("playBeep", "true").lower() == "true" else 0.0)
        sid = new_sid("RE")
        api = self.sim.rest.base_url if self.sim.rest is not None else "https://api.twilio.com"
        recording = {
            "RecordingSid": sid,
            "RecordingUrl": f"{api}/{API_VERSION}/Accounts/{self.sim.account_sid}/Recordings/{sid}",
            "RecordingDuration": str(seconds),
        }
        self.state = "running"
        if hung_up:
            await self._callback("record-action", action, method, {**recording, "Digits": "hangup"}, "completed")
            await self._recording_status(el, doc, recording)
            raise _CallEnded("caller hung up after recording")
        new_doc = await self._fetch_doc("record-action", action, method, {**recording, "Digits": finish})
        await self._recording_status(el, doc, recording)
        return new_doc

    async def _recording_status(self, el: ET.Element, doc: _Doc, recording: dict[str, str]) -> None:
        callback = el.get("recordingStatusCallback")
        if not callback:
            return
        extra = {
            **recording,
            "RecordingStatus": "completed",
            "RecordingChannels": "1",
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": _rfc2822_now(),
        }
        await self._callback(
            "recording-status", self._resolve(callback, doc), el.get("recordingStatusCallbackMethod", "POST"), extra
        )

    async def _finish(self, end: _CallEnded) -> None:
        self.state = "completed"
        self.status = self.call_status = end.status
        self.end_reason = end.reason
        self._line("hangup", end.reason, status=end.status, duration=str(int(self.clock)))
        if self.sim.status_path is not None:
            extra = {
                "CallDuration": str(int(self.clock)),
                "CallbackSource": "call-progress-events",
                "Timestamp": _rfc2822_now(),
            }
            await self._callback("status", self.sim.view_url(self.sim.status_path), "POST", extra, end.status)
        self._changes.notify()
