"""The interpreter, node type by node type, driven with explicit events and fake time."""

from __future__ import annotations

from datetime import datetime

import pytest

from ivr import commands as C
from ivr import events as E
from ivr.interpreter import Interpreter
from conftest import NY, build_tree

BASE = """
name: Test line
medical: false
languages: [en, es]
timezone: America/New_York
start: {start}
human: {{target: desk}}
schedules:
  office:
    weekly: {{mon-fri: "08:00-17:00"}}
nodes:
{nodes}
  desk:
    type: queue
    queue: front_desk
    fallback: {{default: line}}
  line:
    type: transfer
    to: "+15550100200"
    label: Nurse line
    on_failure: bye
  bye:
    type: hangup
    outcome: done
    prompt: {{en: "Goodbye.", es: "Adiós."}}
"""


def tree_of(nodes: str, start: str = "main", **kw):
    return build_tree(BASE.format(start=start, nodes=nodes), **kw)


MENU = """
  main:
    type: menu
    prompt: {en: "Press 1 for billing.", es: "Oprima 1 para facturación."}
    options:
      "1": billing
      "9": {next: main, set: {language: es}}
    timeout: 5
    retries: 1
    no_input: {prompt: {en: "Sorry.", es: "Perdón."}, next: line}
    invalid: {prompt: {en: "Not an option.", es: "No válido."}, next: bye}
  billing:
    type: queue
    queue: billing
    requirements: {skills: {billing: 4}}
    priority: 2
    fallback: {default: line}
"""


def begin(tree, clock, **kw):
    interp = Interpreter(tree)
    state, cmds = interp.start(E.CallStarted(at=clock(0), call_id="c1", caller=kw.pop("caller", "+15551234567"), **kw))
    return interp, state, cmds


def prompts(cmds):
    return [c for c in cmds if isinstance(c, C.PlayPrompt)]


def texts(cmd):
    return [i.text for i in cmd.items if isinstance(i, C.SayItem)]


def kinds(state):
    return [e.kind for e in state.trace]


# ---------------------------------------------------------------- say / play / barge-in


def test_say_then_menu_in_default_language(clock):
    tree = tree_of("""
  hello:
    type: say
    text: {en: "Welcome.", es: "Bienvenido."}
    next: main
""" + MENU, start="hello")
    interp, s, cmds = begin(tree, clock)
    assert isinstance(cmds[0], C.Answer)
    (p,) = prompts(cmds)
    assert texts(p) == ["Welcome."] and p.barge_in and p.collect is None
    s, cmds = interp.step(s, E.PromptFinished(clock(2), p.prompt_id))
    (p2,) = prompts(cmds)
    assert s.node == "main" and texts(p2) == ["Press 1 for billing."]
    assert p2.collect == C.Collect(1, 5.0)


def test_barge_in_key_during_say_is_taken_by_next_menu(clock):
    tree = tree_of("""
  hello:
    type: say
    text: {en: "Welcome to the clinic.", es: "Bienvenido."}
    next: main
""" + MENU, start="hello")
    interp, s, cmds = begin(tree, clock)
    pid = prompts(cmds)[0].prompt_id
    s, cmds = interp.step(s, E.Digit(clock(0.5), "1"))
    assert C.StopPrompt(pid) in cmds
    assert s.node == "billing" and s.phase == "queue"  # the menu took the key without playing its prompt
    assert not prompts(cmds)
    assert any(isinstance(c, C.Enqueue) for c in cmds)


def test_no_barge_in_prompt_ignores_keys(clock):
    tree = tree_of("""
  notice:
    type: say
    barge_in: false
    text: {en: "If this is an emergency, hang up and dial 911.", es: "Si es una emergencia, cuelgue y marque 911."}
    next: main
""" + MENU, start="notice")
    interp, s, cmds = begin(tree, clock)
    pid = prompts(cmds)[0].prompt_id
    s2, cmds = interp.step(s, E.Digit(clock(1), "1"))
    assert cmds == [] and s2.node == "notice" and s2.phase == "prompt"
    assert s2.trace[-1].kind == "key-ignored"
    s3, cmds = interp.step(s2, E.PromptFinished(clock(4), pid))
    assert s3.node == "main"


