"""The Twilio endpoints: signatures, bad input, retries, and the call flow TwiML, over real HTTP on 127.0.0.1."""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from twilio_harness import TOKEN, TwilioHarness, call_form

SID = "CA" + "1" * 32


def run(coro):
    return asyncio.run(coro)


def verbs(twiml: str) -> list[str]:
    return [el.tag for el in ET.fromstring(twiml)]


def test_incoming_call_answers_with_the_greeting_and_the_menu_gather(tmp_path: Path):
    async def go():
        async with TwilioHarness(tmp_path) as h:
            status, body = await h.post("/twilio/voice", call_form(SID, CallStatus="ringing"))
            assert status == 200
            doc = ET.fromstring(body)
            says = [el for el in doc.iter("Say")]
            assert says[0].get("language") == "en-US" and says[0].get("voice") == "Polly.Joanna"
            assert "emergency" in " ".join(s.text or "" for s in says)
            g = doc.find("Gather")
            assert g is not None and g.get("input") == "dtmf" and g.get("actionOnEmptyResult") == "true"
            assert g.get("action").startswith(f"/twilio/gather?call={SID}&prompt=")
            assert doc.find("Play") is not None and doc.find("Play").get("url") is None  # chime: /media/chime.wav
            assert doc.find("Play").text == "/media/chime.wav"

    run(go())


def test_forged_missing_and_wrong_url_signatures_get_403_and_log_no_phi(tmp_path: Path, caplog):
    async def go():
        async with TwilioHarness(tmp_path, public_url="https://ivr.clinic.example") as h:
            form = call_form(SID)
            assert (await h.post("/twilio/voice", form, sign=False))[0] == 403
            assert (await h.post("/twilio/voice", form, signature="bm90IGEgc2lnbmF0dXJl"))[0] == 403
            # signed for the engine's local URL, but Twilio calls (and signs) the public one
            assert (await h.post("/twilio/voice", form))[0] == 403
            ok = await h.post("/twilio/voice", form, signed_url="https://ivr.clinic.example/twilio/voice")
            assert ok[0] == 200
            # a tampered field breaks the signature
            sig_for = dict(form, Digits="1")
            from twilio.request_validator import RequestValidator
            sig = RequestValidator(TOKEN).compute_signature("https://ivr.clinic.example/twilio/status", sig_for)
            assert (await h.post("/twilio/status", dict(form, Digits="2"), signature=sig))[0] == 403
            assert not h.adapter.calls[SID].ended  # nothing happened to the call

    with caplog.at_level(logging.WARNING):
        run(go())
    refused = [r.getMessage() for r in caplog.records if "E-TWILIO-SIGNATURE" in r.getMessage()]
    assert len(refused) == 4 and not any("5555550123" in m for m in refused)


def test_a_retried_webhook_does_not_advance_the_call_twice(tmp_path: Path):
    async def go():
        async with TwilioHarness(tmp_path) as h:
            _, first = await h.post("/twilio/voice", call_form(SID, CallStatus="ringing"))
            again = await h.post("/twilio/voice", call_form(SID, CallStatus="ringing"))
            assert again == (200, first)
            g = ET.fromstring(first).find("Gather").get("action")
            a = await h.post(g, call_form(SID, Digits="1"))
            node = h.adapter.calls[SID].state.node
            b = await h.post(g, call_form(SID, Digits="1"), headers={})  # Twilio's retry: same request
            assert a == b and h.adapter.calls[SID].state.node == node == "appointments"
            # with Twilio's idempotency token, a retry is recognised by it
            g2 = ET.fromstring(a[1]).find("Gather").get("action")
            tok = {"I-Twilio-Idempotency-Token": "tok-1"}
            c = await h.post(g2, call_form(SID, Digits="2"), headers=tok)
            d = await h.post(g2, call_form(SID, Digits="2"), headers=tok)
            assert c == d

    run(go())


