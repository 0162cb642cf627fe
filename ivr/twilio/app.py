"""The Twilio webhook endpoints: signature check, form parsing, retries, then the adapter.

Every request must carry a valid ``X-Twilio-Signature`` for the URL Twilio
signed: the configured public URL plus the path and query (behind a reverse
proxy the engine's own view of the URL is not what Twilio called), or, when
``trust_forwarded`` is on, the URL rebuilt from ``X-Forwarded-Proto`` /
``X-Forwarded-Host``. Anything else gets 403 and a log line with the path only.

Endpoints (all POST, form-encoded):

==========================  =====================================================
``/twilio/voice``           incoming call (the number's voice URL)
``/twilio/gather``          a ``<Gather>``'s keys, or its timeout (``Digits`` empty)
``/twilio/wait``            ``<Enqueue>``'s wait URL: position, expected wait, music
``/twilio/waitkey``         a key pressed while waiting
``/twilio/enqueued``        ``<Enqueue>``'s action (the caller left the Twilio queue)
``/twilio/connect``         where a waiting call is redirected once an agent is chosen
``/twilio/resume``          where it is redirected when the queue gives up
``/twilio/agent``           the dialled agent leg's status callback (answered)
``/twilio/dial``            ``<Dial>``'s action (no answer, or the conversation ended)
``/twilio/transfer``        a transfer's ``<Dial>`` action
``/twilio/record``          ``<Record>``'s action; ``/twilio/recording`` its status callback
``/twilio/status``          the call's status callback (completed: the call is over)
``/twilio/fallback``        the number's fallback URL: straight to a person
==========================  =====================================================
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from aiohttp import web
from twilio.request_validator import RequestValidator

from .adapter import TwilioAdapter, TwilioCall, fallback_twiml

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # Twilio's webhooks are a few hundred bytes; anything near this is not Twilio
TWIML = "application/xml"


def ET_has_verbs(twiml_text: str) -> bool:  # noqa: N802 (reads as what it checks)
    """Does this TwiML do anything? ``<Response/>`` makes Twilio hang up."""
    import xml.etree.ElementTree as ET

    try:
        return len(ET.fromstring(twiml_text)) > 0
    except ET.ParseError:
        return False


def add_twilio_routes(app: web.Application, adapter: TwilioAdapter, *, auth_token: str,
                      public_url: str | None = None, trust_forwarded: bool = False) -> None:
    validator = RequestValidator(auth_token)
    public = public_url.rstrip("/") if public_url else None

    def signed_url(request: web.Request) -> str:
        if public:
            return public + request.path_qs
        if trust_forwarded:
            proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
            host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
            return f"{proto}://{host}{request.path_qs}"
        return str(request.url)

    async def checked(request: web.Request) -> dict[str, str]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
        ctype = request.content_type
        if ctype not in ("application/x-www-form-urlencoded", ""):
            log.warning("twilio: refused %s: not a form post (%s)", request.path, ctype)
            raise web.HTTPUnsupportedMediaType(text="Twilio webhooks are form posts")
        try:
            posted = await request.post()
            form = {k: str(v) for k, v in posted.items()}
        except (ValueError, UnicodeDecodeError):
            log.warning("twilio: refused %s: the form could not be parsed", request.path)
            raise web.HTTPBadRequest(text="malformed form") from None
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(signed_url(request), posted, signature):
            log.warning("twilio: refused %s: %s signature (E-TWILIO-SIGNATURE)", request.path,
                        "missing" if not signature else "invalid")
            raise web.HTTPForbidden(text="invalid Twilio signature")
        return form

    def twiml(body: str) -> web.Response:
        return web.Response(text=body, content_type=TWIML)

    def call_handler(fn: Callable[[TwilioCall, web.Request, dict[str, str]], Awaitable[str | None]],
                     *, remember: bool = True, must_speak: bool = False) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            form = await checked(request)
            sid = request.query.get("call") or form.get("CallSid", "")
            call = adapter.calls.get(sid)
            if call is None:
                # Not a call this engine knows (it restarted, or the id is wrong): a caller on the line must still
                # reach a person; a status callback for it is simply acknowledged.
                log.warning("twilio: %s for an unknown call (W-TWILIO-UNKNOWN-CALL)", request.path)
                if not remember:
                    return web.Response(status=204)
                return twiml(fallback_twiml(adapter.fallback_number))
            key = adapter.request_key(request.path_qs, form, request.headers.get("I-Twilio-Idempotency-Token"))
            async with call.lock:  # one webhook at a time per call: a retry waits for the first, then replays it
                if key in call.answers:
                    cached = call.answers[key]  # a retry: the same answer, the call does not advance twice
                    return twiml(cached) if cached else web.Response(status=204)
                try:
                    out = await fn(call, request, form)
                except web.HTTPException:
                    raise
                except Exception:
                    # A bug must not leave the caller with Twilio's "application error": straight to a person.
                    log.exception("twilio: %s failed for call %s; sending the caller to the fallback number",
                                  request.path, call.sid)
                    adapter.hand_off(call)
                    return twiml(fallback_twiml(adapter.fallback_number)) if remember else web.Response(status=204)
                if out is None:
                    call.answers[key] = ""
                    return web.Response(status=204)
                if must_speak and form.get("CallStatus") != "completed" and not ET_has_verbs(out):
                    # an empty answer hangs the caller up: never send one from a caller-facing webhook
                    log.warning("twilio: %s had nothing to say for call %s; sending the caller to the fallback "
                                "number (W-TWILIO-EMPTY)", request.path, call.sid)
                    out = fallback_twiml(adapter.fallback_number)
                    adapter.hand_off(call)
                return twiml(adapter.remember(call, key, out))

        return handle

    async def voice(request: web.Request) -> web.Response:
        form = await checked(request)
        if not form.get("CallSid"):
            raise web.HTTPBadRequest(text="CallSid is required")
        try:
            return twiml(await adapter.incoming(form))
        except Exception:
            log.exception("twilio: the incoming call could not be started; sending it to the fallback number")
            return twiml(fallback_twiml(adapter.fallback_number))

    async def fallback(request: web.Request) -> web.Response:
        await checked(request)
        return twiml(fallback_twiml(adapter.fallback_number))

    def _int(request: web.Request, name: str) -> int:
        try:
            return int(request.query.get(name, ""))
        except ValueError:
            raise web.HTTPBadRequest(text=f"{name} must be a number") from None

    async def gather(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.gather(call, _int(r, "prompt"), f.get("Digits"), f.get("FinishedOnKey", ""))

    async def wait(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.wait(call, f)

    async def waitkey(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.wait_key(call, f.get("Digits"))

    async def enqueued(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.enqueue_done(call, f.get("QueueResult", ""))

    async def connect(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.connect(call)

    async def resume(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.resume(call)

    async def agent(call: TwilioCall, r: web.Request, f: dict[str, str]) -> None:
        await adapter.agent_status(call, _int(r, "offer"), f.get("CallStatus", ""))
        return None

    async def dial(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.dial_done(call, _int(r, "offer"), f.get("DialCallStatus", ""), f.get("CallStatus", ""))

    async def transfer(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        return await adapter.transfer_done(call, f.get("DialCallStatus", ""))

    async def record(call: TwilioCall, r: web.Request, f: dict[str, str]) -> str:
        try:
            duration = float(f.get("RecordingDuration") or 0)
        except ValueError:
            duration = 0.0
        return await adapter.record_done(call, duration, f.get("RecordingSid", ""))

    async def recording(call: TwilioCall, r: web.Request, f: dict[str, str]) -> None:
        return None  # the recording itself is kept by Twilio; its sid came with <Record>'s action

    async def status(call: TwilioCall, r: web.Request, f: dict[str, str]) -> None:
        await adapter.status(call, f.get("CallStatus", ""))
        return None

    app.router.add_post("/twilio/voice", voice)
    app.router.add_post("/twilio/fallback", fallback)
    # must_speak: the caller is on the line waiting for instructions; an empty answer would hang them up
    for path, fn, remember, speak in (
            ("gather", gather, True, True), ("wait", wait, True, False), ("waitkey", waitkey, True, False),
            ("enqueued", enqueued, True, False), ("connect", connect, True, True), ("resume", resume, True, True),
            ("agent", agent, False, False), ("dial", dial, True, True), ("transfer", transfer, True, True),
            ("record", record, True, True), ("recording", recording, False, False), ("status", status, False, False)):
        app.router.add_post(f"/twilio/{path}", call_handler(fn, remember=remember, must_speak=speak))


def media_routes(app: web.Application, recordings: Any) -> None:
    """Serve the trees' audio files (``<Play>`` needs a URL Twilio can fetch)."""
    app.router.add_static("/media/", recordings, show_index=False, follow_symlinks=False)