def test_play_node_uses_measured_wav_duration(clock):
    tree = tree_of("""
  chime:
    type: play
    audio: chime.wav
    next: main
""" + MENU, start="chime")
    _, s, cmds = begin(tree, clock)
    (item,) = prompts(cmds)[0].items
    assert isinstance(item, C.PlayItem) and item.uri == "chime.wav"
    assert item.duration == pytest.approx(0.6, abs=0.01)


# ---------------------------------------------------------------- menus


def test_menu_option_and_language_switch(clock):
    tree = tree_of(MENU)
    interp, s, cmds = begin(tree, clock)
    s, cmds = interp.step(s, E.Digit(clock(2), "9"))
    assert s.language == "es" and s.vars["language"] == "es"
    assert texts(prompts(cmds)[0]) == ["Oprima 1 para facturación."]
    s, cmds = interp.step(s, E.Digit(clock(4), "1"))
    (enq,) = [c for c in cmds if isinstance(c, C.Enqueue)]
    assert enq.queue == "billing" and enq.skills == (("billing", 4),) and enq.language == "es" and enq.priority == 2


def test_menu_no_input_retries_then_handler_next(clock):
    tree = tree_of(MENU)
    interp, s, cmds = begin(tree, clock)
    pid = prompts(cmds)[0].prompt_id
    s, _ = interp.step(s, E.PromptFinished(clock(3), pid))
    assert s.phase == "collect"
    s, cmds = interp.step(s, E.InputTimeout(clock(8), pid))
    (retry,) = prompts(cmds)
    assert texts(retry) == ["Sorry.", "Press 1 for billing."] and s.attempts == 1
    s, cmds = interp.step(s, E.InputTimeout(clock(20), retry.prompt_id))
    # retries: 1 -> the second timeout leaves by no_input.next; its prompt plays first
    (last,) = prompts(cmds)
    assert texts(last) == ["Sorry."] and s.phase == "leaving"
    s, cmds = interp.step(s, E.PromptFinished(clock(21), last.prompt_id))
    assert s.node == "line" and any(isinstance(c, C.Transfer) for c in cmds)


def test_stale_timeout_is_ignored(clock):
    tree = tree_of(MENU)
    interp, s, cmds = begin(tree, clock)
    pid = prompts(cmds)[0].prompt_id
    s2, cmds = interp.step(s, E.InputTimeout(clock(8), pid + 7))
    assert cmds == [] and s2.node == "main" and s2.attempts == 0


def test_invalid_key_then_retries_exhausted(clock):
    tree = tree_of(MENU)
    interp, s, cmds = begin(tree, clock)
    s, cmds = interp.step(s, E.Digit(clock(1), "7"))
    assert texts(prompts(cmds)[0]) == ["Not an option.", "Press 1 for billing."]
    s, cmds = interp.step(s, E.Digit(clock(5), "7"))
    assert s.phase == "leaving"
    s, cmds = interp.step(s, E.PromptFinished(clock(6), s.prompt_id))
    assert s.node == "bye"


def test_person_key_from_menu_and_disabled_menu(clock):
    tree = tree_of(MENU)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Digit(clock(1), "0"))
    assert s.node == "desk" and "human" in kinds(s)
    assert [c for c in cmds if isinstance(c, C.Enqueue)][0].queue == "front_desk"

    tree2 = tree_of(MENU.replace("    retries: 1\n", "    retries: 1\n    human: false\n"), allow_lints=True)
    interp2, s2, _ = begin(tree2, clock)
    s2, cmds2 = interp2.step(s2, E.Digit(clock(1), "0"))
    assert s2.node == "main" and s2.attempts == 1 and any(e.kind == "invalid" for e in s2.trace)


# ---------------------------------------------------------------- input


INPUT = """
  main:
    type: input
    prompt: {en: "Enter your date of birth.", es: "Marque su fecha de nacimiento."}
    variable: dob
    sensitive: true
    min_length: 8
    max_length: 8
    validate: {kind: date_of_birth}
    retries: 1
    no_input: {next: line}
    invalid: {prompt: {en: "Invalid.", es: "No válida."}, next: line}
    next: thanks
  thanks:
    type: say
    text: {en: "Thank you.", es: "Gracias."}
    next: bye
"""


