"""The simulator: key scripts, barge-in, timeouts, hang-ups and routing outcomes on the sample clinic tree."""

from __future__ import annotations

from datetime import datetime

import pytest

from ivr.simulate import CallSimulator, HookTimeout, SimOptions, describe_outcome
from ivr.tree import load_tree
from conftest import NY, ROOT

MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=NY)


@pytest.fixture(scope="module")
def sim() -> CallSimulator:
    return CallSimulator(load_tree(ROOT / "calltrees" / "clinic-main.yaml"))


def run(sim, keys, at=MONDAY, **kw):
    return sim.run(SimOptions(at=at, keys=keys.split(), **kw))


def visited(res):
    return [e.node for e in res.state.trace if e.kind == "enter"]


def test_refill_journey_transcript_and_outcome(sim):
    res = run(sim, "2 04121980#")
    assert res.outcome.kind == "record" and res.outcome.detail["outcome"] == "refill_recorded"
    assert visited(res)[:6] == ["welcome", "greeting", "emergency", "check_hours", "main", "refill_dob"]
    heard = [ln.text for ln in res.lines if ln.kind == "hear"]
    assert heard[0] == "[audio chime.wav]" and "emergency" in heard[2]
    presses = [ln.text for ln in res.lines if ln.kind == "press"]
    assert presses[0] == "2" and "04121980" not in " ".join(presses)  # the date of birth is masked
    # timing: the menu key comes after the emergency notice and the menu prompt
    key_line = next(ln for ln in res.lines if ln.kind == "press")
    assert key_line.t > 13


def test_barge_in_token_presses_during_the_greeting(sim):
    res = run(sim, "!0")
    assert res.outcome.kind == "queue" and res.outcome.detail["queue"] == "front_desk"
    press = next(ln for ln in res.lines if ln.kind == "press")
    assert press.node == "welcome" and press.t == pytest.approx(0.3, abs=0.05)  # half-way into the 0.6 s chime
    # the emergency notice does not allow barge-in: it still plays in full before the person key is taken
    assert "emergency" in visited(res)


def test_silence_times_out_to_a_person(sim):
    res = run(sim, ". . .")
    assert [ln.kind for ln in res.lines].count("timeout") == 3
    assert res.outcome.detail["queue"] == "front_desk"


def test_hangup_token_abandons_in_ivr(sim):
    res = run(sim, "1 h")
    assert res.outcome.kind == "hangup" and res.outcome.node == "appointments"


def test_spanish_call_and_queue_language(sim):
    res = run(sim, "9 4 2")
    assert res.state.language == "es"
    assert res.outcome.detail["language"] == "es" and res.outcome.detail["skills"] == {"nurse_triage": 3}
    assert any(ln.language == "es" and "enfermera" in ln.text for ln in res.lines)


def test_after_hours_reaches_nurse_line(sim):
    res = run(sim, "1", at=datetime(2026, 11, 23, 19, 0, tzinfo=NY))
    assert res.outcome.kind == "transfer" and "nurse" in res.outcome.detail["to"]


def test_failed_transfer_falls_over_to_answering_service(sim):
    res = run(sim, "1", at=datetime(2026, 11, 23, 19, 0, tzinfo=NY), failing_transfers={"nurse_line"})
    assert res.outcome.kind == "transfer" and res.outcome.detail["to"] == "Answering service"


def test_queue_answered_then_survey(sim):
    res = run(sim, "1 1 . 4", queue_outcomes={"scheduling": "answered"}, queue_wait=30, talk_seconds=100)
    assert res.state.vars["survey_rating"] == 4
    assert res.outcome.kind == "agent" and res.outcome.detail["waited"] == pytest.approx(30)
    assert any("agent agent-sim answers" in ln.text for ln in res.lines)


def test_queue_no_agents_books_callback(sim):
    res = run(sim, "1 1", queue_outcomes={"scheduling": "no_agents"})
    assert res.outcome.kind == "callback"
    assert any(ln.text.startswith("callback requested from queue scheduling") for ln in res.lines)


def test_hooks_answer_timeout_and_failure(sim):
    found = run(sim, "1 2 04121980# 2", hooks={"find_appointment": {"date": "Dec 3", "id": "A1"}})
    assert found.outcome.detail["outcome"] == "reschedule_link_sent"
    assert any(ln.text.startswith("text message") and "reschedule" in ln.text for ln in found.lines)

    def slow(args):
        raise HookTimeout()

    def broken(args):
        raise RuntimeError("EHR down")

    for hook in (slow, broken, None):
        res = run(sim, "1 2 04121980#", hooks={"find_appointment": hook} if hook else {})
        assert "appointment_not_found" in visited(res)
        assert res.outcome.detail["queue"] == "scheduling"
    timed_out = run(sim, "1 2 04121980#", hooks={"find_appointment": slow})
    found_at = next(e.at for e in timed_out.state.trace if e.node == "appointment_not_found")
    asked_at = next(e.at for e in timed_out.state.trace if e.kind == "hook")
    assert (found_at - asked_at).total_seconds() == pytest.approx(3.0)  # the node's timeout, in virtual time


def test_sensitive_value_masked_in_transcript(sim):
    res = run(sim, "1 2 04121980#", hooks={"find_appointment": {"date": "Dec 3", "id": "A1"}})
    text = "\n".join(ln.text for ln in res.lines)
    assert "Dec 3" not in text and "[redacted]" in text


def test_describe_outcome_lines(sim):
    assert describe_outcome(run(sim, "3 1").state).startswith("queued in billing (billing>=3; language en; priority 1)")


def test_unknown_queue_outcome_is_a_clear_error(sim):
    with pytest.raises(ValueError, match="unknown queue outcome"):
        run(sim, "3 1", queue_outcomes={"billing": "maybe"})


def test_type_ahead_into_a_date_of_birth_is_masked_in_the_transcript(sim):
    res = run(sim, "1 !204121980#", hooks={"find_appointment": {"date": "D", "id": "1"}})
    presses = [ln.text for ln in res.lines if ln.kind == "press"]
    assert presses[1].startswith("••••") and "(sensitive)" in presses[1]
    assert "0412" not in "\n".join(ln.text for ln in res.lines)
    assert "appointment_found" in visited(res)  # the keys still worked


@pytest.mark.parametrize("value", [None, ["date"], "Dec 3"])
def test_hook_returning_something_else_than_a_dict_takes_the_fallback(sim, value):
    res = run(sim, "1 2 04121980#", hooks={"find_appointment": lambda args: value})
    assert "appointment_not_found" in visited(res)


def test_key_scripts_refuse_what_a_keypad_cannot_send():
    from ivr.simulate import parse_keys

    assert parse_keys("1 !0 . h 04121980#") == ["1", "!0", ".", "h", "04121980#"]
    for bad in ("O4", "１", "1-2", "!"):
        with pytest.raises(ValueError, match="not valid"):
            parse_keys(bad)
