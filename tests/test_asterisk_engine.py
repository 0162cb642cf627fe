"""End to end: the live engine, the sample clinic tree and the real router against the ARI stand-in.

Each test is a real conversation on the wire: the stand-in checks every request
against Asterisk's API description (a request Asterisk would refuse fails the
test at teardown), emits events in the order a real Asterisk 22 did, and the
routing store is a real SQLite file. Time is a FakeClock: ring timeouts,
wrap-up and input timeouts pass in microseconds.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine_harness import EngineHarness, eventually
from standin import apidocs

from agents.state import Status
from routing.store import Store

pytestmark = pytest.mark.skipif(
    apidocs.shared_dir() is None or not (apidocs.shared_dir() / "ari-api-docs").is_dir(),
    reason="shared/asterisk/ari-api-docs not found beside the clone",
)

ALL = ("ana.lopez", "ben.carter", "chen.wu", "dolores.ruiz", "erin.nurse", "fatima.nurse", "gus.records")


def run(coro):
    return asyncio.run(coro)


async def to_scheduling_queue(h: EngineHarness) -> str:
    """A caller dials in, hears the greeting and menu, presses 1 (appointments) then 1 (new appointment)."""
    cid = await h.call()
    assert ("POST", f"/ari/channels/{cid}/answer", {}, None) in h.server.requests
    await h.finish_prompts(cid)  # chime, greeting, emergency notice, main menu
    await h.press(cid, "1")
    await h.finish_prompts(cid)
    await h.press(cid, "1")
    return cid


def agent_state(h: EngineHarness, agent: str) -> Status:
    return h.routing.router.agents[agent].status


def test_call_walks_the_tree_waits_and_talks_to_an_agent(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await to_scheduling_queue(h)
            plays = h.requests("POST", f"/channels/{cid}/play")
            assert len(plays) >= 5
            # prompts are played from per-language audio files named after their text
            assert all(m.startswith(("sound:ivr/", "sound:silence/")) for r in plays for m in r[2]["media"].split(","))
            assert all(r[2].get("lang") == "en" for r in plays)
            # waiting: a holding bridge, music, and the agent's phone rings with the call's context
            holds = [b for b in h.server.bridges.values() if b.bridge_type == "holding"]
            assert len(holds) == 1 and holds[0].channels == [cid]
            assert h.requests("POST", f"/channels/{cid}/moh")  # bridge MOH is refused by this build: channel MOH
            legs = h.agent_legs()
            assert len(legs) == 1 and legs[0].dialstring == "1001"  # ana.lopez, the best scheduler, longest idle
            originate = h.requests("POST", "/ari/channels")[-1]
            assert originate[2]["app"] == "ivr-engine" and originate[2]["appArgs"] == f"agent,{cid}"
            assert originate[2]["timeout"] == "19"  # a second under the queue's ring timeout: Asterisk ends the ring first
            assert originate[3]["variables"]["IVR_QUEUE"] == "scheduling"
            assert agent_state(h, "ana.lopez") is Status.RESERVED

            await h.server.answer_originated(legs[0].id)
            await h.settle()
            talk = [b for b in h.server.bridges.values() if b.bridge_type == "mixing"]
            assert len(talk) == 1 and sorted(talk[0].channels) == sorted([cid, legs[0].id])
            assert not [b for b in h.server.bridges.values() if b.bridge_type == "holding"]
            assert agent_state(h, "ana.lopez") is Status.ON_CALL

            await h.advance(120)  # they talk
            await h.server.hangup(legs[0].id)  # the agent hangs up first
            await h.settle()
            assert agent_state(h, "ana.lopez") is Status.WRAP_UP
            assert not h.server.bridges  # the talk bridge is gone
            await h.finish_prompts(cid)  # the satisfaction survey
            await h.press(cid, "5")
            await h.finish_prompts(cid)  # goodbye, then the engine hangs up
            await eventually(lambda: cid not in h.server.channels, "the engine to hang up")
            await h.settle()
            assert not h.engine.sessions
            rec = (await h.routing.store.call_records(cid))[0]
            assert (rec.outcome, rec.queue, rec.agent_id, rec.ended_by) == ("agent", "scheduling", "ana.lopez", "engine")
            assert rec.answered_at is not None and rec.agent_ended_at is not None
            assert (rec.agent_ended_at - rec.answered_at).total_seconds() == pytest.approx(120, abs=1)
            await h.advance(31)  # the scheduling queue's 30 s wrap-up
            assert agent_state(h, "ana.lopez") is Status.READY
            # the store agrees with memory: reopen it and look
            events = await h.routing.store.agent_events("ana.lopez")
            assert [e.to_status for e in events][-4:] == ["reserved", "on_call", "wrap_up", "ready"]

    run(go())


def test_barge_in_stops_the_prompt_and_silence_times_out(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await h.call()
            first = h.current_playback(cid)
            await h.press(cid, "0")  # the chime allows barge-in: 0 is the person key
            await eventually(lambda: h.requests("DELETE", f"/playbacks/{first}"), "the barge-in DELETE")
            await h.settle()
            # the emergency notice still plays in full (no barge-in) before the person key is acted on
            await h.finish_prompts(cid)
            assert h.agent_legs(), "the person key must reach an agent"
        async with EngineHarness(tmp_path / "b", login=ALL) as h:
            cid = await h.call()
            await h.finish_prompts(cid)
            before = len(h.requests("POST", f"/channels/{cid}/play"))
            await h.advance(10)  # the main menu's timeout runs out with no key: the menu repeats
            assert len(h.requests("POST", f"/channels/{cid}/play")) > before

    (tmp_path / "b").mkdir()
    run(go())


def test_ring_no_answer_moves_to_the_next_agent_and_keeps_the_place(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await to_scheduling_queue(h)
            first = h.agent_legs()[0]
            await h.server.ring(first.id)
            await h.server.no_answer(first.id)  # Asterisk's originate timeout: ChannelDestroyed cause 19
            await h.settle()
            legs = h.agent_legs()
            # in the first 30 s only ana.lopez is expert enough (scheduling >= 7): she is rung again
            assert len(legs) == 1 and legs[0].id != first.id and legs[0].dialstring == "1001"
            assert h.routing.router.agents["ana.lopez"].missed == 1
            # the router's own ring timeout also ends an offer nobody answers: the engine hangs the leg up
            second = legs[0]
            await h.advance(21)
            await eventually(lambda: second.id not in h.server.channels, "the unanswered leg to be cancelled")
            assert h.routing.router.agents["ana.lopez"].missed == 2
            await h.advance(20)  # a third miss: ana is paused, and the relaxed step (30 s on) reaches others
            ana = h.routing.router.agents["ana.lopez"]
            assert (ana.status, ana.reason) == (Status.NOT_READY, "no-answer")
            legs = h.agent_legs()
            assert len(legs) == 1 and legs[0].dialstring != "1001"
            assert cid in h.routing.router.calls  # still waiting, same place
            await h.server.hangup(cid)
            await h.settle()
            assert not h.agent_legs()
            assert all(agent_state(h, a) is not Status.RESERVED for a in ALL)

    run(go())


def test_caller_hangs_up_while_waiting_is_an_abandon(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=("gus.records",)) as h:  # nobody who can schedule
            cid = await to_scheduling_queue(h)
            assert not h.agent_legs() and cid in h.routing.router.calls
            await h.advance(50)  # a position announcement plays on the caller's channel
            ann = [r for r in h.requests("POST", f"/channels/{cid}/play") if "queue-" in r[2]["media"]]
            assert ann and "sound:queue-youarenext" in ann[0][2]["media"]
            await h.server.hangup(cid)
            await h.settle()
            assert cid not in h.routing.router.calls
            assert not h.server.bridges  # the holding bridge was destroyed
            ev = await h.routing.store.call_events(cid)
            assert [e.why for e in ev if e.kind == "left"] == ["abandoned"]
            rec = (await h.routing.store.call_records(cid))[0]
            assert rec.outcome == "abandoned" and rec.answered_at is None

    run(go())


def test_caller_hangs_up_while_the_agent_rings_frees_the_agent(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await to_scheduling_queue(h)
            leg = h.agent_legs()[0]
            await h.server.ring(leg.id)
            await h.server.hangup(cid)
            await h.settle()
            assert leg.id not in h.server.channels  # the engine cancelled the ringing leg
            assert agent_state(h, "ana.lopez") is Status.READY
            assert h.routing.router.agents["ana.lopez"].missed == 0  # not the agent's fault

    run(go())


async def talking(h: EngineHarness) -> tuple[str, str]:
    """A caller connected to ana.lopez: (caller channel, agent channel)."""
    cid = await to_scheduling_queue(h)
    leg = h.agent_legs()[0]
    await h.server.answer_originated(leg.id)
    await h.settle()
    assert agent_state(h, "ana.lopez") is Status.ON_CALL
    return cid, leg.id


def test_websocket_dropped_mid_call_catches_up_on_what_the_gap_swallowed(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await h.call()
            await h.finish_prompts(cid)  # the main menu has played; keys are awaited
            await h.press(cid, "1")
            pb = h.current_playback(cid)  # the appointments menu is playing
            assert pb is not None
            h.reconnect_gate.clear()
            await h.server.drop_websocket()
            await h.server.finish_playback(pb)  # ends while nobody listens: the event is lost
            await eventually(lambda: not h.server.sockets, "the socket to be down")
            assert h.server.events[-1]["type"] == "PlaybackFinished"
            h.reconnect_gate.set()
            await h.server.wait_connected()
            await h.settle()
            assert h.requests("GET", "/ari/channels") and h.requests("GET", f"/ari/playbacks/{pb}")
            # the engine learned that the prompt ended, so the caller's key is now taken
            await h.press(cid, "1")
            assert h.agent_legs(), "the key after the gap must reach the queue and ring an agent"

    run(go())


def test_asterisk_restart_with_calls_in_progress_releases_everyone(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=("ana.lopez", "gus.records")) as h:
            talker, _leg = await talking(h)
            waiter = await to_scheduling_queue(h)  # ana is busy: the second caller waits
            assert waiter in h.routing.router.calls and not any(
                c.id != _leg for c in h.agent_legs())
            # this build refuses bridge MOH (500): learnt once, then every caller gets channel MOH directly
            assert len(h.requests("POST", "/moh")) == 3 and len([r for r in h.requests("POST", "/moh")
                                                                   if r[1].startswith("/ari/bridges/")]) == 1
            h.reconnect_gate.clear()
            await h.server.restart()  # every channel and bridge gone, no events
            h.reconnect_gate.set()
            await h.server.wait_connected()
            await h.settle()
            assert not h.engine.sessions
            assert waiter not in h.routing.router.calls
            assert agent_state(h, "ana.lopez") is Status.WRAP_UP  # her call ended with Asterisk
            recs = {r.call_id: r for r in await h.routing.store.call_records()}
            assert recs[talker].ended_by == recs[waiter].ended_by == "asterisk"
            assert recs[talker].agent_id == "ana.lopez" and recs[waiter].outcome == "abandoned"
            # the engine takes new calls on the restarted Asterisk
            await h.advance(31)
            again = await to_scheduling_queue(h)
            assert h.agent_legs() and again in h.engine.sessions

    run(go())


def test_engine_restart_adopts_conversations_and_hands_other_callers_to_a_person(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=("ana.lopez", "gus.records")) as h:
            talker, leg = await talking(h)
            waiter = await to_scheduling_queue(h)
            in_menu = await h.call()
            await h.stop_engine(graceful=False)  # the process dies: no cleanup at all
            await h.start_engine(login=False)
            await h.settle()
            await h.finish_prompts(in_menu)  # Asterisk moves a channel on only once its prompt has ended
            await h.settle()
            fallbacks = [r for r in h.requests("POST") if r[1].endswith("/continue")]
            assert sorted(r[1].split("/")[3] for r in fallbacks) == sorted([waiter, in_menu])
            assert all(r[2] == {"context": "ivr-fallback", "extension": "s", "priority": "1"} for r in fallbacks)
            assert waiter not in h.routing.router.calls
            # the conversation goes on untouched, and its end still puts ana into wrap-up
            assert talker in h.server.channels and leg in h.server.channels
            assert agent_state(h, "ana.lopez") is Status.ON_CALL
            await h.server.hangup(talker)
            await h.settle()
            assert leg not in h.server.channels and not h.server.bridges
            assert agent_state(h, "ana.lopez") is Status.WRAP_UP

    run(go())


def test_sigterm_hands_waiting_callers_to_the_dialplan_and_leaves_conversations(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=("ana.lopez",)) as h:
            talker, leg = await talking(h)
            waiter = await to_scheduling_queue(h)
            await h.stop_engine(graceful=True)
            fallbacks = [r[1].split("/")[3] for r in h.requests("POST") if r[1].endswith("/continue")]
            assert fallbacks == [waiter]
            assert talker in h.server.channels and leg in h.server.channels
            assert h.server.channels[talker].bridge is not None
            async with await Store.open(h.url) as store:  # what survives the process
                recs = {r.call_id: r for r in await store.call_records()}
                snap = await store.snapshot()
            assert recs[waiter].outcome == "fallback" and not snap.waiting

    run(go())


def test_softphone_unregistering_while_it_rings_moves_the_call_and_pauses_the_agent(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await to_scheduling_queue(h)
            leg = h.agent_legs()[0]
            await h.server.ring(leg.id)
            h.server.endpoints["PJSIP/1001"] = "offline"
            await h.engine.presence("PJSIP/1001", online=False)  # AMI: ContactStatus Removed
            await h.settle()
            assert leg.id not in h.server.channels
            ana = h.routing.router.agents["ana.lopez"]
            assert (ana.status, ana.reason) == (Status.NOT_READY, "offline")
            await h.advance(31)  # past the expert-only step: someone else is rung
            assert [c.dialstring for c in h.agent_legs()] not in ([], ["1001"])
            h.server.endpoints["PJSIP/1001"] = "online"
            await h.engine.presence("PJSIP/1001", online=True)
            await h.settle()
            assert agent_state(h, "ana.lopez") in (Status.READY, Status.RESERVED)  # back to where she was
            await h.server.hangup(cid)
            await h.settle()

    run(go())


def test_prescription_refill_records_a_message(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await h.call()
            await h.finish_prompts(cid)
            await h.press(cid, "2")
            await h.finish_prompts(cid)
            await h.press(cid, "04121980#")
            await h.finish_prompts(cid)
            rec = h.requests("POST", f"/channels/{cid}/record")
            assert len(rec) == 1 and rec[0][2]["format"] == "wav" and rec[0][2]["terminateOn"] == "#"
            await h.advance(20)
            await h.server.finish_recording(rec[0][2]["name"])
            await h.settle()
            await h.finish_prompts(cid)
            await eventually(lambda: cid not in h.server.channels, "the engine to hang up")
            await h.settle()
            r = (await h.routing.store.call_records(cid))[0]
            assert r.outcome == "record" and r.queue is None

    run(go())


def test_ami_unregistration_while_ringing_reaches_the_engine_and_registration_restores(tmp_path: Path):
    """The whole presence path: AMI wire frames -> client -> tracker -> engine -> router -> ARI hang-up."""
    from standin.ami import AmiStandIn

    from ivr.ami.client import AmiClient, AmiConfig
    from ivr.ami.feed import PresenceFeed

    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h, AmiStandIn(
                endpoints=tuple(str(n) for n in range(1001, 1008))) as ami_server:
            for n in range(1001, 1008):
                await ami_server.register(str(n))
            feed = PresenceFeed(h.engine)
            ami = AmiClient(AmiConfig(port=ami_server.port, username="USER", password="SECRET"),
                            on_connected=feed.resync)
            feed.attach(ami)
            task = asyncio.get_running_loop().create_task(ami.run())
            try:
                await eventually(lambda: ami.connected and feed.tracker.online("PJSIP/1001"), "AMI login + snapshot")
                cid = await to_scheduling_queue(h)
                leg = h.agent_legs()[0]
                assert leg.dialstring == "1001"
                await h.server.ring(leg.id)
                h.server.endpoints["PJSIP/1001"] = "offline"
                await ami_server.unregister("1001")
                await eventually(lambda: leg.id not in h.server.channels, "the ringing leg to be hung up")
                await h.settle()
                ana = h.routing.router.agents["ana.lopez"]
                assert (ana.status, ana.reason, ana.missed) == (Status.NOT_READY, "offline", 0)
                h.server.endpoints["PJSIP/1001"] = "online"
                await ami_server.register("1001")
                await eventually(lambda: agent_state(h, "ana.lopez") is not Status.NOT_READY, "ana back")
                await h.settle()
                # she is ready again, and as the best scheduler she is offered the waiting call at once
                assert agent_state(h, "ana.lopez") is Status.RESERVED
                assert [c.dialstring for c in h.agent_legs()] == ["1001"]
                await h.server.hangup(cid)
                await h.settle()
            finally:
                await ami.close()
                await asyncio.gather(task, return_exceptions=True)

    run(go())


# ---------------------------------------------------------------------- races found in review


def hold_tick(h: EngineHarness) -> None:
    """The router's timer is due but its tick has not run yet (another step holds the lock): the race window."""
    h.engine._cancel_tick()