def press(interp, s, clock, digits, t=1.0):
    cmds = []
    for d in digits:
        s, cmds = interp.step(s, E.Digit(clock(t), d))
        t += 0.3
    return s, cmds


def test_input_collects_validates_and_hides_digits(clock):
    tree = tree_of(INPUT)
    interp, s, _ = begin(tree, clock)
    s, cmds = press(interp, s, clock, "04121980")
    assert s.node == "thanks" and s.vars["dob"] == "04121980" and "dob" in s.sensitive
    # the terminator pressed right after a complete entry is swallowed, not taken as a key
    s2, cmds2 = interp.step(s, E.Digit(clock(5), "#"))
    assert s2.node == "thanks" and cmds2 == [] and s2.trace[-1].kind == "key-ignored"
    blob = repr(s2.trace)
    assert "04121980" not in blob and "1980" not in blob
    assert "+15551234567" not in blob and "***4567" in blob


def test_input_terminator_and_invalid_date(clock):
    tree = tree_of(INPUT.replace("min_length: 8", "min_length: 6"))
    interp, s, _ = begin(tree, clock)
    s, cmds = press(interp, s, clock, "123#")
    assert s.node == "main" and s.attempts == 1
    assert texts(prompts(cmds)[0])[0] == "Invalid."
    assert any(e.kind == "rejected" and "too short" in e.detail["reason"] for e in s.trace)
    s, cmds = press(interp, s, clock, "13451990", t=10)  # month 13
    assert s.phase == "leaving"
    assert any(e.kind == "rejected" and e.detail["reason"] == "not a calendar date" for e in s.trace)


def test_input_future_date_of_birth_rejected(clock):
    tree = tree_of(INPUT)
    interp, s, _ = begin(tree, clock)
    s, _ = press(interp, s, clock, "01012030")
    assert any(e.detail.get("reason") == "date of birth in the future" for e in s.trace)


def test_input_star_reaches_a_person_and_partial_timeout_accepts(clock):
    tree = tree_of(INPUT)
    interp, s, _ = begin(tree, clock)
    s2, _ = interp.step(s, E.Digit(clock(1), "*"))
    assert s2.node == "desk"
    tree2 = tree_of(INPUT.replace("min_length: 8", "min_length: 4").replace("validate: {kind: date_of_birth}", ""))
    interp2, s, _ = begin(tree2, clock)
    s, _ = press(interp2, s, clock, "1234")
    s, _ = interp2.step(s, E.InputTimeout(clock(9), s.prompt_id))
    assert s.node == "thanks" and s.vars["dob"] == "1234"


# ---------------------------------------------------------------- branch, set, schedules


BRANCH = """
  main:
    type: branch
    cases:
      - when: {all: [{open: office}, {language: es}]}
        next: open_es
      - when: {open: office}
        next: open_en
      - when: {caller: {starts_with: "+1555"}}
        next: closed_local
    default: closed_other
  open_es: {type: hangup, outcome: open_es}
  open_en: {type: hangup, outcome: open_en}
  closed_local: {type: hangup, outcome: closed_local}
  closed_other: {type: hangup, outcome: closed_other}
"""


@pytest.mark.parametrize(
    ("when", "language", "caller", "expected"),
    [
        (datetime(2026, 11, 23, 9, 30, tzinfo=NY), None, "+15551234567", "open_en"),
        (datetime(2026, 11, 23, 9, 30, tzinfo=NY), "es", "+15551234567", "open_es"),
        (datetime(2026, 11, 23, 17, 0, tzinfo=NY), None, "+15551234567", "closed_local"),
        (datetime(2026, 11, 22, 10, 0, tzinfo=NY), None, "+34911234567", "closed_other"),  # Sunday
        (datetime(2026, 11, 22, 10, 0, tzinfo=NY), None, None, "closed_other"),  # withheld
    ],
)
def test_branch_conditions(when, language, caller, expected):
    tree = tree_of(BRANCH, allow_lints=True)
    interp = Interpreter(tree)
    s, cmds = interp.start(E.CallStarted(at=when, call_id="b", caller=caller, language=language))
    assert s.outcome.detail["outcome"] == expected


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        ("2026-01-12T13:30:00+00:00", "open_en"),  # 08:30 EST (UTC-5): open
        ("2026-07-13T12:30:00+00:00", "open_en"),  # 08:30 EDT (UTC-4): open
        ("2026-01-12T12:30:00+00:00", "closed_local"),  # 07:30 EST: closed
        ("2026-03-09T12:30:00+00:00", "open_en"),  # Monday after spring-forward: 08:30 EDT
        ("2026-11-02T12:30:00+00:00", "closed_local"),  # Monday after fall-back: 07:30 EST
    ],
)
def test_branch_schedule_across_dst(utc, expected):
    tree = tree_of(BRANCH, allow_lints=True)
    interp = Interpreter(tree)
    s, _ = interp.start(E.CallStarted(at=datetime.fromisoformat(utc), call_id="d", caller="+15550000000"))
    assert s.outcome.detail["outcome"] == expected


