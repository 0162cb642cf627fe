"""The simulated Twilio (ivr/twilio/sim.py) against a tiny scripted engine, all on 127.0.0.1.

The fake engine answers each webhook path with scripted TwiML and checks every
request's X-Twilio-Signature with the twilio library's RequestValidator (403 if
it does not match), so these tests pin down both what the simulator sends and
that it signs it the way Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ivr.twilio.sim import (
    FakeTwilioRest,
    SimCall,
    SimTwilio,
    format_transcript,
    public_view,
    sign,
    signed_post,
)

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "test-auth-token-0123456789abcdef"
SID = re.compile(r"^CA[0-9a-f]{32}$")

Handler = Callable[[dict[str, str], web.Request], Any]


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    form: dict[str, str]
    method: str
    signature_ok: bool
    headers: dict[str, str]


class FakeEngine:
    """Scripted webhooks: ``script[path](form, request)`` returns TwiML text, a Response or None (204)."""

    def __init__(self, script: dict[str, Handler], public_url: str | None = None) -> None:
        self.script = script
        self.public_url = public_url
        self.hits: list[Hit] = []
        self.validator = RequestValidator(TOKEN)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> FakeEngine:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()} if request.method == "POST" else {}
        url = self.public_url + request.path_qs if self.public_url else str(request.url)
        ok = self.validator.validate(url, form, request.headers.get("X-Twilio-Signature", ""))
        self.hits.append(Hit(request.path, dict(request.query), form, request.method, ok, dict(request.headers)))
        if not ok:
            return web.Response(status=403, text="invalid Twilio signature")
        handler = self.script.get(request.path)
        if handler is None:
            if request.path == "/twilio/status":
                return web.Response(status=204)
            return web.Response(status=404, text="no such webhook")
        out = handler(form, request)
        if isinstance(out, Awaitable):
            out = await out
        if out is None:
            return web.Response(status=204)
        if isinstance(out, web.Response):
            return out
        return web.Response(text=out, content_type="application/xml")

    def of(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]


def twiml(body: str) -> Handler:
    text = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return lambda form, request: text


@asynccontextmanager
async def harness(
    script: dict[str, Handler], *, public_url: str | None = None
) -> AsyncIterator[tuple[FakeEngine, FakeTwilioRest, SimTwilio]]:
    engine = await FakeEngine(script, public_url).start()
    try:
        async with (
            FakeTwilioRest(ACCOUNT, TOKEN) as rest,
            SimTwilio(engine.base_url, ACCOUNT, TOKEN, rest, public_url) as sim,
        ):
            yield engine, rest, sim
    finally:
        await engine.close()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def kinds(call: SimCall) -> list[str]:
    return [line.kind for line in call.transcript]


def assert_clean(engine: FakeEngine, call: SimCall) -> None:
    assert call.errors == [], format_transcript(call.transcript)
    assert all(h.signature_ok for h in engine.hits)
    assert all(200 <= r.status < 300 for r in call.requests)


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def rest_redirect(rest: FakeTwilioRest, call_sid: str, url: str | None, **extra: str) -> tuple[int, Any]:
    """What the engine does to move a call: POST Calls/{sid}.json with Url (and Method)."""
    form = ({"Url": url} if url is not None else {}) | extra
    url = f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{call_sid}.json"
    async with aiohttp.ClientSession(headers=basic_auth(ACCOUNT, TOKEN)) as s, s.post(url, data=form) as r:
        return r.status, await r.json()


# ------------------------------------------------------------------ gather, redirect


def test_gather_digits_then_empty_input_with_action_on_empty_result() -> None:
    def gather(form: dict[str, str], request: web.Request) -> str:
        if request.query["prompt"] == "1":
            return (
                '<Response><Gather input="dtmf" action="gather?prompt=2" numDigits="1" timeout="4"'
                ' actionOnEmptyResult="true"><Say>Press 2 for the pharmacy.</Say></Gather></Response>'
            )
        return "<Response><Say>Goodbye.</Say><Hangup/></Response>"

    script = {
        "/twilio/voice": twiml(
            '<Say language="en-US" voice="Polly.Joanna">Welcome to the clinic.</Say>'
            '<Gather input="dtmf" action="/twilio/gather?prompt=1" numDigits="1" timeout="3" finishOnKey=""'
            ' actionOnEmptyResult="true"><Say>Press 1 for appointments.</Say>'
            "<Play>https://media.example/hold.wav</Play></Gather>"
        ),
        "/twilio/gather": gather,
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(from_="+15555550123", to="+15550100000", keys=["1", ""])
            transcript = await call.run()
            assert transcript is call.transcript
            assert kinds(call) == ["say", "say", "play", "gather", "say", "gather", "say", "hangup"]
            assert call.transcript[0].attrs == {"language": "en-US", "voice": "Polly.Joanna"}
            assert [line.text for line in call.lines("gather")] == ["1", "(no input)"]
            assert call.said() == ["Welcome to the clinic.", "Press 1 for appointments.",
                                   "Press 2 for the pharmacy.", "Goodbye."]
            assert call.transcript[-1].text == "<Hangup>"
            assert call.status == "completed" and call.done
            assert_clean(engine, call)

            voice, g1, g2 = engine.of("/twilio/voice") + engine.of("/twilio/gather")
            assert SID.match(voice.form["CallSid"]) and voice.form["CallSid"] == call.sid
            assert voice.form["CallStatus"] == "ringing"
            for hit in (voice, g1, g2):
                assert hit.method == "POST"
                assert {k: hit.form[k] for k in ("AccountSid", "From", "To", "Direction", "ApiVersion")} == {
                    "AccountSid": ACCOUNT, "From": "+15555550123", "To": "+15550100000",
                    "Direction": "inbound", "ApiVersion": "2010-04-01"}
                assert hit.headers["Content-Type"] == "application/x-www-form-urlencoded"
                assert hit.headers["I-Twilio-Idempotency-Token"]
            assert (g1.query, g1.form["Digits"], g1.form["CallStatus"]) == ({"prompt": "1"}, "1", "in-progress")
            # the relative action resolved against /twilio/gather?prompt=1; the timeout posted Digits=""
            assert (g2.query, g2.form["Digits"]) == ({"prompt": "2"}, "")
            (status,) = engine.of("/twilio/status")
            assert status.form["CallStatus"] == "completed"
            assert int(status.form["CallDuration"]) == int(call.clock) > 0

    run(go())


def test_gather_without_input_goes_on_and_without_action_posts_to_the_document() -> None:
    menu_hits: list[dict[str, str]] = []

    def menu(form: dict[str, str], request: web.Request) -> str:
        menu_hits.append(form)
        if "Digits" not in form:
            return '<Response><Gather numDigits="2"><Say>Enter your extension.</Say></Gather></Response>'
        return "<Response><Hangup/></Response>"

    script = {
        "/twilio/voice": twiml(
            '<Gather numDigits="1" action="/twilio/never"><Say>Main menu.</Say></Gather>'
            "<Say>We did not get that.</Say><Redirect>/twilio/menu</Redirect>"
        ),
        "/twilio/menu": menu,
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(keys=". 429#")
            await call.run()
            assert_clean(engine, call)
            assert engine.of("/twilio/never") == []  # no input, no actionOnEmptyResult: next verb
            assert call.said() == ["Main menu.", "We did not get that.", "Enter your extension."]
            (redirect,) = call.lines("redirect")
            assert redirect.text == engine.base_url + "/twilio/menu"
            assert redirect.attrs["source"] == "twiml"
            assert [h.get("Digits") for h in menu_hits] == [None, "42"]  # numDigits cut "429"

    run(go())


def test_redirect_resolves_relative_urls_signs_the_query_and_supports_get() -> None:
    script = {
        "/twilio/voice": twiml('<Redirect method="POST">next?step=2&amp;note=a%20b</Redirect>'),
        "/twilio/next": twiml('<Say>Step two.</Say><Redirect method="GET">/twilio/fetched?x=1</Redirect>'),
        "/twilio/fetched": twiml("<Say>Fetched with GET.</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call()
            await call.run()
            assert_clean(engine, call)
            assert call.said() == ["Step two.", "Fetched with GET."]
            (nxt,) = engine.of("/twilio/next")
            assert nxt.query == {"step": "2", "note": "a b"}
            (fetched,) = engine.of("/twilio/fetched")
            assert fetched.method == "GET" and fetched.form == {}
            assert fetched.query["x"] == "1" and fetched.query["CallSid"] == call.sid
            assert call.transcript[-1].text == "end of TwiML"

    run(go())


# ------------------------------------------------------------------ queue, REST redirect, dial


def test_enqueue_then_rest_redirect_then_dial_answered_with_callbacks() -> None:
    background: set[asyncio.Task[Any]] = set()
    rest_ref: list[FakeTwilioRest] = []
    base: list[str] = []

    def wait(form: dict[str, str], request: web.Request) -> str:
        # the engine picks an agent and moves the caller out of the queue through the REST API
        sid = form["CallSid"]
        t = asyncio.get_running_loop().create_task(
            rest_redirect(rest_ref[0], sid, f"{base[0]}/twilio/connect?call={sid}", Method="POST"))
        background.add(t)
        return "<Response><Say>You are next.</Say><Play>https://media.example/hold.wav</Play></Response>"

    def connect(form: dict[str, str], request: web.Request) -> str:
        sid = request.query["call"]
        return (
            '<Response><Dial action="/twilio/dial?offer=1" timeout="19" callerId="+15550100000">'
            f'<Client statusCallback="/twilio/agent?call={sid}&amp;offer=1"'
            ' statusCallbackEvent="answered completed" statusCallbackMethod="POST">alice</Client>'
            "</Dial></Response>"
        )

    script = {
        "/twilio/voice": twiml(
            '<Say>Please hold.</Say><Enqueue waitUrl="/twilio/wait" waitUrlMethod="POST"'
            ' action="/twilio/enqueued" method="POST">general</Enqueue>'
        ),
        "/twilio/wait": wait,
        "/twilio/enqueued": twiml(""),
        "/twilio/connect": connect,
        "/twilio/agent": lambda form, request: None,
        "/twilio/dial": twiml("<Say>Thank you for calling.</Say><Hangup/>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, rest, sim):
            rest_ref.append(rest)
            base.append(engine.base_url)
            call = await sim.place_call(agent="answer", talk_seconds=42)
            await call.run()
            assert_clean(engine, call)
            assert kinds(call) == ["say", "enqueue", "say", "play", "redirect", "dial", "say", "hangup"]
            assert call.lines("say")[1].attrs == {"queue": "wait"}
            redirect = call.lines("redirect")[0]
            assert redirect.attrs["source"] == "rest"
            assert redirect.text == f"{engine.base_url}/twilio/connect?call={call.sid}"
            (dial_line,) = call.lines("dial")
            assert dial_line.text == "client:alice" and dial_line.attrs["result"] == "answer"

            (red,) = rest.redirects
            assert (red.call_sid, red.method) == (call.sid, "POST")
            (waited,) = engine.of("/twilio/wait")
            assert waited.form["QueuePosition"] == "1" and waited.form["CurrentQueueSize"] == "1"
            assert waited.form["QueueSid"].startswith("QU") and "QueueTime" in waited.form
            assert "AvgQueueTime" in waited.form
            (enqueued,) = engine.of("/twilio/enqueued")
            assert enqueued.form["QueueResult"] == "redirected"
            paths = [h.path for h in engine.hits]
            assert paths.index("/twilio/enqueued") < paths.index("/twilio/connect")

            answered, completed = engine.of("/twilio/agent")
            assert [answered.form["CallStatus"], completed.form["CallStatus"]] == ["in-progress", "completed"]
            leg = answered.form["CallSid"]
            assert SID.match(leg) and leg != call.sid and completed.form["CallSid"] == leg
            assert answered.form["ParentCallSid"] == call.sid and answered.form["To"] == "client:alice"
            assert answered.form["From"] == "+15550100000"
            assert completed.form["CallDuration"] == "42"
            assert answered.query == {"call": call.sid, "offer": "1"}
            (dial,) = engine.of("/twilio/dial")
            assert (dial.form["DialCallStatus"], dial.form["DialCallDuration"], dial.form["DialCallSid"]) == (
                "completed", "42", leg)
            assert dial.form["CallSid"] == call.sid and dial.form["CallStatus"] == "in-progress"
            assert call.clock >= 42
        for t in background:
            assert t.result()[0] == 200

    run(go())


def test_per_dial_behaviours_no_answer_then_answer_and_busy() -> None:
    def dial(form: dict[str, str], request: web.Request) -> str:
        if request.query["offer"] == "1":
            return ('<Response><Dial action="/twilio/dial?offer=2" timeout="10">'
                    "<Number>+15550109999</Number></Dial></Response>")
        return "<Response><Hangup/></Response>"

    script = {
        "/twilio/voice": twiml(
            '<Dial action="/twilio/dial?offer=1" timeout="15"><Sip statusCallback="/twilio/agent">'
            "sip:bob@pbx.example</Sip></Dial>"
        ),
        "/twilio/dial": dial,
        "/twilio/agent": lambda form, request: None,
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(agent=["no-answer", "answer"], talk_seconds=30)
            await call.run()
            assert_clean(engine, call)
            d1, d2 = engine.of("/twilio/dial")
            assert d1.form["DialCallStatus"] == "no-answer" and "DialCallDuration" not in d1.form
            assert (d2.form["DialCallStatus"], d2.form["DialCallDuration"]) == ("completed", "30")
            # the default statusCallbackEvent is "completed" only
            (leg,) = engine.of("/twilio/agent")
            assert (leg.form["CallStatus"], leg.form["To"]) == ("no-answer", "sip:bob@pbx.example")
            assert [line.attrs["result"] for line in call.lines("dial")] == ["no-answer", "answer"]

            busy = await sim.place_call(agent="busy")
            await busy.run()
            assert engine.of("/twilio/dial")[-1].form["DialCallStatus"] == "busy"

    run(go())


def test_dial_without_action_goes_on_with_the_next_verb() -> None:
    script = {"/twilio/voice": twiml("<Dial>+15550101234</Dial><Say>After the call.</Say>")}

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(agent="failed")
            await call.run()
            assert_clean(engine, call)
            assert call.lines("dial")[0].text == "+15550101234"
            assert call.said() == ["After the call."]

    run(go())


def test_caller_hangs_up_while_talking_to_the_agent() -> None:
    answered = asyncio.Event()

    def agent(form: dict[str, str], request: web.Request) -> None:
        if form["CallStatus"] == "in-progress":
            answered.set()

    script = {
        "/twilio/voice": twiml(
            '<Dial action="/twilio/dial"><Client statusCallback="/twilio/agent"'
            ' statusCallbackEvent="initiated ringing answered completed">alice</Client></Dial>'
        ),
        "/twilio/agent": agent,
        "/twilio/dial": twiml("<Say>Never played.</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(talk_wait=10)
            task = asyncio.create_task(call.run())
            await asyncio.wait_for(answered.wait(), 5)
            assert call.state == "talking"
            call.hangup()
            await task
            assert_clean(engine, call)
            assert [h.form["CallStatus"] for h in engine.of("/twilio/agent")] == [
                "initiated", "ringing", "in-progress", "completed"]
            (dial,) = engine.of("/twilio/dial")
            assert (dial.form["DialCallStatus"], dial.form["CallStatus"]) == ("completed", "completed")
            assert call.said() == [] and call.end_reason == "caller hung up"
            assert engine.of("/twilio/status")[0].form["CallStatus"] == "completed"

    run(go())


def test_caller_hangs_up_while_queued_and_abandons_after_the_timeout() -> None:
    script = {
        "/twilio/voice": twiml('<Enqueue waitUrl="/twilio/wait" action="/twilio/enqueued">general</Enqueue>'),
        "/twilio/wait": twiml("<Pause length='30'/>"),
        "/twilio/enqueued": twiml("<Say>Never played.</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(enqueue_timeout=10)
            task = asyncio.create_task(call.run())
            await call.wait_for_line("enqueue")
            call.hangup()
            await task
            assert_clean(engine, call)
            assert call.end_reason == "caller hung up" and call.said() == []
            (enq,) = engine.of("/twilio/enqueued")
            assert (enq.form["QueueResult"], enq.form["CallStatus"]) == ("hangup", "completed")
            assert engine.of("/twilio/status")[0].form["CallStatus"] == "completed"

            abandoned = await sim.place_call(enqueue_timeout=0.05)
            await abandoned.run()
            assert "abandoned" in (abandoned.end_reason or "")
            assert engine.of("/twilio/enqueued")[-1].form["QueueResult"] == "hangup"
            assert abandoned.clock >= 30  # the wait TwiML's pause

    run(go())


def test_a_key_in_the_wait_twiml_leaves_the_queue() -> None:
    script = {
        "/twilio/voice": twiml('<Enqueue waitUrl="/twilio/wait" action="/twilio/enqueued">general</Enqueue>'),
        "/twilio/wait": twiml(
            '<Gather input="dtmf" numDigits="1" timeout="1" action="/twilio/waitkey">'
            "<Say>Press 0 to leave a message.</Say></Gather><Play>https://media.example/hold.wav</Play>"
        ),
        "/twilio/waitkey": twiml("<Leave/>"),
        "/twilio/enqueued": twiml("<Say>Leave your message after the tone.</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(keys=["0"], enqueue_timeout=5)
            await call.run()
            assert_clean(engine, call)
            (key,) = engine.of("/twilio/waitkey")
            assert key.form["Digits"] == "0" and key.form["QueueSid"].startswith("QU")
            assert engine.of("/twilio/enqueued")[0].form["QueueResult"] == "leave"
            assert call.said() == ["Press 0 to leave a message.", "Leave your message after the tone."]
            assert call.lines("play") == []  # the key cut the wait TwiML short

    run(go())


def test_engine_hangs_up_or_sends_inline_twiml_through_rest() -> None:
    script = {
        "/twilio/voice": twiml('<Enqueue waitUrl="/twilio/wait">general</Enqueue>'),
        "/twilio/wait": twiml(""),
    }

    async def go() -> None:
        async with harness(script) as (engine, rest, sim):
            call = await sim.place_call()
            task = asyncio.create_task(call.run())
            await call.wait_for_line("enqueue")
            status, body = await rest_redirect(rest, call.sid, None, Twiml="<Response><Say>Inline.</Say></Response>")
            assert status == 200 and body["sid"] == call.sid and body["status"] == "in-progress"
            await task
            assert call.said() == ["Inline."]

            call2 = await sim.place_call()
            task = asyncio.create_task(call2.run())
            await call2.wait_for_line("enqueue")
            async with aiohttp.ClientSession(headers=basic_auth(ACCOUNT, TOKEN)) as s:
                url = f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{call2.sid}.json"
                async with s.post(url, data={"Status": "completed"}) as r:
                    assert r.status == 200 and (await r.json())["status"] == "completed"
            await task
            assert call2.end_reason is not None and "engine" in call2.end_reason
            # a call that has ended cannot be redirected
            status, body = await rest_redirect(rest, call2.sid, f"{engine.base_url}/twilio/voice")
            assert (status, body["code"]) == (400, 21220)

    run(go())


# ------------------------------------------------------------------ record, hangup, reject


def test_record_posts_the_action_and_the_recording_status_callback() -> None:
    script = {
        "/twilio/voice": twiml(
            '<Say>Leave a message after the tone.</Say><Record action="/twilio/record" maxLength="10"'
            ' finishOnKey="#" playBeep="true" recordingStatusCallback="/twilio/recording"/>'
        ),
        "/twilio/record": twiml("<Say>Thank you.</Say><Hangup/>"),
        "/twilio/recording": lambda form, request: None,
    }

    async def go() -> None:
        async with harness(script) as (engine, rest, sim):
            call = await sim.place_call()
            await call.run()
            assert_clean(engine, call)
            assert kinds(call) == ["say", "record", "say", "hangup"]
            (rec,) = engine.of("/twilio/record")
            assert rec.form["RecordingDuration"] == "10"  # capped by maxLength
            assert rec.form["Digits"] == "#" and rec.form["RecordingSid"].startswith("RE")
            assert rec.form["RecordingUrl"].startswith(rest.base_url)
            (st,) = engine.of("/twilio/recording")
            assert st.form["RecordingStatus"] == "completed"
            assert st.form["RecordingSid"] == rec.form["RecordingSid"]

            hung = await sim.place_call(record_finish="hangup", recording_seconds=7)
            await hung.run()
            rec = engine.of("/twilio/record")[-1]
            assert (rec.form["Digits"], rec.form["RecordingDuration"], rec.form["CallStatus"]) == (
                "hangup", "7", "completed")
            assert hung.said() == ["Leave a message after the tone."]  # the action's TwiML is not played
            assert hung.end_reason == "caller hung up after recording"

    run(go())


def test_hangup_at_a_prompt_and_reject() -> None:
    script = {
        "/twilio/voice": twiml('<Gather action="/twilio/g"><Say>Menu.</Say></Gather>'),
        "/twilio/reject/voice": twiml('<Reject reason="busy"/>'),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(keys="h")
            await call.run()
            assert call.end_reason == "caller hung up at the prompt"
            assert engine.of("/twilio/g") == []

            sim.voice_path = "/twilio/reject/voice"
            rejected = await sim.place_call()
            await rejected.run()
            assert rejected.status == "busy"
            assert engine.of("/twilio/status")[-1].form["CallStatus"] == "busy"

    run(go())


# ------------------------------------------------------------------ failures


def test_an_error_status_ends_the_call_with_an_application_error() -> None:
    script = {
        "/twilio/voice": twiml('<Gather action="/twilio/gather" numDigits="1"><Say>Menu.</Say></Gather>'),
        "/twilio/gather": lambda form, request: web.Response(status=500, text="boom"),
        "/twilio/bad-xml/voice": lambda form, request: web.Response(text="<Response><Say>", content_type="text/xml"),
        "/twilio/bad-verb/voice": twiml("<Sayy>typo</Sayy><Say>never</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call(keys="1")
            await call.run()
            assert [r.status for r in call.requests] == [200, 500, 204]
            assert len(call.errors) == 1 and "11200" in call.errors[0] and "HTTP 500" in call.errors[0]
            assert kinds(call)[-2:] == ["note", "hangup"]
            assert call.end_reason == "application error 11200"
            assert engine.of("/twilio/status")[0].form["CallStatus"] == "completed"

            sim.voice_path = "/twilio/bad-xml/voice"
            bad = await sim.place_call()
            await bad.run()
            assert "12100" in bad.errors[0]

            sim.voice_path = "/twilio/bad-verb/voice"
            typo = await sim.place_call()
            await typo.run()
            assert "12200" in typo.errors[0] and typo.said() == []

    run(go())


def test_a_refused_signature_or_an_unreachable_engine_is_an_error() -> None:
    script = {"/twilio/voice": twiml("<Say>Hello.</Say>")}

    async def go() -> None:
        async with harness(script) as (engine, _, _sim), SimTwilio(engine.base_url, ACCOUNT, "bad") as wrong:
            call = await wrong.run_call()
            assert call.requests[0].status == 403 and "HTTP 403" in call.errors[0]
        # the engine is closed now: nothing listens on its port
        async with SimTwilio(engine.base_url, ACCOUNT, TOKEN, status_path=None) as sim:
            call = await sim.run_call()
            assert call.requests[0].status == 0 and "no HTTP answer" in call.errors[0]
            assert len(call.requests) == 1  # no status callback configured

    run(go())


def test_max_steps_stops_a_redirect_loop() -> None:
    script = {"/twilio/voice": twiml("<Redirect>/twilio/voice</Redirect>")}

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.place_call()
            await call.run(max_steps=5)
            assert call.end_reason == "max_steps reached" and "max_steps" in call.errors[0]
            statuses = [h.form["CallStatus"] for h in engine.of("/twilio/voice")]
            assert statuses == ["ringing"] + ["in-progress"] * 5

    run(go())


# ------------------------------------------------------------------ signatures, proxies


def test_behind_a_proxy_signatures_cover_the_public_url() -> None:
    public = "https://ivr.example.org"
    base: list[str] = []
    script = {
        "/twilio/voice": twiml(f"<Redirect>{public}/twilio/next?x=1</Redirect>"),
        "/twilio/next": lambda form, request: f"<Response><Redirect>{base[0]}/twilio/last</Redirect></Response>",
        "/twilio/last": twiml("<Say>Done.</Say>"),
    }

    async def go() -> None:
        async with harness(script, public_url=public) as (engine, _, sim):
            base.append(engine.base_url)
            call = await sim.place_call()
            await call.run()
            assert_clean(engine, call)
            assert call.said() == ["Done."]
            assert [r.signed_url for r in call.requests][:3] == [
                f"{public}/twilio/voice", f"{public}/twilio/next?x=1", f"{public}/twilio/last"]
            assert all(r.url.startswith(engine.base_url) for r in call.requests)
            # the engine pointed Twilio at its own address: followed, but flagged
            assert len(call.warnings) == 1 and "unreachable" in call.warnings[0]

    run(go())


def test_sign_and_signed_post_for_forged_requests() -> None:
    script = {"/twilio/voice": twiml("<Say>Hello.</Say>")}
    params = {"CallSid": "CA" + "1" * 32, "From": "+15555550123"}

    async def go() -> None:
        url = "https://ivr.example.org/twilio/voice?a=1"
        assert RequestValidator(TOKEN).validate(url, params, sign(url, params, TOKEN))
        assert sign(url, params, TOKEN) == RequestValidator(TOKEN).compute_signature(url, params)
        assert public_view("http://127.0.0.1:9/twilio/x?y=2", "https://p.example/") == "https://p.example/twilio/x?y=2"

        async with harness(script) as (engine, _, _sim), aiohttp.ClientSession() as s:
            target = engine.base_url + "/twilio/voice"
            assert (await signed_post(s, target, params, TOKEN)).status == 200
            ok = await signed_post(s, target, params, TOKEN)
            assert ok.content_type == "application/xml" and "<Say>Hello.</Say>" in ok.text
            assert (await signed_post(s, target, params, "forged-token")).status == 403
            assert (await signed_post(s, target, params, TOKEN, signature="")).status == 403
            # signed for a proxy the engine does not sit behind
            assert (await signed_post(s, target, params, TOKEN, public_url="https://evil.example")).status == 403
            async with s.post(target, data=params) as r:  # unsigned
                assert r.status == 403

        public = "https://ivr.example.org"
        async with harness(script, public_url=public) as (engine, _, _sim), aiohttp.ClientSession() as s:
            target = engine.base_url + "/twilio/voice"
            assert (await signed_post(s, target, params, TOKEN, public)).status == 200
            assert (await signed_post(s, target, params, TOKEN)).status == 403

    run(go())


def test_replay_resends_the_same_request_like_a_twilio_retry() -> None:
    script = {"/twilio/voice": twiml("<Say>Hello.</Say>")}

    async def go() -> None:
        async with harness(script) as (engine, _, sim):
            call = await sim.run_call()
            first = call.requests_of("voice")[0]
            again = await sim.replay(first)
            assert again.status == 200 and "Hello." in again.text
            a, b = engine.of("/twilio/voice")
            assert a.form == b.form and b.signature_ok
            assert a.headers["I-Twilio-Idempotency-Token"] == b.headers["I-Twilio-Idempotency-Token"]

    run(go())


# ------------------------------------------------------------------ the fake REST API


def test_rest_api_auth_not_found_messages_and_injected_failures() -> None:
    async def go() -> None:
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest:
            api = f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}"
            unknown = f"{api}/Calls/CA{'9' * 32}.json"
            async with aiohttp.ClientSession() as anon, anon.post(unknown, data={"Url": "https://x.example/"}) as r:
                assert r.status == 401 and (await r.json())["code"] == 20003
                assert r.headers["WWW-Authenticate"].startswith("Basic")
            sms = {"To": "+1", "From": "+2", "Body": "x"}
            async with (
                aiohttp.ClientSession(headers=basic_auth(ACCOUNT, "wrong")) as bad,
                bad.post(f"{api}/Messages.json", data=sms) as r,
            ):
                assert r.status == 401
            async with aiohttp.ClientSession(headers=basic_auth(ACCOUNT, TOKEN)) as s:
                async with s.post(unknown, data={"Url": "https://x.example/"}) as r:
                    body = await r.json()
                    assert r.status == 404 and body["code"] == 20404 and body["status"] == 404
                    assert body["message"]
                other = f"{rest.base_url}/2010-04-01/Accounts/AC{'f' * 32}/Messages.json"
                async with s.post(other, data={"To": "+1", "From": "+2", "Body": "x"}) as r:
                    assert r.status == 404
                async with s.get(f"{rest.base_url}/2010-04-01/Accounts/{ACCOUNT}/Queues.json") as r:
                    assert r.status == 404

                form = {"To": "+15555550123", "From": "+15550100000", "Body": "Your appointment is confirmed."}
                async with s.post(f"{api}/Messages.json", data=form) as r:
                    body = await r.json()
                    assert r.status == 201 and re.match(r"^SM[0-9a-f]{32}$", body["sid"])
                    assert (body["to"], body["from"], body["body"]) == (form["To"], form["From"], form["Body"])
                (msg,) = rest.messages
                assert (msg.sid, msg.to, msg.from_, msg.body) == (body["sid"], form["To"], form["From"], form["Body"])
                async with s.post(f"{api}/Messages.json", data={"To": "+1", "From": "+2"}) as r:
                    assert r.status == 400 and (await r.json())["code"] == 21602

                rest.fail_next(2)
                for _ in range(2):
                    async with s.post(f"{api}/Messages.json", data=form) as r:
                        assert r.status == 500 and (await r.json())["status"] == 500
                async with s.post(f"{api}/Messages.json", data=form) as r:
                    assert r.status == 201
                assert len(rest.messages) == 2
                assert [q.status for q in rest.requests] == [401, 401, 404, 404, 404, 201, 400, 500, 500, 201]
                assert len(await rest.wait_for_messages(2, timeout=0.1)) == 2
                with pytest.raises(TimeoutError):
                    await rest.wait_for_redirects(1, timeout=0.05)

    run(go())


def test_rest_api_answers_the_twilio_library() -> None:
    """The engine talks to Twilio with the twilio library: the fake must satisfy its client."""

    class Rebased(TwilioHttpClient):  # type: ignore[misc]
        def __init__(self, base: str) -> None:
            super().__init__(timeout=5)
            self.base = base

        def request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:
            return super().request(method, url.replace("https://api.twilio.com", self.base), *args, **kw)

    script = {
        "/twilio/voice": twiml('<Enqueue waitUrl="/twilio/wait">general</Enqueue>'),
        "/twilio/wait": twiml(""),
        "/twilio/connect": twiml("<Say>Connecting.</Say>"),
    }

    async def go() -> None:
        async with harness(script) as (engine, rest, sim):
            client = Client(ACCOUNT, TOKEN, http_client=Rebased(rest.base_url))
            call = await sim.place_call()
            task = asyncio.create_task(call.run())
            await call.wait_for_line("enqueue")
            url = f"{engine.base_url}/twilio/connect"
            updated = await asyncio.to_thread(lambda: client.calls(call.sid).update(url=url, method="POST"))
            assert updated.sid == call.sid and updated.status == "in-progress"
            await task
            assert call.said() == ["Connecting."]
            assert (rest.redirects[0].url, rest.redirects[0].method) == (url, "POST")

            msg = await asyncio.to_thread(lambda: client.messages.create(to="+15555550123", from_="+15550100000",
                                                                         body="See you Monday."))
            assert msg.sid.startswith("SM") and msg.body == "See you Monday."
            with pytest.raises(TwilioRestException) as err:
                await asyncio.to_thread(lambda: client.calls("CA" + "9" * 32).update(url=url))
            assert err.value.status == 404 and err.value.code == 20404

    run(go())


# ------------------------------------------------------------------ small things


def test_place_call_checks_its_arguments_and_transcripts_render() -> None:
    script = {"/twilio/voice": twiml('<Say language="en-US">Hello there.</Say><Pause length="3"/>'
                                     "<Play>https://media.example/a.wav</Play>")}

    async def go() -> None:
        async with harness(script) as (_, _rest, sim):
            with pytest.raises(ValueError):
                await sim.place_call(agent="maybe")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await sim.place_call(keys=["1x"])
            with pytest.raises(ValueError):
                await sim.place_call(record_finish="##")
            call = await sim.run_call()
            with pytest.raises(RuntimeError):
                await call.run()
            text = format_transcript(call.transcript)
            assert "say      Hello there.  [language=en-US]" in text
            play = call.lines("play")[0]
            assert play.at >= 4.0  # ~1 s of speech, then the 3 s pause
            assert text.splitlines()[-1].split()[1] == "hangup"

    run(go())
