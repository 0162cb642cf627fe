"""Tests for call-tree validation: YAML positions, schema errors, graph checks and safety lints.

Every broken tree is derived from one small valid tree (``BASE``) by editing its
text, and every test pins down the diagnostic id, the line (and column where it
matters) and the path an admin would be pointed at, plus that the message or
hint says what to do. Lines are located by searching the edited text for a
unique snippet, so the expectations stay exact without counting by hand.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import pytest

from ivr.errors import Diagnostic, Severity, format_path
from ivr.tree import CallTree, check_tree_text

FILE = "calltrees/test-clinic.yaml"

# A small valid medical tree: emergency notice first, one menu with timeout and
# both handlers, a front-desk queue (the person key) whose fallback is a human
# transfer, and a hangup.
BASE = """\
name: Test Clinic
medical: true
languages: [en]
timezone: America/New_York
start: notice
emergency_notice: notice
human:
  target: front_desk
schedules:
  office:
    weekly:
      mon-fri: "08:00-17:00"
nodes:
  notice:
    type: say
    text: "If this is a medical emergency, hang up and dial 9 1 1."
    next: hours
  hours:
    type: branch
    cases:
      - when: {open: office}
        next: main
    default: main
  main:
    type: menu
    prompt: "For appointments, press 1. To hear this again, press 2. To end the call, press 3."
    options:
      "1": front_desk
      "2": main
      "3": goodbye
    timeout: 5
    no_input: {next: human}
    invalid: {next: human}
  front_desk:
    type: queue
    queue: front_desk
    hours: office
    fallback: {default: nurse_line}
  nurse_line:
    type: transfer
    to: "+15550100200"
    human: true
    on_failure: goodbye
  goodbye:
    type: hangup
    prompt: "Goodbye."
