"""Races and edge cases of the Twilio adapter found in review, each a regression test.

Requests are posted directly (signed), the REST client is a recorder, and time is fake: each test
pins one moment where webhooks, routing decisions and Twilio's own behaviour cross.
"""
from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

from twilio_harness import ROOT, TwilioHarness, call_form, twilio_roster


class Rest:
    """Records what the adapter asks of Twilio's REST API."""

    def __init__(self) -> None:
        self.redirects: list[str] = []
        self.sms: list[tuple[str, str]] = []

    async def redirect(self, sid: str, path: str) -> None:
        self.redirects.append(path)

    async def send_sms(self, f: str, t: str, b: str) -> None:
        self.sms.append((t, b))


async def drive(h, sid, keys):
    _, body = await h.post("/twilio/voice", call_form(sid))
    for k in keys:
        g = ET.fromstring(body).find("Gather")
        assert g is not None, body
        _, body = await h.post(g.get("action"), call_form(sid, Digits=k))
    return body


SID_PARTIAL = "CA" + "2" * 32

def test_partial_dob_then_silence_is_not_a_silent_hangup(tmp_path):
    async def go():
        async with TwilioHarness(tmp_path) as h:
            _, body = await h.post("/twilio/voice", call_form(SID_PARTIAL))
            g = ET.fromstring(body).find("Gather").get("action")
            _, body = await h.post(g, call_form(SID_PARTIAL, Digits="2"))

            g = ET.fromstring(body).find("Gather")
            assert g is not None
            await h.clock.advance(10)
            st, body = await h.post(g.get("action"), call_form(SID_PARTIAL, Digits="0412"))  # typed 4 digits, then went quiet

            assert len(ET.fromstring(body)) > 0, "empty TwiML: Twilio hangs up on the patient"
    asyncio.run(go())

SID_NOANSWER = "CA" + "4" * 32

def test_no_answer_reoffer_also_redirects(tmp_path):
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez", "ben.carter"), rest=rest) as h:
            body = await drive(h, SID_NOANSWER, ["1", "1"])

            d = ET.fromstring(body).find("Dial")
            assert d is not None
            _, body = await h.post(d.get("action"), call_form(SID_NOANSWER, DialCallStatus="no-answer"))
            await h.adapter.settled()

            d2 = ET.fromstring(body).find("Dial")
            assert d2 is not None
            assert rest.redirects == [], "a REST redirect to /connect tears down the <Dial> just returned"
    asyncio.run(go())

SID_NOANSWER2 = "CA" + "5" * 32

def test_a_reoffer_made_inside_the_dial_action_sends_no_redirect_behind_it(tmp_path):
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez", "ben.carter"), rest=rest) as h:
            body = await drive(h, SID_NOANSWER2, ["1", "1"])
            d = ET.fromstring(body).find("Dial")
            _, body = await h.post(d.get("action"), call_form(SID_NOANSWER2, DialCallStatus="no-answer"))
            await h.adapter.settled()
            d2 = ET.fromstring(body).find("Dial")

            # the agent picks up the second ring...
            cb = d2.find("Client").get("statusCallback")
            await h.post(cb, call_form(SID_NOANSWER2, CallStatus="in-progress"))

            # ...and no REST redirect was sent behind the <Dial> the webhook returned: nothing tears the call down
            assert rest.redirects == [] and h.adapter.calls[SID_NOANSWER2].talking is not None
    asyncio.run(go())

SID_MAXWAIT = "CA" + "6" * 32

def test_max_wait_reached_while_ringing_is_not_a_silent_hangup(tmp_path):
    q = tmp_path / "queues.yaml"
    q.write_text("queues:\n  scheduling:\n    skills: {scheduling: 1}\n    max_wait: 10\n    ring_timeout: 60\n    wrap_up: 5\n  front_desk:\n    skills: {front_desk: 1}\n")
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), queues=q, login=("ana.lopez",), rest=rest) as h:
            body = await drive(h, SID_MAXWAIT, ["1", "1"])
            d = ET.fromstring(body).find("Dial")
            assert d is not None, body
            await h.clock.advance(15, settle=h.adapter.settled)
            st, body = await h.post(d.get("action"), call_form(SID_MAXWAIT, DialCallStatus="no-answer"))
            await h.adapter.settled()

            assert len(ET.fromstring(body)) > 0, "empty TwiML: Twilio hangs up before the /resume redirect lands"
    asyncio.run(go())

SID_RACE = "CA" + "3" * 32
calls = []
def slow_find(args):
    calls.append(1); time.sleep(1.0); return {"date": "Thursday", "id": "A-1"}