def test_an_answer_racing_the_routers_ring_timeout_never_credits_the_wrong_agent(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid = await to_scheduling_queue(h)
            await h.advance(21)  # ana rings out once and, as the only expert in the first 30 s, is rung again
            leg2 = h.agent_legs()[0]
            hold_tick(h)
            await h.advance(19.5)  # that offer's ring timer is due; the tick has not run
            await h.server.answer_originated(leg2.id)  # ana picks up at that very moment
            await h.settle()
            states = {a: agent_state(h, a) for a in ALL}
            assert list(states.values()).count(Status.ON_CALL) <= 1
            bridged = [b for b in h.server.bridges.values() if b.bridge_type == "mixing"]
            on_call = [a for a, st in states.items() if st is Status.ON_CALL]
            if bridged:  # whoever is bridged with the caller is the one the router has on the call
                assert on_call == ["ana.lopez"] and leg2.id in bridged[0].channels
            else:  # the router had moved on: ana's late answer is hung up, the caller keeps waiting
                assert leg2.id not in h.server.channels and cid in h.routing.router.calls and not on_call
            await h.server.hangup(cid)
            await h.settle()
            await h.advance(120)
            assert all(agent_state(h, a) is not Status.ON_CALL for a in ALL)

    run(go())


def test_one_ring_out_reported_twice_counts_one_miss(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            await to_scheduling_queue(h)
            leg = h.agent_legs()[0]
            await h.server.ring(leg.id)
            hold_tick(h)
            await h.advance(20.5)  # the router's ring timer is due...
            await h.server.no_answer(leg.id)  # ...and Asterisk reports the same ring-out (cause 19)
            await h.settle()
            assert h.routing.router.agents["ana.lopez"].missed == 1

    run(go())


def test_engine_restart_hangs_up_an_agent_leg_ringing_for_nobody(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            await to_scheduling_queue(h)
            leg = h.agent_legs()[0]
            await h.server.ring(leg.id)
            await h.stop_engine(graceful=False)  # the process dies while ana's phone rings
            await h.start_engine(login=False)
            await h.settle()
            assert leg.id not in h.server.channels
            assert agent_state(h, "ana.lopez") is Status.READY  # settled by the store, not left reserved

    run(go())


def test_a_refused_routing_step_still_carries_out_what_time_had_decided(tmp_path: Path):
    """Another caller's max wait falls due in the same step as a refused event: that caller is not stranded."""
    from engine_harness import ROOT

    q = tmp_path / "queues.yaml"  # the sample, with a queue-level max_wait on refills (the tree node has none)
    q.write_text((ROOT / "queues.yaml").read_text().replace(
        "    skills: {refills: 4}\n", "    skills: {refills: 4}\n    max_wait: 60\n", 1))

    async def go():
        async with EngineHarness(tmp_path, queues=q, login=("ana.lopez", "erin.nurse")) as h:
            await h.routing.pause("erin.nurse", "lunch")  # refills: someone logged in, nobody ready
            y = await h.call()
            await h.finish_prompts(y)
            await h.press(y, "2")
            await h.finish_prompts(y)
            for _ in range(6):  # no date of birth entered: the tree sends Y to the refills queue
                if y in h.routing.router.calls:
                    break
                await h.advance(8)
                await h.finish_prompts(y)
            assert y in h.routing.router.calls
            await to_scheduling_queue(h)  # X rings ana...
            await h.advance(21)
            await h.advance(20)  # ...and rings out twice
            leg = h.agent_legs()[0]
            hold_tick(h)
            await h.advance(19.5)  # X's third ring-out and Y's max wait are both due
            await h.server.no_answer(leg.id)
            await h.settle()
            h.engine._schedule_tick()
            await h.advance(60)
            hold = h.server.bridges.get(f"hold-{y}")
            assert not (hold and y in hold.channels), "Y must not be left on hold after the router gave up"
            assert y not in h.routing.router.calls
            st = h.engine.sessions[y].state if y in h.engine.sessions else None
            assert st is None or st.node != "refills_queue"  # the tree's timeout fallback took the call

    run(go())


def test_queue_and_agent_bridge_requests_follow_the_recorded_asterisk_flow(tmp_path: Path):
    """Replay check against transcript b (recorded on Asterisk 22): the engine's queue-to-agent requests are
    the recorded ones, in the recorded order (prompt playback and reads aside)."""
    import json
    import re

    def shape(method: str, path: str) -> str:
        if method == "POST" and re.fullmatch(r"/ari/bridges/(hold|talk)-[^/]+", path):
            return "POST /ari/bridges"  # the engine names its bridges (create with id); Asterisk's ids differ
        path = re.sub(r"/(hold|talk)-[^/]+", "/{id}", path)
        path = re.sub(r"/[0-9a-f-]{36}|/[\d.]+(-agent\d+)?(?=/|$)", "/{id}", path)
        return f"{method} {path}"

    recorded = []
    for line in (apidocs.shared_dir() / "transcripts" / "b_queue_holding_moh_agent_mixing.jsonl").open():
        d = json.loads(line)
        if d["dir"] == "request" and d["method"] != "GET":
            recorded.append(shape(d["method"], d["path"]))

    async def go():
        async with EngineHarness(tmp_path, login=ALL) as h:
            cid, leg = await talking(h)
            await h.server.hangup(leg)
            await h.settle()
            await h.server.hangup(cid)
            await h.settle()
            ours = [shape(m, p) for m, p, _q, _b in h.server.requests
                    if m != "GET" and "/play" not in p]
            ours = ours[ours.index("POST /ari/bridges"):]  # from the queue on (the IVR part came before)
            assert ours == recorded[1:], "\n".join(ours)

    run(go())


def test_a_booked_callback_rings_an_agent_then_dials_the_patient_from_their_line(tmp_path: Path):
    async def go():
        async with EngineHarness(tmp_path, login=("ana.lopez", "gus.records")) as h:
            cid = await to_scheduling_queue(h)
            await h.press(cid, "1")  # "press 1 and we will call you back": the caller keeps their place
            await h.finish_prompts(cid)
            await eventually(lambda: cid not in h.server.channels, "goodbye, then the engine hangs up")
            await h.settle()
            cb = f"{cid}-callback"
            legs = h.agent_legs()
            assert len(legs) == 1 and legs[0].id.startswith(f"{cb}-agent")
            await h.server.ring(legs[0].id)
            await h.server.no_answer(legs[0].id)  # Asterisk's ring timeout (a second before the router's)
            await h.settle()
            await h.advance(1)  # the router's own timer for that offer finds it already ended: no second miss
            assert h.routing.router.agents["ana.lopez"].missed == 1
            legs = h.agent_legs()
            assert len(legs) == 1  # rung again: she is the only expert in the first 30 s
            await h.server.answer_originated(legs[0].id)
            await h.settle()
            cont = [r for r in h.requests("POST") if r[1] == f"/ari/channels/{legs[0].id}/continue"]
            assert cont and cont[0][2]["context"] == "ivr-transfer" and cont[0][2]["extension"] == "+15555550123"
            assert cb not in h.routing.router.calls
            assert agent_state(h, "ana.lopez") is Status.WRAP_UP  # the dialplan has the conversation now

    run(go())