def test_set_renders_templates_and_var_conditions(clock):
    tree = tree_of("""
  main:
    type: set
    vars: {reason: "refill-{language}"}
    next: check
  check:
    type: branch
    cases:
      - when: {var: reason, equals: refill-en}
        next: "yes"
    default: "no"
  "yes": {type: hangup, outcome: matched}
  "no": {type: hangup, outcome: unmatched}
""", allow_lints=True)
    _, s, _ = begin(tree, clock)
    assert s.vars["reason"] == "refill-en" and s.outcome.detail["outcome"] == "matched"


# ---------------------------------------------------------------- queue, agent, callback


QUEUE = """
  main:
    type: queue
    queue: scheduling
    requirements: {skills: {scheduling: 5}}
    priority: 3
    hours: office
    keys: {"1": cb}
    fallback: {closed: line, no_agents: vm, default: line}
    after_call: survey
  cb:
    type: callback
    queue: scheduling
    no_number: vm
    next: bye
  vm:
    type: voicemail
    prompt: {en: "Leave a message.", es: "Deje un mensaje."}
    max_length: 60
    retention: clinical-7y
    next: bye
  survey:
    type: survey
    prompt: {en: "Rate us 1 to 5.", es: "Califíquenos del 1 al 5."}
    next: bye
"""


def test_queue_enqueue_agent_and_after_call_survey(clock):
    tree = tree_of(QUEUE)
    interp, s, cmds = begin(tree, clock)
    (enq,) = [c for c in cmds if isinstance(c, C.Enqueue)]
    assert enq.keys == ("1",) and enq.language == "en"
    assert s.outcome.kind == "queue"
    s, _ = interp.step(s, E.AgentConnected(clock(40), "a7", "longest idle"))
    assert s.outcome.kind == "agent" and s.outcome.detail["waited"] == 40
    s, cmds = interp.step(s, E.AgentDisconnected(clock(300)))
    assert s.node == "survey" and s.outcome.kind == "agent"
    s, cmds = interp.step(s, E.Digit(clock(303), "5"))
    assert s.vars["survey_rating"] == 5 and s.node == "bye"


def test_queue_closed_by_hours_skips_routing(clock):
    tree = tree_of(QUEUE)
    interp = Interpreter(tree)
    s, cmds = interp.start(E.CallStarted(at=datetime(2026, 11, 23, 18, 0, tzinfo=NY), call_id="x", caller="+1555"))
    assert not any(isinstance(c, C.Enqueue) for c in cmds)
    assert s.node == "line" and any(isinstance(c, C.Transfer) for c in cmds)


def test_queue_failure_takes_named_fallback(clock):
    tree = tree_of(QUEUE)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.QueueResult(clock(1), "no_agents"))
    assert s.node == "vm" and texts(prompts(cmds)[0]) == ["Leave a message."]
    s, cmds = interp.step(s, E.PromptFinished(clock(3), s.prompt_id))
    (rec,) = [c for c in cmds if isinstance(c, C.Record)]
    assert rec.retention == "clinical-7y" and rec.kind == "voicemail" and rec.max_length == 60
    s, _ = interp.step(s, E.Hangup(clock(20)))
    assert s.ended and s.outcome.kind == "voicemail"


def test_abandon_in_queue_records_wait(clock):
    tree = tree_of(QUEUE)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Hangup(clock(95)))
    assert s.ended and s.outcome.kind == "abandoned" and s.outcome.detail["waited"] == 95
    s2, cmds2 = interp.step(s, E.Digit(clock(96), "1"))
    assert s2 is s and cmds2 == []