"""


# ---------------------------------------------------------------------------- helpers


def check(text: str, base_dir: Path | None = None) -> tuple[CallTree | None, list[Diagnostic]]:
    return check_tree_text(text, FILE, base_dir=base_dir if base_dir is not None else Path(__file__).resolve().parent)


def edit(text: str, old: str, new: str) -> str:
    """Replace one unique snippet (a test that edits the wrong place should fail loudly)."""
    assert text.count(old) == 1, f"snippet must occur exactly once: {old!r}"
    return text.replace(old, new)


def line_of(text: str, snippet: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``snippet``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if snippet in line]
    assert len(hits) >= nth, f"snippet not found {nth} time(s): {snippet!r}"
    if nth == 1:
        assert len(hits) == 1, f"snippet is on several lines, pass nth: {snippet!r} -> {hits}"
    return hits[nth - 1]


def col_of(text: str, snippet: str, nth: int = 1) -> int:
    """1-based column where ``snippet`` starts on its line."""
    line = text.splitlines()[line_of(text, snippet, nth) - 1]
    return line.index(snippet) + 1


def ids(diags: list[Diagnostic]) -> list[str]:
    return [d.id for d in diags]


def only(diags: list[Diagnostic], id: str, path: str | None = None) -> Diagnostic:
    """The single diagnostic with ``id`` (and rendered ``path``, when given)."""
    found = [d for d in diags if d.id == id and (path is None or format_path(d.path) == path)]
    assert len(found) == 1, f"expected one {id} at {path}, got:\n" + "\n".join(d.render() for d in diags)
    return found[0]


def advice(d: Diagnostic) -> str:
    """Everything the admin reads: message, expected and hint."""
    return " ".join(x for x in (d.message, d.expected or "", d.hint or "") if x)


def blocking(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.blocking]


def write_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))


# ---------------------------------------------------------------------------- the valid tree


def test_base_tree_is_valid() -> None:
    tree, diags = check(BASE)
    assert tree is not None
    assert diags == [], "\n".join(d.render() for d in diags)
    assert tree.spec.start == "notice"
    assert tree.metrics["after_hours_human_path"][-1] == "nurse_line"


def test_sample_clinic_tree_has_no_blocking_diagnostics() -> None:
    root = Path(__file__).resolve().parents[1]
    path = root / "calltrees" / "clinic-main.yaml"
    tree, diags = check_tree_text(path.read_text(encoding="utf-8"), str(path), base_dir=path.parent)
    assert tree is not None
    assert blocking(diags) == [], "\n".join(d.render() for d in diags)


# ---------------------------------------------------------------------------- YAML level


def test_yaml_syntax_error_points_at_the_offending_line() -> None:
    text = edit(BASE, "    next: hours\n", "    next: hours: now\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-YAML-SYNTAX")
    assert d.severity is Severity.ERROR and d.blocking
    assert d.file == FILE
    assert d.line == line_of(text, "next: hours: now")
    assert d.column == col_of(text, ": now")  # the second colon
    assert "mapping values are not allowed" in d.message
    assert "quotes" in d.hint and "indentation" in d.hint
    assert d.render().startswith(f"{FILE}:{d.line}:{d.column}: error E-YAML-SYNTAX")


def test_yaml_tab_indentation_is_reported_on_its_line() -> None:
    text = edit(BASE, "    timeout: 5\n", "\ttimeout: 5\n")
    _, diags = check(text)
    d = only(diags, "E-YAML-SYNTAX")
    assert (d.line, d.column) == (line_of(text, "\ttimeout: 5"), 1)
    assert "'\\t'" in d.message
    assert "spaces, not tabs" in d.hint


@pytest.mark.parametrize(
    "old, new, where",
    [
        ('    prompt: "Goodbye."\n', "    prompt: !include goodbye.yaml\n", "!include"),
        ("    type: hangup\n", "    <<: 5\n    type: hangup\n", "<<: 5"),
    ],
    ids=["unknown-tag", "bad-merge-key"],
)
def test_yaml_constructor_errors_are_diagnostics(old: str, new: str, where: str) -> None:
    text = edit(BASE, old, new)
    tree, diags = check(text)  # must not raise
    assert tree is None
    d = only(diags, "E-YAML-SYNTAX")
    assert d.line == line_of(text, where)


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_empty_file(text: str) -> None:
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-YAML-EMPTY")
    assert d.blocking
    assert "empty" in d.message
    assert d.hint and "example" in d.hint
    assert len(diags) == 1


def test_top_level_not_a_mapping() -> None:
    tree, diags = check("- welcome\n- main\n")
    assert tree is None
    d = only(diags, "E-SCHEMA")
    assert (d.line, d.column) == (1, 1)
    assert "name, timezone, start, human and nodes" in d.message


@pytest.mark.parametrize("second", ['"1": goodbye', "1: goodbye"])
def test_duplicate_option_key_reports_the_second_occurrence(second: str) -> None:
    text = edit(BASE, '      "3": goodbye\n', f'      "3": goodbye\n      {second}\n')
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-DUPLICATE-KEY")
    assert d.line == line_of(text, second)
    assert d.column == 7
    assert format_path(d.path) == "nodes.main.options.1"
    first_line = line_of(text, '"1": front_desk')
    assert f"first at line {first_line}" in d.message
    assert "silently" in d.message
    assert d.hint == "remove or rename one of the two entries"
    # the ambiguous data stops the run before graph checks repeat the problem
    assert ids(diags) == ["E-DUPLICATE-KEY"]


def test_duplicate_node_id() -> None:
    text = BASE + "  goodbye:\n    type: hangup\n"
    _, diags = check(text)
    d = only(diags, "E-DUPLICATE-KEY")
    assert d.line == line_of(text, "  goodbye:", nth=2)
    assert format_path(d.path) == "nodes.goodbye"


# ---------------------------------------------------------------------------- schema level


def test_unknown_node_type_suggests_the_closest() -> None:
    text = edit(BASE, "    type: menu\n", "    type: mnu\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-NODE-TYPE")
    assert d.line == line_of(text, "type: mnu")
    assert d.column == 5
    assert format_path(d.path) == "nodes.main.type"
    assert d.found == "mnu"
    assert "'mnu'" in d.message
    assert d.hint == "did you mean 'menu'?"
    assert "menu" in d.expected and "queue" in d.expected


def test_node_without_type() -> None:
    text = edit(BASE, "    type: hangup\n", "")
    _, diags = check(text)
    d = only(diags, "E-NODE-TYPE")
    assert d.line == line_of(text, "  goodbye:")
    assert format_path(d.path) == "nodes.goodbye"
    assert "type: menu" in d.hint


def test_say_without_next() -> None:
    text = edit(BASE, "    next: hours\n", "")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-MISSING-FIELD")
    assert d.line == line_of(text, "  notice:")
    assert format_path(d.path) == "nodes.notice"
    assert "'next'" in d.message
    assert "add `next:`" in d.hint


def test_menu_without_options() -> None:
    text = edit(BASE, '    options:\n      "1": front_desk\n      "2": main\n      "3": goodbye\n', "")
    _, diags = check(text)
    d = only(diags, "E-MISSING-FIELD")
    assert d.line == line_of(text, "  main:")
    assert format_path(d.path) == "nodes.main"
    assert "'options'" in d.message
    assert "add `options:`" in d.hint


def test_unknown_field_typo_suggests_next() -> None:
    text = edit(BASE, "    next: hours\n", "    nxt: hours\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-UNKNOWN-FIELD")
    assert (d.line, d.column) == (line_of(text, "nxt: hours"), 5)
    assert format_path(d.path) == "nodes.notice.nxt"
    assert d.found == "nxt"
    assert "'nxt'" in d.message
    assert d.hint == "did you mean 'next'?"
    # the typo also leaves `next` missing: both are reported
    assert format_path(only(diags, "E-MISSING-FIELD").path) == "nodes.notice"


def test_unknown_top_level_field() -> None:
    text = edit(BASE, "medical: true\n", "medical: true\nemergency_notise: notice\n")
    _, diags = check(text)
    d = only(diags, "E-UNKNOWN-FIELD")
    assert (d.line, d.column) == (line_of(text, "emergency_notise"), 1)
    assert format_path(d.path) == "emergency_notise"
    assert d.hint == "did you mean 'emergency_notice'?"


@pytest.mark.parametrize(
    "old, new, field, node",
    [
        ("    next: hours\n", "    next: hours\n    prompt: Welcome\n", "prompt", "notice"),  # say takes text:, not prompt:
        ('    to: "+15550100200"\n', '    to: "+15550100200"\n    number: "+15550100201"\n', "number", "nurse_line"),
    ],
    ids=["prompt-on-say", "number-on-transfer"],
)
def test_unknown_field_does_not_suggest_itself(old: str, new: str, field: str, node: str) -> None:
    text = edit(BASE, old, new)
    _, diags = check(text)
    d = only(diags, "E-UNKNOWN-FIELD")
    assert format_path(d.path) == f"nodes.{node}.{field}"
    assert d.line == line_of(text, new.strip().splitlines()[-1])
    assert f"did you mean '{field}'" not in (d.hint or "")


@pytest.mark.parametrize("number", ["911", "15550100200"])
def test_unquoted_phone_number_says_to_quote_it(number: str) -> None:
    text = edit(BASE, '    to: "+15550100200"\n', f"    to: {number}\n")
    tree, diags = check(text)
    assert tree is None
    d = next(d for d in diags if format_path(d.path) == "nodes.nurse_line.to")
    assert d.line == line_of(text, f"to: {number}")
    assert "quote" in advice(d).lower()


@pytest.mark.parametrize("key", ["12", "A"])
def test_bad_dtmf_key_is_rejected(key: str) -> None:
    text = edit(BASE, '      "3": goodbye\n', f'      "{key}": goodbye\n')
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-SCHEMA")
    assert f"'{key}' is not a phone key" in d.message
    assert "0-9, * or #" in d.message
    assert format_path(d.path).startswith("nodes.main.options")


@pytest.mark.parametrize("key", ["12", "A"])
def test_bad_dtmf_key_points_at_the_key(key: str) -> None:
    text = edit(BASE, '      "3": goodbye\n', f'      "{key}": goodbye\n')
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert format_path(d.path) == f"nodes.main.options.{key}"
    assert (d.line, d.column) == (line_of(text, f'"{key}": goodbye'), 7)


def test_bad_human_key() -> None:
    text = edit(BASE, "  target: front_desk\n", '  target: front_desk\n  key: "00"\n')
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert format_path(d.path) == "human.key"
    assert d.line == line_of(text, 'key: "00"')
    assert "'00' is not a phone key" in d.message


def test_bad_time_zone() -> None:
    text = edit(BASE, "timezone: America/New_York\n", "timezone: America/New_Yrok\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-SCHEMA")
    assert (d.line, d.column) == (line_of(text, "timezone:"), 1)
    assert format_path(d.path) == "timezone"
    assert "unknown time zone 'America/New_Yrok'" in d.message
    assert "IANA name such as America/New_York" in d.message


def test_bad_schedule_time_zone_suggests_the_real_name() -> None:
    text = edit(BASE, "    weekly:\n", "    timezone: Europe/Madird\n    weekly:\n")
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert d.line == line_of(text, "Europe/Madird")
    assert format_path(d.path) == "schedules.office.timezone"
    assert "did you mean 'Europe/Madrid'" in d.message


@pytest.mark.parametrize(
    "hours, words",
    [
        ('"25:00-17:00"', ["'25:00'", "hours 00-23"]),
        ("8:00", ["the number 480", "08:00", "quoted"]),  # YAML 1.1 reads an unquoted 8:00 as 480
        ("off", ["closed"]),  # and unquoted off as false
    ],
)
def test_bad_schedule_time_is_reported_inside_schedules(hours: str, words: list[str]) -> None:
    text = edit(BASE, '      mon-fri: "08:00-17:00"\n', f"      mon-fri: {hours}\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-SCHEMA")
    assert d.line == line_of(text, "mon-fri:")
    assert d.column == 7
    assert format_path(d.path) == "schedules.office.weekly.mon-fri"
    for w in words:
        assert w in d.message, d.message


def test_bad_day_name_in_schedule() -> None:
    text = edit(BASE, '      mon-fri: "08:00-17:00"\n', '      mon-fry: "08:00-17:00"\n')
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert d.line == line_of(text, "mon-fry:")
    assert format_path(d.path) == "schedules.office.weekly.mon-fry"
    assert "unknown day 'fry'" in d.message and "mon-fri" in d.message


def test_bad_time_in_a_list_of_hours_points_at_the_item() -> None:
    text = edit(BASE, '      mon-fri: "08:00-17:00"\n', '      mon-fri:\n        - "08:00-12:00"\n        - "13:00-25:00"\n')
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert "'25:00'" in d.message
    assert format_path(d.path) == "schedules.office.weekly.mon-fri.1"
    assert (d.line, d.column) == (line_of(text, '- "13:00-25:00"'), col_of(text, '"13:00-25:00"'))


def test_unknown_field_in_a_schedule() -> None:
    text = edit(BASE, "    weekly:\n", "    weeky:\n")
    _, diags = check(text)
    d = only(diags, "E-UNKNOWN-FIELD")
    assert (d.line, d.column) == (line_of(text, "weeky:"), 5)
    assert format_path(d.path) == "schedules.office.weeky"
    assert "did you mean 'weekly'?" in advice(d)


@pytest.mark.parametrize("date", ["2026-02-30", "2026-13-01"])
def test_impossible_unquoted_holiday_date_is_a_diagnostic(date: str) -> None:
    text = edit(BASE, '      mon-fri: "08:00-17:00"\n', f'      mon-fri: "08:00-17:00"\n    holidays:\n      - {{date: {date}, name: Staff day}}\n')
    tree, diags = check(text)  # must not raise
    assert tree is None
    d = next(d for d in diags if d.blocking)
    assert d.line == line_of(text, date)
    assert "date" in d.message.lower()


def test_short_waiver_reason_is_rejected() -> None:
    text = BASE + "waivers:\n  - lint: L-HUMAN-KEY\n    reason: ok\n"
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-SCHEMA")
    assert (d.line, d.column) == (line_of(text, "reason: ok"), 5)
    assert format_path(d.path) == "waivers.0.reason"
    assert "at least 10 characters" in d.message
    assert d.found == "ok"


def test_waiver_for_something_that_is_not_a_lint() -> None:
    text = BASE + "waivers:\n  - lint: E-UNREACHABLE\n    reason: we know this node is unused\n"
    _, diags = check(text)
    d = only(diags, "E-SCHEMA")
    assert format_path(d.path) == "waivers.0.lint"
    assert d.line == line_of(text, "lint: E-UNREACHABLE")


def test_schema_errors_are_all_reported_at_once() -> None:
    text = edit(BASE, "timezone: America/New_York\n", "timezone: Mars/Olympus\n")
    text = edit(text, "    type: menu\n", "    type: mnu\n")
    text = edit(text, "    on_failure: goodbye\n", "    on_falure: goodbye\n")
    tree, diags = check(text)
    assert tree is None
    assert only(diags, "E-SCHEMA").line == line_of(text, "Mars/Olympus")
    assert only(diags, "E-NODE-TYPE").line == line_of(text, "type: mnu")
    d = only(diags, "E-UNKNOWN-FIELD")
    assert d.line == line_of(text, "on_falure")
    assert d.hint == "did you mean 'on_failure'?"


# ---------------------------------------------------------------------------- references and graph


def test_unknown_target_suggests_the_closest_node() -> None:
    text = edit(BASE, '      "1": front_desk\n', '      "1": front_dsk\n')
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-UNKNOWN-TARGET")
    assert (d.line, d.column) == (line_of(text, '"1": front_dsk'), 7)
    assert format_path(d.path) == "nodes.main.options.1"
    assert d.found == "front_dsk"
    assert "'front_dsk' is not a node" in d.message
    assert d.hint == "did you mean 'front_desk'?"
    assert ids(diags) == ["E-UNKNOWN-TARGET"]  # no cascade of graph errors


def test_unknown_start_node() -> None:
    text = edit(BASE, "start: notice\n", "start: welcome\n")
    _, diags = check(text)
    d = only(diags, "E-UNKNOWN-TARGET")
    assert (d.line, d.column) == (line_of(text, "start: welcome"), 1)
    assert format_path(d.path) == "start"
    assert "start node 'welcome'" in d.message


def test_unreachable_node() -> None:
    text = BASE + '  orphan:\n    type: say\n    text: "Nobody hears this."\n    next: goodbye\n'
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-UNREACHABLE")
    assert (d.line, d.column) == (line_of(text, "  orphan:"), 3)
    assert format_path(d.path) == "nodes.orphan"
    assert "'orphan'" in d.message
    assert "link it" in d.hint and "delete it" in d.hint
    assert ids(diags) == ["E-UNREACHABLE"]


def test_loop_without_input() -> None:
    text = edit(BASE, "    default: main\n", "    default: closed_msg\n")
    text += (
        "  closed_msg:\n    type: say\n    text: \"We are closed.\"\n    next: again\n"
        "  again:\n    type: goto\n    target: closed_msg\n"
    )
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-LOOP-NO-INPUT")
    assert format_path(d.path) == "nodes.again"
    assert (d.line, d.column) == (line_of(text, "  again:"), 3)
    assert "again -> closed_msg" in d.message
    assert "break the loop" in d.hint


def test_loop_with_no_exit() -> None:
    text = edit(BASE, "  target: front_desk\n", "  target: main\n  enabled: false\n")
    text = edit(text, '      "1": front_desk\n      "2": main\n      "3": goodbye\n', '      "1": sub\n      "2": main\n')
    text = edit(text, "    no_input: {next: human}\n    invalid: {next: human}\n", "    no_input: {next: main}\n    invalid: {next: sub}\n")
    start = text.index("  front_desk:\n")
    text = text[:start] + (
        "  sub:\n    type: menu\n    prompt: \"Press 1 to go back.\"\n    options:\n      \"1\": main\n"
        "    timeout: 5\n    no_input: {next: main}\n    invalid: {next: main}\n"
    )
    tree, diags = check(text)
    assert tree is None
    no_exit = [d for d in diags if d.id == "E-LOOP-NO-EXIT"]
    assert sorted(format_path(d.path) for d in no_exit) == ["nodes.hours", "nodes.main", "nodes.notice", "nodes.sub"]
    d = only(diags, "E-LOOP-NO-EXIT", "nodes.main")
    assert (d.line, d.column) == (line_of(text, "  main:"), 3)
    assert "'main'" in d.message and "hangup" in d.message
    assert "way out" in d.hint
    assert "E-LOOP-NO-INPUT" not in ids(diags)  # every cycle waits for a key


# ---------------------------------------------------------------------------- per-node checks


def test_menu_without_timeout() -> None:
    text = edit(BASE, "    timeout: 5\n", "")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-MENU-NO-TIMEOUT")
    assert (d.line, d.column) == (line_of(text, "  main:"), 3)
    assert format_path(d.path) == "nodes.main"
    assert "timeout: 5" in d.hint
    assert ids(diags) == ["E-MENU-NO-TIMEOUT"]


def test_menu_without_invalid_handler() -> None:
    text = edit(BASE, "    invalid: {next: human}\n", "")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-MENU-NO-INVALID")
    assert (d.line, d.column) == (line_of(text, "  main:"), 3)
    assert format_path(d.path) == "nodes.main"
    assert "`invalid`" in d.message
    assert "add `invalid:" in d.hint
    assert ids(diags) == ["E-MENU-NO-INVALID"]


def test_menu_invalid_handler_without_next() -> None:
    text = edit(BASE, "    invalid: {next: human}\n", '    invalid: {prompt: "Sorry, that is not an option."}\n')
    _, diags = check(text)
    d = only(diags, "E-MENU-NO-INVALID")
    assert d.line == line_of(text, "    invalid:")
    assert format_path(d.path) == "nodes.main.invalid"


def test_menu_without_no_input_handler() -> None:
    text = edit(BASE, "    no_input: {next: human}\n", "")
    _, diags = check(text)
    d = only(diags, "E-MENU-NO-NOINPUT")
    assert format_path(d.path) == "nodes.main"
    assert "add `no_input:" in d.hint


def test_person_key_used_for_another_node() -> None:
    text = edit(BASE, '      "3": goodbye\n', '      "3": goodbye\n      "0": goodbye\n')
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-KEY-CONFLICT")
    assert (d.line, d.column) == (line_of(text, '"0": goodbye'), 7)
    assert format_path(d.path) == "nodes.main.options.0"
    assert "person key" in d.message and "'goodbye'" in d.message
    assert "use another key" in d.hint and "human: false" in d.hint


def test_person_key_pointing_at_the_person_is_fine() -> None:
    for target in ("human", "front_desk"):
        text = edit(BASE, '      "3": goodbye\n', f'      "3": goodbye\n      "0": {target}\n')
        tree, diags = check(text)
        assert tree is not None and diags == [], target


@pytest.mark.parametrize("number", ["911", "9-1-1", "112", "tel:911", "sip:911@carrier.example"])
def test_transfer_to_emergency_number(number: str) -> None:
    text = edit(BASE, '    to: "+15550100200"\n', f'    to: "{number}"\n')
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-EMERGENCY-DIAL")
    assert (d.line, d.column) == (line_of(text, f'to: "{number}"'), 5)
    assert format_path(d.path) == "nodes.nurse_line.to"
    assert d.found == number
    assert "must not dial emergency numbers" in d.message
    assert "hang up and dial" in d.hint and "never transfer" in d.hint


BILINGUAL = (
    BASE.replace("languages: [en]", "languages: [en, es]")
    .replace(
        'text: "If this is a medical emergency, hang up and dial 9 1 1."',
        'text: {en: "If this is a medical emergency, hang up and dial 9 1 1.", es: "Si es una emergencia, marque 9 1 1."}',
    )
    .replace(
        'prompt: "For appointments, press 1. To hear this again, press 2. To end the call, press 3."',
        'prompt: {en: "For appointments, press 1.", es: "Para citas, oprima 1."}',
    )
    .replace('prompt: "Goodbye."', 'prompt: {en: "Goodbye.", es: "Adiós."}')
)


def test_bilingual_base_is_valid() -> None:
    tree, diags = check(BILINGUAL)
    assert tree is not None and diags == [], "\n".join(d.render() for d in diags)


def test_missing_translation() -> None:
    text = edit(BILINGUAL, ', es: "Si es una emergencia, marque 9 1 1."}', "}")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-MISSING-TRANSLATION")
    assert (d.line, d.column) == (line_of(text, "    text: {en:"), 5)
    assert format_path(d.path) == "nodes.notice.text"
    assert "no text for es" in d.message
    assert "every language" in d.hint


def test_single_text_in_a_two_language_tree() -> None:
    text = edit(BILINGUAL, 'prompt: {en: "Goodbye.", es: "Adiós."}', 'prompt: "Goodbye."')
    _, diags = check(text)
    d = only(diags, "E-MISSING-TRANSLATION")
    assert d.line == line_of(text, 'prompt: "Goodbye."')
    assert format_path(d.path).startswith("nodes.goodbye.prompt")
    assert "en, es" in d.message
    assert "{en: ..., es: ...}" in d.hint


def test_text_in_a_language_the_tree_does_not_speak() -> None:
    text = edit(BASE, 'prompt: "Goodbye."', 'prompt: {en: "Goodbye.", fr: "Au revoir."}')
    _, diags = check(text)
    d = only(diags, "E-LANGUAGE")
    assert format_path(d.path).endswith(".fr")
    assert d.line == line_of(text, "Au revoir")
    assert d.expected == "en"


def test_unknown_schedule_in_a_branch() -> None:
    text = edit(BASE, "      - when: {open: office}\n", "      - when: {open: ofice}\n")
    tree, diags = check(text)
    assert tree is None
    d = only(diags, "E-UNKNOWN-SCHEDULE")
    assert (d.line, d.column) == (line_of(text, "when: {open: ofice}"), col_of(text, "when:"))
    assert format_path(d.path) == "nodes.hours.cases.0.when"
    assert d.found == "ofice"
    assert "'ofice'" in d.message and "schedules:" in d.message
    assert d.hint == "did you mean 'office'?"


def test_unknown_schedule_in_queue_hours() -> None:
    text = edit(BASE, "    hours: office\n", "    hours: clinic\n")
    _, diags = check(text)
    d = only(diags, "E-UNKNOWN-SCHEDULE")
    assert (d.line, d.column) == (line_of(text, "hours: clinic"), 5)
    assert format_path(d.path) == "nodes.front_desk.hours"
    assert "define it under `schedules:`" in d.hint


def _play_tree(audio: str) -> str:
    text = edit(BASE, "start: notice\n", "start: welcome\n")
    return edit(text, "nodes:\n", f"nodes:\n  welcome:\n    type: play\n    audio: {audio}\n    next: notice\n")


def test_audio_file_present(tmp_path: Path) -> None:
    write_wav(tmp_path / "recordings" / "chime.wav")
    tree, diags = check(_play_tree("chime.wav"), base_dir=tmp_path / "calltrees")
    assert tree is not None and diags == [], "\n".join(d.render() for d in diags)


def test_audio_file_missing(tmp_path: Path) -> None:
    write_wav(tmp_path / "recordings" / "chime.wav")
    text = _play_tree("welcome.wav")
    tree, diags = check(text, base_dir=tmp_path / "calltrees")
    assert tree is None
    d = only(diags, "E-AUDIO-MISSING")
    assert (d.line, d.column) == (line_of(text, "audio: welcome.wav"), 5)
    assert format_path(d.path) == "nodes.welcome.audio"
    assert d.found == "welcome.wav"
    assert "'welcome.wav' not found" in d.message and str(tmp_path / "recordings") in d.message
    assert "recordings/welcome.wav" in d.hint


# ---------------------------------------------------------------------------- safety lints

NO_HUMAN_MENU = edit(
    edit(BASE, "    type: menu\n", "    type: menu\n    human: false\n"),
    '      "1": front_desk\n',
    '      "1": goodbye\n',
)


def test_lint_human_key() -> None:
    tree, diags = check(NO_HUMAN_MENU)
    d = only(diags, "L-HUMAN-KEY")
    assert d.severity is Severity.LINT and d.blocking and d.waived is None
    assert (d.line, d.column) == (line_of(NO_HUMAN_MENU, "  main:"), 3)
    assert format_path(d.path) == "nodes.main"
    assert "no key in this menu reaches a person" in d.message
    assert "human: false" in d.hint and "key 0" in d.hint
    assert ids(diags) == ["L-HUMAN-KEY"]
    assert tree is not None  # lints block publication, not loading for the simulator


def test_menu_with_human_false_but_an_option_to_the_person_is_fine() -> None:
    text = edit(BASE, "    type: menu\n", "    type: menu\n    human: false\n")
    tree, diags = check(text)
    assert tree is not None and diags == []


def test_lint_human_key_waived_with_a_reason() -> None:
    reason = "Recorded-announcement menu; callers reach a person through no_input."
    text = NO_HUMAN_MENU + f'waivers:\n  - lint: L-HUMAN-KEY\n    node: main\n    reason: "{reason}"\n'
    tree, diags = check(text)
    assert tree is not None
    d = only(diags, "L-HUMAN-KEY")
    assert d.waived == reason
    assert not d.blocking
    assert f"[waived: {reason}]" in d.render()
    assert d.line == line_of(text, "  main:")
    assert blocking(diags) == []
    assert "W-UNUSED-WAIVER" not in ids(diags)


def test_waiver_for_another_node_does_not_waive() -> None:
    text = NO_HUMAN_MENU + "waivers:\n  - lint: L-HUMAN-KEY\n    node: billing\n    reason: billing menu is info only\n"
    _, diags = check(text)
    assert only(diags, "L-HUMAN-KEY").blocking
    d = only(diags, "W-UNUSED-WAIVER")
    assert d.line == line_of(text, "- lint: L-HUMAN-KEY")


def test_unused_waiver_warning() -> None:
    text = BASE + "waivers:\n  - lint: L-TIME-TO-HUMAN\n    reason: the welcome is long by law\n"
    tree, diags = check(text)
    assert tree is not None
    d = only(diags, "W-UNUSED-WAIVER")
    assert d.severity is Severity.WARNING and not d.blocking
    assert (d.line, d.column) == (line_of(text, "- lint: L-TIME-TO-HUMAN"), 5)
    assert format_path(d.path) == "waivers.0"
    assert "L-TIME-TO-HUMAN" in d.message and "matches nothing" in d.message
    assert "remove it" in d.hint
    assert ids(diags) == ["W-UNUSED-WAIVER"]


def test_waiver_for_unknown_lint() -> None:
    text = BASE + "waivers:\n  - lint: L-HUMAN-KYE\n    reason: typo in the lint name here\n"
    tree, diags = check(text)
    assert tree is not None
    d = only(diags, "W-UNKNOWN-LINT")
    assert not d.blocking
    assert d.line == line_of(text, "lint: L-HUMAN-KYE")
    assert format_path(d.path) == "waivers.0.lint"
    assert "L-HUMAN-KEY" in d.expected


def test_blank_waiver_reason_is_rejected() -> None:
    text = NO_HUMAN_MENU + 'waivers:\n  - lint: L-HUMAN-KEY\n    reason: "            "\n'
    tree, diags = check(text)
    assert tree is None
    d = next(d for d in diags if d.blocking)
    assert format_path(d.path) == "waivers.0.reason"
    assert d.line == line_of(text, "reason:")


def test_waiver_for_a_misspelt_node_suggests_the_node() -> None:
    text = NO_HUMAN_MENU + "waivers:\n  - lint: L-HUMAN-KEY\n    node: mian\n    reason: announcement-only menu here\n"
    _, diags = check(text)
    d = next(d for d in diags if format_path(d.path) == "waivers.0.node")
    assert d.line == line_of(text, "node: mian")
    assert "did you mean 'main'?" in advice(d)


# 13 words and 1 sentence end, then 6 x (9 words, 1 sentence end): 67 words at
# 150 wpm = 26.8 s, plus 7 x 0.3 s of sentence pauses = 28.9 s before the menu.
LONG_WELCOME = "If this is a medical emergency, hang up and dial 9 1 1." + (
    " Our clinic offers many services for the whole family." * 6
)


def test_lint_time_to_human_reports_the_seconds() -> None:
    text = edit(BASE, 'text: "If this is a medical emergency, hang up and dial 9 1 1."', f'text: "{LONG_WELCOME}"')
    tree, diags = check(text)
    d = only(diags, "L-TIME-TO-HUMAN")
    assert d.blocking
    assert "28.9 s" in d.message
    assert "bound 20 s" in d.message
    assert "notice -> hours -> main" in d.message
    assert d.found == 28.9
    assert (d.line, d.column) == (line_of(text, "start: notice"), 1)
    assert format_path(d.path) == "start"
    assert "shorten the prompts" in d.hint
    assert ids(diags) == ["L-TIME-TO-HUMAN"]


def test_lint_time_to_human_respects_the_tree_bound() -> None:
    text = edit(BASE, 'text: "If this is a medical emergency, hang up and dial 9 1 1."', f'text: "{LONG_WELCOME}"')
    text = edit(text, "human:\n", "lints:\n  max_seconds_to_human: 30\nhuman:\n")
    tree, diags = check(text)
    assert tree is not None and diags == []


def test_lint_time_to_human_waived() -> None:
    text = edit(BASE, 'text: "If this is a medical emergency, hang up and dial 9 1 1."', f'text: "{LONG_WELCOME}"')
    text += "waivers:\n  - lint: L-TIME-TO-HUMAN\n    reason: state law requires the full notice\n"
    tree, diags = check(text)
    d = only(diags, "L-TIME-TO-HUMAN")
    assert d.waived == "state law requires the full notice" and not d.blocking
    assert blocking(diags) == []


def test_lint_after_hours_human_when_the_queue_fallback_hangs_up() -> None:
    text = edit(BASE, "    fallback: {default: nurse_line}\n", "    fallback: {default: goodbye}\n")
    start = text.index("  nurse_line:\n")
    end = text.index("  goodbye:\n")
    text = text[:start] + text[end:]
    tree, diags = check(text)
    hits = [d for d in diags if d.id == "L-AFTER-HOURS-HUMAN"]
    assert sorted(format_path(d.path) for d in hits) == ["human.target", "start"]
    d = only(diags, "L-AFTER-HOURS-HUMAN", "start")
    assert (d.line, d.column) == (line_of(text, "start: notice"), 1)
    assert "no path from the start reaches a person" in d.message
    assert "nurse line or answering service" in d.hint
    d = only(diags, "L-AFTER-HOURS-HUMAN", "human.target")
    assert (d.line, d.column) == (line_of(text, "target: front_desk"), 3)
    assert "'front_desk'" in d.message
    assert "fallback" in d.hint
    assert all(d.blocking for d in hits)
    assert set(ids(diags)) == {"L-AFTER-HOURS-HUMAN"}


def test_lint_emergency_first_menu_before_notice() -> None:
    text = edit(BASE, "start: notice\n", "start: hours\n")
    text = edit(text, "    next: hours\n", "    next: main\n")
    text = edit(text, "        next: main\n", "        next: notice\n")
    tree, diags = check(text)
    d = only(diags, "L-EMERGENCY-FIRST")
    assert d.blocking
    assert (d.line, d.column) == (line_of(text, "  main:"), 3)
    assert format_path(d.path) == "nodes.main"
    assert "'main'" in d.message and "'notice'" in d.message
    assert "route every path" in d.hint
    assert ids(diags) == ["L-EMERGENCY-FIRST"]


def test_lint_emergency_first_medical_tree_without_notice() -> None:
    text = edit(BASE, "emergency_notice: notice\n", "")
    tree, diags = check(text)
    d = only(diags, "L-EMERGENCY-FIRST")
    assert d.blocking
    assert format_path(d.path) == "(top level)"
    assert (d.line, d.column) == (1, 1)
    assert "emergency_notice" in d.message
    assert "hang up and dial the emergency number" in d.hint
    assert ids(diags) == ["L-EMERGENCY-FIRST"]


def test_non_medical_tree_needs_no_notice() -> None:
    text = edit(edit(BASE, "emergency_notice: notice\n", ""), "medical: true\n", "medical: false\n")
    tree, diags = check(text)
    assert tree is not None and diags == []


def test_lint_emergency_first_waived() -> None:
    text = edit(BASE, "emergency_notice: notice\n", "")
    text += "waivers:\n  - lint: L-EMERGENCY-FIRST\n    reason: pharmacy refill line, notice is in the greeting\n"
    tree, diags = check(text)
    assert tree is not None
    d = only(diags, "L-EMERGENCY-FIRST")
    assert d.waived == "pharmacy refill line, notice is in the greeting"
    assert not d.blocking
    assert blocking(diags) == []


def test_emergency_notice_must_be_say_or_play() -> None:
    text = edit(BASE, "emergency_notice: notice\n", "emergency_notice: main\n")
    _, diags = check(text)
    d = only(diags, "E-EMERGENCY-NOTICE")
    assert (d.line, d.column) == (line_of(text, "emergency_notice: main"), 1)
    assert format_path(d.path) == "emergency_notice"


# ---------------------------------------------------------------------------- all at once, and output


def test_all_errors_are_reported_at_once() -> None:
    text = edit(BASE, "    timeout: 5\n", "")
    text = edit(text, '    to: "+15550100200"\n', '    to: "911"\n')
    text = edit(text, "    hours: office\n", "    hours: offfice\n")
    tree, diags = check(text)
    assert tree is None
    assert only(diags, "E-MENU-NO-TIMEOUT").line == line_of(text, "  main:")
    assert only(diags, "E-EMERGENCY-DIAL").line == line_of(text, 'to: "911"')
    assert only(diags, "E-UNKNOWN-SCHEDULE").line == line_of(text, "hours: offfice")
    assert len(blocking(diags)) == 3


def test_errors_and_lints_are_reported_together() -> None:
    text = edit(NO_HUMAN_MENU, "    timeout: 5\n", "")
    text = edit(text, "emergency_notice: notice\n", "")
    text += "  orphan:\n    type: hangup\n"
    tree, diags = check(text)
    assert tree is None
    assert {"E-MENU-NO-TIMEOUT", "E-UNREACHABLE", "L-HUMAN-KEY", "L-EMERGENCY-FIRST"} <= set(ids(diags))


def test_diagnostics_are_ordered_and_located() -> None:
    text = edit(BASE, '      "1": front_desk\n', '      "1": front_dsk\n')
    text = edit(text, "    on_failure: goodbye\n", "    on_failure: goodby\n")
    _, diags = check(text)
    assert [format_path(d.path) for d in diags] == ["nodes.main.options.1", "nodes.nurse_line.on_failure"]
    assert [d.hint for d in diags] == ["did you mean 'front_desk'?", "did you mean 'goodbye'?"]
    assert all(d.file == FILE and d.line is not None and d.column is not None for d in diags)


def test_json_output() -> None:
    text = edit(BASE, '      "1": front_desk\n', '      "1": front_dsk\n')
    text += "waivers:\n  - lint: L-HUMAN-KEY\n    reason: nothing to waive in this tree\n"
    _, diags = check(text)
    payload: list[dict[str, Any]] = json.loads(json.dumps([d.to_json() for d in diags]))
    err = next(p for p in payload if p["id"] == "E-UNKNOWN-TARGET")
    assert err["file"] == FILE
    assert err["line"] == line_of(text, '"1": front_dsk')
    assert err["column"] == 7
    assert err["path"] == "nodes.main.options.1"
    assert err["blocking"] is True
    assert err["severity"] == "error"
    assert err["found"] == "front_dsk"
    assert err["hint"] == "did you mean 'front_desk'?"
    assert err["waived"] is None


def test_json_output_of_a_waived_lint() -> None:
    reason = "Recorded-announcement menu; callers reach a person through no_input."
    text = NO_HUMAN_MENU + f'waivers:\n  - lint: L-HUMAN-KEY\n    reason: "{reason}"\n'
    _, diags = check(text)
    data = json.loads(json.dumps(only(diags, "L-HUMAN-KEY").to_json()))
    assert data["severity"] == "lint"
    assert data["blocking"] is False
    assert data["waived"] == reason
    assert data["path"] == "nodes.main"
    assert data["line"] == line_of(text, "  main:")


# ---------------------------------------------------------------- review regressions


def test_many_errors_of_different_stages_in_one_run() -> None:
    text = edit(BASE, "timezone: America/New_York\n", "timezone: America/New_Yrok\n")
    text = edit(text, '    to: "+15550100200"\n', '    to: "9-1-1"\n')
    text = edit(text, '      "3": goodbye\n', '      "3": goodby\n      "12": goodbye\n')
    _, diags = check(text)
    ids = {d.id for d in diags}
    assert {"E-SCHEMA", "E-EMERGENCY-DIAL", "W-CHECKS-WAITING"} <= ids
    zone = next(d for d in diags if format_path(d.path) == "timezone")
    assert "did you mean 'America/New_York'" in zone.message


def test_bad_regex_in_a_branch_is_a_load_error() -> None:
    text = edit(BASE, "      - when: {open: office}\n", '      - when: {caller: {matches: "+1555.*"}}\n')
    tree, diags = check(text)
    assert tree is None
    d = next(d for d in diags if d.id == "E-SCHEMA")
    assert "not a valid regular expression" in d.message and d.line == line_of(text, "matches:")


def test_person_key_must_lead_to_a_person() -> None:
    text = edit(BASE, "  target: front_desk\n", "  target: main\n")
    _, diags = check(text)
    d = only(diags, "E-HUMAN-TARGET")
    assert "not to a person" in d.message and format_path(d.path) == "human.target"


def test_silent_caller_loop_is_an_error() -> None:
    text = edit(BASE, "    no_input: {next: human}\n", "    no_input: {next: main}\n")
    _, diags = check(text)
    assert any(d.id == "E-SILENT-LOOP" for d in diags), [d.render() for d in diags]


def test_time_to_person_walk_is_not_exponential() -> None:
    # 40 two-way branches in a row: 2**40 paths if walked one by one
    chain = "".join(f"""
  b{i}:
    type: branch
    cases:
      - when: {{open: office}}
        next: b{i + 1}
    default: b{i + 1}
