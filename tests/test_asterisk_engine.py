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
            assert originate[2]["timeout"] == "20"  # the queue's ring timeout
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