def test_wait_key_books_callback_keeping_place(clock):
    tree = tree_of(QUEUE)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Digit(clock(120), "1"))
    (deq,) = [c for c in cmds if isinstance(c, C.Dequeue)]
    (cb,) = [c for c in cmds if isinstance(c, C.RequestCallback)]
    assert deq.queue == "scheduling"
    assert cb.keep_place_since == clock(0) and cb.number == "+15551234567" and cb.skills == (("scheduling", 5),)
    assert s.node == "bye"


def test_callback_without_caller_id_goes_to_no_number(clock):
    tree = tree_of(QUEUE)
    interp, s, _ = begin(tree, clock, caller=None)
    s, cmds = interp.step(s, E.Digit(clock(10), "1"))
    assert s.node == "vm" and not any(isinstance(c, C.RequestCallback) for c in cmds)


# ---------------------------------------------------------------- transfer, sms, lookup, hangup


def test_transfer_success_and_failover(clock):
    tree = tree_of("  main: {type: goto, target: line}\n")
    interp, s, cmds = begin(tree, clock)
    (tr,) = [c for c in cmds if isinstance(c, C.Transfer)]
    assert tr.to == "+15550100200" and tr.timeout == 30
    ok, _ = interp.step(s, E.TransferResult(clock(5), True))
    assert ok.ended and ok.outcome.kind == "transfer" and ok.outcome.detail["to"] == "Nurse line"
    bad, cmds = interp.step(s, E.TransferResult(clock(30), False, "busy"))
    assert bad.node == "bye" and texts(prompts(cmds)[0]) == ["Goodbye."]


LOOKUP = """
  main:
    type: lookup
    hook: find_appointment
    args: {who: "{caller}"}
    into: {when: date}
    timeout: 2
    next: found
    fallback: line
  found:
    type: sms
    text: {en: "Your visit: {when}", es: "Su cita: {when}"}
    next: bye
"""


def test_lookup_success_fills_sensitive_vars_and_sms(clock):
    tree = tree_of(LOOKUP)
    interp, s, cmds = begin(tree, clock)
    (hook,) = [c for c in cmds if isinstance(c, C.CallHook)]
    assert hook.hook == "find_appointment" and hook.args == {"who": "+15551234567"} and hook.timeout == 2
    stale, none = interp.step(s, E.HookResult(clock(1), hook.request_id + 1, True, {"date": "x"}))
    assert none == [] and stale.node == "main"
    s, cmds = interp.step(s, E.HookResult(clock(1), hook.request_id, True, {"date": "Dec 3"}))
    (sms,) = [c for c in cmds if isinstance(c, C.SendSms)]
    assert sms.text == "Your visit: Dec 3" and sms.to == "+15551234567"
    assert "when" in s.sensitive and "Dec 3" not in repr(s.trace)


@pytest.mark.parametrize("result", [E.HookResult, "missing-field"])
def test_lookup_failure_and_incomplete_result_take_fallback(clock, result):
    tree = tree_of(LOOKUP)
    interp, s, cmds = begin(tree, clock)
    rid = s.request_id
    ev = E.HookResult(clock(2), rid, False, error="timeout") if result is E.HookResult else E.HookResult(clock(1), rid, True, {"other": 1})
    s, cmds = interp.step(s, ev)
    assert s.node == "line"


def test_sms_skipped_without_number(clock):
    tree = tree_of(LOOKUP)
    interp, s, _ = begin(tree, clock, caller=None)
    s, cmds = interp.step(s, E.HookResult(clock(1), s.request_id, True, {"date": "D"}))
    assert not any(isinstance(c, C.SendSms) for c in cmds) and s.node == "bye"


def test_hangup_node_plays_goodbye_then_hangs_up(clock):
    tree = tree_of("  main: {type: goto, target: bye}\n", allow_lints=True)
    interp, s, cmds = begin(tree, clock)
    assert texts(prompts(cmds)[0]) == ["Goodbye."] and s.phase == "ending"
    s, cmds = interp.step(s, E.PromptFinished(clock(2), s.prompt_id))
    assert cmds == [C.HangupCall("done")] and s.ended and s.outcome.detail["outcome"] == "done"