def test_retry_while_first_request_in_flight(tmp_path):
    async def go():
        async with TwilioHarness(tmp_path, hooks={"find_appointment": slow_find}) as h:
            _, body = await h.post("/twilio/voice", call_form(SID_RACE))
            g = ET.fromstring(body).find("Gather").get("action")
            _, body = await h.post(g, call_form(SID_RACE, Digits="1"))
            g = ET.fromstring(body).find("Gather").get("action")
            _, body = await h.post(g, call_form(SID_RACE, Digits="2"))
            g = ET.fromstring(body).find("Gather").get("action")
            tok = {"I-Twilio-Idempotency-Token": "t-42"}
            first = asyncio.create_task(h.post(g, call_form(SID_RACE, Digits="04121980"), headers=tok))
            await asyncio.sleep(0.3)
            retry = await h.post(g, call_form(SID_RACE, Digits="04121980"), headers=tok)  # Twilio's retry (rp=rt/all)
            orig = await first

            assert retry == orig, "the retry got a different answer"
    asyncio.run(go())

SID_FALLBACK_YANK = "CA" + "d" * 32

def test_after_the_error_fallback_the_router_lets_go_of_the_call(tmp_path):
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("gus.records",), rest=rest) as h:
            a = h.adapter
            real = a._connect_or_wait
            async def boom(call, vr, depth=0):  # a bug after the router accepted the call (any exception in the turn)
                raise RuntimeError("bug")
            a._connect_or_wait = boom
            body = await drive(h, SID_FALLBACK_YANK, ["1", "1"])
            assert "+15550100200" in body  # the patient is now talking to the front desk's fallback line
            a._connect_or_wait = real

            await a.route("login", "ana.lopez"); await a.settled()

            assert not rest.redirects, "the patient is pulled out of the fallback conversation into <Dial> an agent"
    asyncio.run(go())

SID_CONNECT_CACHE = "CA" + "9" * 32

def test_second_redirect_to_connect_is_not_served_the_first_answer(tmp_path):
    q = tmp_path / "queues.yaml"
    q.write_text(open(ROOT / "queues.yaml").read().replace("max_no_answer: 3", "max_no_answer: 1"))
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), queues=q, login=("gus.records",), rest=rest) as h:
            body = await drive(h, SID_CONNECT_CACHE, ["1", "1"])

            await h.adapter.route("login", "ana.lopez"); await h.adapter.settled()
            _, c1 = await h.post(rest.redirects[-1], call_form(SID_CONNECT_CACHE))      # no I-Twilio-Idempotency-Token (proxy strips it)
            d = ET.fromstring(c1).find("Dial")
            _, body = await h.post(d.get("action"), call_form(SID_CONNECT_CACHE, DialCallStatus="no-answer"))

            await h.clock.advance(95, settle=h.adapter.settled)
            await h.adapter.route("login", "ben.carter"); await h.adapter.settled()

            _, c2 = await h.post(rest.redirects[-1], call_form(SID_CONNECT_CACHE))

            assert c2 != c1, "stale cached <Dial> to the first agent (offer=1) replayed"
    asyncio.run(go())

SID_HANGUP_RINGING = "CA" + "7" * 32

def test_caller_hanging_up_while_agent_rings_is_not_the_agents_miss(tmp_path):
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez",), rest=rest) as h:
            body = await drive(h, SID_HANGUP_RINGING, ["1", "1"])
            d = ET.fromstring(body).find("Dial")
            # the caller hangs up while Ana's client rings: Twilio posts the Dial action (parent completed)
            st, body = await h.post(d.get("action"), call_form(SID_HANGUP_RINGING, CallStatus="completed", DialCallStatus="canceled"))

            await h.post(f"/twilio/status?call={SID_HANGUP_RINGING}", call_form(SID_HANGUP_RINGING, CallStatus="completed"))
            causes = [e.cause for e in await h.routing.store.agent_events("ana.lopez")]

            assert "no-answer" not in causes
    asyncio.run(go())

SID_COMPLETED_NO_CB = "CA" + "8" * 32

def test_completed_dial_without_agent_callback_is_not_a_no_answer(tmp_path):
    async def go():
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez",), rest=Rest()) as h:
            body = await drive(h, SID_COMPLETED_NO_CB, ["1", "1"])
            d = ET.fromstring(body).find("Dial")
            # the agent leg's 'answered' status callback was lost (network, 5xx); the Dial action says it all
            _, body = await h.post(d.get("action"), call_form(SID_COMPLETED_NO_CB, DialCallStatus="completed", DialCallDuration="240"))

            assert ET.fromstring(body).find("Dial") is None, "the patient is put back in line and the agent rung again"
    asyncio.run(go())

A, B = "CA" + "a" * 32, "CA" + "b" * 32

def test_waiting_caller_redirected_when_wrapup_ends(tmp_path):
    async def go():
        rest = Rest()
        async with TwilioHarness(tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez",), rest=rest) as h:
            body = await drive(h, A, ["1", "1"])
            d = ET.fromstring(body).find("Dial")
            await h.post(d.find("Client").get("statusCallback"), call_form(A, CallStatus="in-progress"))
            body_b = await drive(h, B, ["1", "1"])
            assert ET.fromstring(body_b).find("Enqueue") is not None
            await h.post(d.get("action"), call_form(A, DialCallStatus="completed"))

            await h.clock.advance(600, settle=h.adapter.settled)

            assert rest.redirects == [f"/twilio/connect?call={B}&r=1"]
    asyncio.run(go())