""" for i in range(40))
    text = edit(BASE, "start: notice", "start: b0") + ""
    text = text.replace("nodes:\n", "nodes:\n" + chain.replace("next: b40", "next: notice").replace("default: b40", "default: notice"), 1)
    tree, diags = check(text)
    assert tree is not None, [d.render() for d in diags if d.blocking]


def test_tree_with_no_early_person_path_fires_the_lint() -> None:
    text = edit(BASE, "start: notice", "start: goodbye")
    _, diags = check(text)
    lint = next(d for d in diags if d.id == "L-TIME-TO-HUMAN")
    assert "no path from the start" in lint.message


def test_input_marked_not_sensitive_for_a_date_of_birth_warns() -> None:
    text = edit(BASE, "nodes:\n", """nodes:
  dob:
    type: input
    prompt: "Date of birth, then pound."
    variable: dob
    max_length: 8
    validate: {kind: date_of_birth}
    sensitive: false
    no_input: {next: human}
    invalid: {next: human}
    next: main
""")
    _, diags = check(text)
    d = next(d for d in diags if d.id == "W-INPUT-NOT-SENSITIVE")
    assert format_path(d.path) == "nodes.dob.sensitive"


@pytest.mark.parametrize("number", ["9911", "9,911", "+1911", "1-911", "+44999", "tel:112", "PJSIP/911@trunk"])
def test_emergency_numbers_behind_prefixes_are_caught(number: str) -> None:
    text = edit(BASE, '    to: "+15550100200"\n', f'    to: "{number}"\n')
    _, diags = check(text)
    assert any(d.id == "E-EMERGENCY-DIAL" for d in diags)


@pytest.mark.parametrize("number", ["PJSIP/101", "+15550100911", "988", "client:nurse"])
def test_extensions_and_long_numbers_are_not_emergencies(number: str) -> None:
    text = edit(BASE, '    to: "+15550100200"\n', f'    to: "{number}"\n')
    _, diags = check(text)
    assert not any(d.id == "E-EMERGENCY-DIAL" for d in diags)


def test_self_referencing_alias_is_a_diagnostic() -> None:
    tree, diags = check("name: &a {x: *a}\n")
    assert tree is None and diags[0].id == "E-YAML-SYNTAX" and "refers to itself" in diags[0].message


def test_time_to_person_counts_what_follows_a_queue_closed_by_its_hours() -> None:
    long_notice = "We are closed right now and nobody can take your call at this moment. " * 4
    text = edit(BASE, "    fallback: {default: nurse_line}\n", "    fallback: {default: closed_msg}\n")
    text = text.replace("  nurse_line:\n", f"""  closed_msg:
    type: say
    barge_in: false
    text: "{long_notice.strip()}"
    next: nurse_line
  nurse_line:
""", 1)
    text = edit(text, "start: notice", "start: front_desk")
    tree, diags = check(text)
    lint = next(d for d in diags if d.id == "L-TIME-TO-HUMAN")  # the queue alone would have said 0 s
    assert "front_desk -> closed_msg -> nurse_line" in lint.message