def test_caller_hangup_in_ivr(clock):
    tree = tree_of(MENU)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Hangup(clock(3)))
    assert s.ended and s.outcome.kind == "hangup" and s.outcome.node == "main"


# ---------------------------------------------------------------- purity


def test_step_never_changes_the_old_state(clock):
    tree = tree_of(MENU)
    interp, s0, _ = begin(tree, clock)
    snapshot = (tuple(s0), dict(s0.vars))
    s1, _ = interp.step(s0, E.Digit(clock(1), "9"))
    assert (tuple(s0), dict(s0.vars)) == snapshot
    assert s1.vars["language"] == "es" and s0.vars["language"] == "en"


def test_same_events_same_result(clock):
    tree = tree_of(INPUT)
    runs = []
    for _ in range(2):
        interp, s, _ = begin(tree, clock)
        s, _ = press(interp, s, clock, "04121980")
        runs.append(s)
    assert runs[0] == runs[1]


def test_call_started_to_step_is_an_adapter_bug(clock):
    from ivr.errors import InterpreterError

    tree = tree_of(MENU)
    interp, s, _ = begin(tree, clock)
    with pytest.raises(InterpreterError):
        interp.step(s, E.CallStarted(at=clock(1), call_id="again"))


# ---------------------------------------------------------------- regressions found in review


def test_hangup_during_after_call_survey_keeps_the_agent_outcome(clock):
    tree = tree_of(QUEUE)
    interp, s, _ = begin(tree, clock)
    s, _ = interp.step(s, E.AgentConnected(clock(30), "a1"))
    s, _ = interp.step(s, E.AgentDisconnected(clock(200)))
    s, _ = interp.step(s, E.Hangup(clock(202)))
    assert s.ended and s.outcome.kind == "agent" and s.outcome.detail["agent"] == "a1"


def test_hangup_during_goodbye_keeps_that_nodes_outcome(clock):
    tree = tree_of("  main: {type: goto, target: bye}\n", allow_lints=True)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Hangup(clock(1)))
    assert s.ended and s.outcome.kind == "hangup" and s.outcome.detail["outcome"] == "done" and cmds == []


def test_sensitive_values_masked_in_shown_text_only(clock):
    tree = tree_of(LOOKUP.replace('text: {en: "Your visit: {when}", es: "Su cita: {when}"}',
                                  'text: {en: "Your visit: {when}. Status ready.", es: "Su cita: {when}."}'))
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.HookResult(clock(1), s.request_id, True, {"date": "ready"}))
    (sms,) = [c for c in cmds if isinstance(c, C.SendSms)]
    assert sms.text == "Your visit: ready. Status ready."  # the patient gets the real text
    assert sms.shown == "Your visit: [redacted]. Status ready."  # only the variable is masked, not the same word elsewhere


def test_swallowed_terminator_only_right_after_the_entry(clock):
    tree = tree_of(INPUT.replace("""  thanks:
    type: say
    text: {en: "Thank you.", es: "Gracias."}
    next: bye""", """  thanks:
    type: menu
    prompt: {en: "Press 1.", es: "Oprima 1."}
    options: {"#": bye, "1": bye}
    timeout: 5
    no_input: {next: bye}
    invalid: {next: bye}"""))
    interp, s, _ = begin(tree, clock)
    s, _ = press(interp, s, clock, "04121980")  # last key at 3.1 s
    late, _ = interp.step(s, E.Digit(clock(9), "#"))
    assert late.node == "bye"  # 6 s later, # is a real choice
    soon, _ = interp.step(s, E.Digit(clock(4), "#"))
    assert soon.node == "thanks"


def test_star_part_way_through_an_entry_starts_over(clock):
    tree = tree_of(INPUT)
    interp, s, _ = begin(tree, clock)
    s, _ = press(interp, s, clock, "0412*04121980")
    assert s.node == "thanks" and s.vars["dob"] == "04121980"
    assert any(e.kind == "cleared" for e in s.trace)