def test_bad_input_malformed_unknown_and_oversized(tmp_path: Path):
    async def go():
        async with TwilioHarness(tmp_path) as h:
            assert (await h.post("/twilio/voice", {"AccountSid": "AC1"}))[0] == 400  # no CallSid
            # an unknown call on a caller-facing webhook: straight to a person, never silence
            status, body = await h.post("/twilio/gather?call=CAdead&prompt=1", call_form("CAdead", Digits="1"))
            assert status == 200 and ET.fromstring(body).find("Dial").text == "+15550100200"
            assert (await h.post("/twilio/status?call=CAdead", call_form("CAdead", CallStatus="completed")))[0] == 204
            await h.post("/twilio/voice", call_form(SID))
            assert (await h.post(f"/twilio/gather?call={SID}&prompt=x", call_form(SID)))[0] == 400
            url = h.base + "/twilio/voice"
            async with h.session.post(url, data="x" * 100_000, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}) as r:
                assert r.status == 413
            async with h.session.post(url, json={"CallSid": SID}, headers={"X-Twilio-Signature": "x"}) as r:
                assert r.status == 415
            assert SID in h.adapter.calls and not h.adapter.calls[SID].ended  # nothing lost

    run(go())


# ---------------------------------------------------------------------- whole calls, played by a simulated Twilio

from agents.state import Status  # noqa: E402
from ivr.twilio.rest import TwilioRest  # noqa: E402
from ivr.twilio.sim import FakeTwilioRest, SimTwilio  # noqa: E402
from twilio_harness import ACCOUNT, ROOT, twilio_roster  # noqa: E402


async def twilio_call(h: TwilioHarness, rest: FakeTwilioRest, **kw):
    h.adapter.rest = TwilioRest(ACCOUNT, TOKEN, h.base, api_base=rest.base_url)
    async with SimTwilio(h.base, ACCOUNT, TOKEN, rest) as sim:
        call = await sim.place_call(**kw)
        await call.run()
        await h.adapter.settled()
        return call


def test_a_call_walks_the_clinic_tree_to_an_agent_and_back_through_the_twilio_endpoints(tmp_path: Path):
    async def go():
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, TwilioHarness(
                tmp_path, agents=twilio_roster(tmp_path), login=("ana.lopez", "ben.carter")) as h:
            call = await twilio_call(h, rest, keys="1 1 5", agent="answer", talk_seconds=120)
            assert not call.errors, call.errors
            kinds = [ln.kind for ln in call.transcript]
            assert "dial" in kinds and kinds[-1] == "hangup" or call.state == "completed"
            dial = next(ln for ln in call.transcript if ln.kind == "dial")
            assert "ana.lopez" in dial.text
            said = " ".join(ln.text for ln in call.transcript if ln.kind == "say")
            assert "how satisfied" in said and "Goodbye" in said  # the survey after the agent, then goodbye
            rec = (await h.routing.store.call_records(call.sid))[0]
            assert (rec.channel, rec.outcome, rec.agent_id, rec.queue) == ("twilio", "agent", "ana.lopez", "scheduling")
            assert h.routing.router.agents["ana.lopez"].status is Status.WRAP_UP
            assert not h.adapter.calls  # the status callback ended it

    run(go())


def test_a_waiting_caller_is_redirected_to_the_agent_who_becomes_free(tmp_path: Path):
    async def go():
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, TwilioHarness(
                tmp_path, agents=twilio_roster(tmp_path), login=("gus.records",)) as h:
            h.adapter.rest = TwilioRest(ACCOUNT, TOKEN, h.base, api_base=rest.base_url)
            async with SimTwilio(h.base, ACCOUNT, TOKEN, rest) as sim:
                call = await sim.place_call(keys="1 1 5", agent=["no-answer", "answer"], enqueue_timeout=5)
                task = asyncio.get_running_loop().create_task(call.run())
                for _ in range(500):
                    if call.sid in h.routing.router.calls and call.state == "queued":
                        break
                    await asyncio.sleep(0.01)
                assert call.sid in h.routing.router.calls and call.state == "queued"
                # she logs in: the router offers her the call, and the engine moves the caller to her
                assert await h.adapter.route("login", "ana.lopez") is not None
                await asyncio.wait_for(task, 10)
            assert rest.redirects and rest.redirects[0].url.endswith(f"/twilio/connect?call={call.sid}&r=1")
            dials = [ln for ln in call.transcript if ln.kind == "dial"]
            assert len(dials) == 2  # no answer, then (same place in line) rung again and answered
            causes = [e.cause for e in await h.routing.store.agent_events("ana.lopez")]
            assert causes.count("no-answer") == 1 and causes[-2:] == ["answered", "call-ended"]
            rec = (await h.routing.store.call_records(call.sid))[0]
            assert rec.agent_id == "ana.lopez" and rec.answered_at is not None

    run(go())