def test_emergency_notice_is_never_skipped_even_if_marked_interruptible(clock):
    text = BASE.format(start="chime", nodes="""
  chime:
    type: say
    text: {en: "Hello.", es: "Hola."}
    next: notice
  notice:
    type: say
    text: {en: "If this is an emergency, hang up and dial 911.", es: "Si es una emergencia, marque 911."}
    next: main
""" + MENU).replace("medical: false", "medical: true\nemergency_notice: notice")
    tree = build_tree(text)
    interp, s, _ = begin(tree, clock)
    s, cmds = interp.step(s, E.Digit(clock(0.5), "1"))  # barge into the greeting
    (notice,) = prompts(cmds)
    assert s.node == "notice" and notice.barge_in is False
    s, cmds = interp.step(s, E.Digit(clock(1), "1"))  # keys during the notice do not cut it short
    assert s.node == "notice" and not any(isinstance(c, C.StopPrompt) for c in cmds)
    s, cmds = interp.step(s, E.PromptFinished(clock(4), notice.prompt_id))
    assert s.node == "billing"  # the key typed during the greeting takes effect after the notice


def test_timeout_that_raced_a_key_is_ignored(clock):
    tree = tree_of(INPUT.replace("min_length: 8", "min_length: 2"))
    interp, s, _ = begin(tree, clock)
    s, _ = interp.step(s, E.PromptFinished(clock(3), s.prompt_id))
    s, _ = interp.step(s, E.Digit(clock(9.9), "0"))
    s, _ = interp.step(s, E.Digit(clock(9.95), "4"))
    s2, cmds = interp.step(s, E.InputTimeout(clock(10.0), s.prompt_id))  # timer started at 4 s: stale
    assert s2.node == "main" and s2.digits == "04" and s2.attempts == 0 and cmds == []
    s3, _ = interp.step(s, E.InputTimeout(clock(16.0), s.prompt_id))  # a real timeout, 6 s after the last key
    assert s3.trace[-1].kind != "timeout-ignored"


def test_keys_that_are_not_phone_keys_are_refused(clock):
    tree = tree_of(INPUT)
    interp, s, _ = begin(tree, clock)
    s2, cmds = interp.step(s, E.Digit(clock(1), "０"))  # a full-width zero
    assert cmds == [] and s2.digits == "" and s2.trace[-1].detail["reason"] == "not a phone key"


def test_type_ahead_keys_are_traced_without_their_value(clock):
    tree = tree_of("""
  hello:
    type: say
    text: {en: "Welcome.", es: "Bienvenido."}
    next: main
""" + INPUT, start="hello")
    interp, s, _ = begin(tree, clock)
    for i, d in enumerate("0412"):
        s, _ = interp.step(s, E.Digit(clock(0.2 + i * 0.1), d))
    assert s.node == "main" and s.digits == "0412"
    assert "'0'" not in repr(s.trace) and "'4'" not in repr(s.trace)
    assert [e.detail.get("key") for e in s.trace if e.kind == "key"] == ["•"] * 4


def test_hook_error_text_stays_out_of_the_trace(clock):
    tree = tree_of(LOOKUP)
    interp, s, _ = begin(tree, clock)
    s, _ = interp.step(s, E.HookResult(clock(1), s.request_id, False, error="no patient with dob 04121980"))
    failed = next(e for e in s.trace if e.kind == "hook-failed")
    assert "04121980" not in repr(s.trace) and failed.detail["error"] == "failed"


def test_date_of_birth_input_is_sensitive_by_default(clock):
    tree = tree_of(INPUT.replace("    sensitive: true\n", ""))
    interp, s, _ = begin(tree, clock)
    s, _ = press(interp, s, clock, "04121980")
    assert "dob" in s.sensitive and "04121980" not in repr(s.trace)


@pytest.mark.parametrize("number", ["911", "9911", "+44999", "123"])
def test_callback_never_to_an_emergency_or_short_number(clock, number):
    tree = tree_of(QUEUE.replace("    number: caller\n", "").replace("    queue: scheduling\n    no_number: vm",
                                                                          "    queue: scheduling\n    number: caller\n    no_number: vm"))
    interp, s, _ = begin(tree, clock, caller=number)
    s, cmds = interp.step(s, E.Digit(clock(5), "1"))
    assert not any(isinstance(c, C.RequestCallback) for c in cmds) and s.node == "vm"