def test_caller_hangs_up_while_waiting_is_an_abandon(tmp_path: Path):
    async def go():
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, TwilioHarness(
                tmp_path, agents=twilio_roster(tmp_path), login=("gus.records",)) as h:
            call = await twilio_call(h, rest, keys="1 1", enqueue_timeout=0.3)  # nobody comes: the caller gives up
            assert call.sid not in h.routing.router.calls
            ev = await h.routing.store.call_events(call.sid)
            assert [e.why for e in ev if e.kind == "left"] == ["abandoned"]
            assert (await h.routing.store.call_records(call.sid))[0].outcome == "abandoned"

    run(go())


def test_the_demo_command_plays_a_whole_call_to_an_agent(tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from ivr.cli import app

    monkeypatch.chdir(tmp_path)  # run from anywhere: the clone's sample files are found
    res = CliRunner().invoke(app, ["demo", "twilio", "--agent", "no-answer", "--agent", "answer"])
    assert res.exit_code == 0, res.output
    dials = [ln for ln in res.output.splitlines() if ln.split()[1:2] == ["dial"]]
    assert len(dials) == 2 and "client:ana.lopez" in dials[1] and "result=no-answer" in dials[0]
    assert "call record: outcome agent, queue scheduling, agent ana.lopez" in res.output


def test_voicemail_for_a_refill_is_recorded_through_record_and_its_action(tmp_path: Path):
    async def go():
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, TwilioHarness(tmp_path, agents=twilio_roster(tmp_path)) as h:
            call = await twilio_call(h, rest, keys="2 04121980#", recording_seconds=14)
            assert not call.errors, call.errors
            rec_line = next(ln for ln in call.transcript if ln.kind == "record")
            assert "maxLength" in rec_line.attrs or rec_line.text
            rec = (await h.routing.store.call_records(call.sid))[0]
            assert rec.outcome == "record" and rec.node != "refill_record"  # it moved on after the recording
            # the date of birth typed on the keypad is in no response the engine sent back
            assert all("04121980" not in r.text for r in call.requests)

    run(go())


def test_a_text_message_goes_through_the_twilio_rest_api(tmp_path: Path):
    from ivr.hooks import load

    hooks = load(str(ROOT / "calltrees" / "hooks.py"))

    async def go():
        async with FakeTwilioRest(ACCOUNT, TOKEN) as rest, TwilioHarness(
                tmp_path, agents=twilio_roster(tmp_path), hooks=hooks) as h:
            call = await twilio_call(h, rest, keys="1 2 04121980# 2")
            assert not call.errors, call.errors
            msgs = await rest.wait_for_messages(1)
            assert msgs[0].to == "+15555550123" and "riverside.example/reschedule" in msgs[0].body
            assert (await h.routing.store.call_records(call.sid))[0].outcome == "hangup"

    run(go())


def test_signatures_behind_a_proxy_use_the_forwarded_url_when_trusted(tmp_path: Path):
    async def go():
        async with TwilioHarness(tmp_path, trust_forwarded=True) as h:
            form = call_form(SID)
            fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ivr.clinic.example"}
            ok = await h.post("/twilio/voice", form, headers=fwd, signed_url="https://ivr.clinic.example/twilio/voice")
            assert ok[0] == 200
            bad = await h.post("/twilio/voice", call_form("CA" + "3" * 32), headers=fwd)  # signed for the local URL
            assert bad[0] == 403

    run(go())


def test_a_bug_in_a_handler_sends_the_caller_to_a_person_not_an_application_error(tmp_path: Path, monkeypatch):
    async def go():
        async with TwilioHarness(tmp_path) as h:
            _, body = await h.post("/twilio/voice", call_form(SID))
            action = ET.fromstring(body).find("Gather").get("action")

            async def broken(*a, **kw):
                raise RuntimeError("boom")

            monkeypatch.setattr(h.adapter, "gather", broken)
            status, body = await h.post(action, call_form(SID, Digits="1"))
            assert status == 200 and ET.fromstring(body).find("Dial").text == "+15550100200"

    run(go())
