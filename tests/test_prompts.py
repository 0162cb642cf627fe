"""Prompt audio for Asterisk: every spoken text of the sample trees, the missing recordings, the manifests.

The completeness tests run simulated calls through the real interpreter and check that every text it
asks the telephony side to say is in ``prompt_texts`` (static texts by exact text and key, templates by
pattern), and that the scripts reach every listed text, so the list is neither short nor padded.
"""

from __future__ import annotations

import json
import re
import struct
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from ivr import commands as C
from ivr.ari.media import item_media, prompt_key
from ivr.cli_prompts import app
from ivr.prompts import (
    MANIFEST,
    TEMPLATE_NOTE,
    audio_file,
    audio_problem,
    manifest_rows,
    missing,
    prompt_texts,
    read_manifest,
    render_manifest,
    unplayable,
    write_manifests,
)
from ivr.simulate import CallSimulator, HookTimeout, SimOptions
from ivr.tree import CallTree, load_tree
from conftest import NY, ROOT, build_tree

CLINIC_FILE = ROOT / "calltrees" / "clinic-main.yaml"
PHARMACY_FILE = ROOT / "calltrees" / "pharmacy.yaml"
CHICAGO = ZoneInfo("America/Chicago")
CLINIC_OPEN = datetime(2026, 11, 23, 9, 30, tzinfo=NY)  # Monday
CLINIC_CLOSED = datetime(2026, 11, 22, 22, 0, tzinfo=NY)  # Sunday night
PHARMACY_OPEN = datetime(2026, 11, 23, 10, 0, tzinfo=CHICAGO)
PHARMACY_CLOSED = datetime(2026, 11, 22, 12, 0, tzinfo=CHICAGO)  # Sunday: closed all day
APPOINTMENT = {"date": "December 3 at 10 AM", "id": "A-1001"}

runner = CliRunner()


@pytest.fixture(scope="module")
def clinic() -> CallTree:
    return load_tree(CLINIC_FILE)


@pytest.fixture(scope="module")
def pharmacy() -> CallTree:
    return load_tree(PHARMACY_FILE)


def wav(path: Path, *, rate: int = 8000, channels: int = 1, bits: int = 16, fmt: int = 1, seconds: float = 0.2) -> Path:
    """A WAV file written byte by byte (so a wrong format can be written too)."""
    frames = int(rate * seconds)
    block = channels * bits // 8
    data = b"\x00" * frames * block
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, fmt, channels, rate, rate * block, block, bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + b"data" + struct.pack("<I", len(data)) + data)
    return path


# ---------------------------------------------------------------------- the list


def test_clinic_lists_both_languages_with_one_entry_per_text(clinic):
    prompts = prompt_texts(clinic)
    by_lang = {lang: [p for p in prompts if p.language == lang] for lang in ("en", "es")}
    assert {p.language for p in prompts} == {"en", "es"}
    assert len(by_lang["en"]) == len(by_lang["es"]) == 25  # the tree is fully translated
    assert len({(p.language, p.text) for p in prompts}) == len(prompts)  # deduplicated by (language, text)
    en = {p.text: p for p in by_lang["en"]}
    es = {p.text: p for p in by_lang["es"]}
    assert en["Thank you for calling Riverside Family Clinic."].node == "greeting"
    assert es["Gracias por llamar a la Clínica Familiar Riverside."].node == "greeting"
    # the emergency notice, a record prompt, a survey, a callback, handler prompts and a hangup goodbye
    assert en["If this is an emergency, hang up and dial 9 1 1. In a mental health crisis, call or text 9 8 8. "
              "Emergencias: marque el 9 1 1."].node == "emergency"
    assert any(p.node == "refill_record" and p.text.startswith("After the tone") for p in by_lang["en"])
    assert any(p.node == "survey" and p.text.startswith("Antes de colgar") for p in by_lang["es"])
    assert en["Sorry, I did not hear a choice."].node == "main"
    assert en["Thank you for calling Riverside Family Clinic. Goodbye."].node == "goodbye"
    # a text shared by several nodes is one recording, listing every node
    shared = en["Sorry, that is not an option."]
    assert shared.node == "main" and shared.nodes == ("main", "appointments")
    assert es["Esa fecha no es válida."].nodes == ("change_dob", "refill_dob")
    # SMS text is sent, not spoken
    assert not any("riverside.example" in p.text for p in prompts)
    assert not any(p.node in ("cancelled", "reschedule_link") for p in prompts)


def test_pharmacy_lists_its_single_language(pharmacy):
    prompts = prompt_texts(pharmacy)
    assert {p.language for p in prompts} == {"en"} and len(prompts) == 18
    assert not any(p.is_template for p in prompts)
    assert [p.node for p in prompts[:3]] == ["greeting", "emergency", "main"]  # tree order
    assert not any("Bring a photo ID" in p.text for p in prompts)  # the SMS


def test_keys_are_the_engines_file_names(clinic, pharmacy):
    for tree in (clinic, pharmacy):
        for p in prompt_texts(tree):
            if p.is_template:
                continue
            assert p.key == prompt_key(p.text, p.language)
            assert p.filename == f"{p.key}.wav"
            assert p.path("/x") == Path("/x/prompts") / p.language / f"{p.key}.wav"
            # what the Asterisk adapter asks for when the interpreter says this text
            assert item_media(C.SayItem(p.text, p.language)) == [f"sound:ivr/{p.key}"]
    # the same text in two languages is two files
    star = tiny("[en, es]", "{en: Hola amigo., es: Hola amigo.}", "{en: Bye., es: Adiós.}")
    keys = {p.language: p.key for p in prompt_texts(star) if p.text == "Hola amigo."}
    assert keys["en"] != keys["es"] and keys["es"] == prompt_key("Hola amigo.", "es")


def test_templates_are_marked_and_have_no_file(clinic):
    templates = [p for p in prompt_texts(clinic) if p.is_template]
    assert [(p.language, p.node) for p in templates] == [("en", "appointment_found"), ("es", "appointment_found")]
    for p in templates:
        assert p.key is None and p.filename is None and p.path("recordings") is None
        assert p.variables == ("appointment_date",) and "{appointment_date}" in p.text
    assert "say-number" in TEMPLATE_NOTE and "per-call speech synthesis" in TEMPLATE_NOTE


# ---------------------------------------------------------------------- complete: what the interpreter says


def _says(tree: CallTree, scenarios: list[tuple[str, dict]]) -> list[C.SayItem]:
    """Every SayItem the interpreter produces over the scenarios (read from its commands, not the transcript)."""
    sim = CallSimulator(tree)
    seen: list[C.SayItem] = []
    start, step = sim.interp.start, sim.interp.step

    def collect(cmds):
        seen.extend(i for c in cmds if isinstance(c, C.PlayPrompt) for i in c.items if isinstance(i, C.SayItem))

    def rec_start(ev):
        state, cmds = start(ev)
        collect(cmds)
        return state, cmds

    def rec_step(state, ev):
        state, cmds = step(state, ev)
        collect(cmds)
        return state, cmds

    sim.interp.start, sim.interp.step = rec_start, rec_step
    for keys, kw in scenarios:
        sim.run(SimOptions(keys=keys.split(), **kw), record_lines=False)
    return seen


def _template_pattern(text: str) -> re.Pattern[str]:
    parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", text)
    return re.compile("(.*?)".join(re.escape(p) for p in parts), re.DOTALL)


def _check_complete(tree: CallTree, scenarios: list[tuple[str, dict]]) -> None:
    prompts = prompt_texts(tree)
    static = {(p.language, p.text): p for p in prompts if not p.is_template}
    templates = [p for p in prompts if p.is_template]
    heard: set[tuple[str, str]] = set()
    for item in _says(tree, scenarios):
        p = static.get((item.language, item.text))
        if p is None:
            p = next((t for t in templates if t.language == item.language
                      and _template_pattern(t.text).fullmatch(item.text)), None)
            assert p is not None, f"the interpreter said {item.text!r} ({item.language}), which prompt_texts lacks"
            assert APPOINTMENT["date"] in item.text  # rendered per call: no file could hold it
        else:
            assert item_media(item) == [f"sound:ivr/{p.key}"]
        heard.add((p.language, p.text))
    unheard = {(p.language, p.node, p.text) for p in prompts if (p.language, p.text) not in heard}
    assert not unheard, f"listed but never spoken in the scenarios: {sorted(unheard)}"


def _clinic_scenarios() -> list[tuple[str, dict]]:
    hooks = {"find_appointment": APPOINTMENT, "cancel_appointment": {"status": "cancelled"}}

    def no_answer(args):
        raise HookTimeout

    opened = [
        ("1 1 4", {"queue_outcomes": {"scheduling": "answered"}}),  # agent, then the survey and the goodbye
        ("1 2 04121980# 1", {"hooks": hooks}),  # cancel: the template, then the goodbye
        ("1 2 04121980# 2", {"hooks": hooks}),  # reschedule link
        ("1 2 04121980#", {"hooks": {"find_appointment": no_answer}}),
        ("1 2 13452000# 13452000# 13452000#", {}),  # an impossible date three times
        ("1 7 7", {}),
        ("1 1 1", {}),  # wait key in the scheduling queue: callback
        ("1 1 1", {"caller": None}),  # callback without a number: voicemail, goodbye
        ("2 04121980#", {}),  # refill recording
        ("3 1", {"queue_outcomes": {"billing": "no_agents"}}),
        ("3 2", {}),
        ("4 1", {}),
        ("4 2", {"queue_outcomes": {"nurse_triage": "timeout"}}),
        ("5", {}),
        (". . .", {}),
        ("7 7 7", {}),
        ("0 1", {}),  # front desk, then its callback key
    ]
    closed = [("1", {}), ("3", {}), ("0", {}), ("2 04121980#", {}),
              ("1", {"failing_transfers": {"nurse_line", "answering_service"}})]
    out = []
    for lang in ("en", "es"):
        out += [(k, {**kw, "at": CLINIC_OPEN, "language": lang}) for k, kw in opened]
        out += [(k, {**kw, "at": CLINIC_CLOSED, "language": lang}) for k, kw in closed]
    out.append(("9 1 1", {"at": CLINIC_OPEN}))  # switching language at the menu
    return out


def test_every_text_the_clinic_interpreter_says_is_listed(clinic):
    _check_complete(clinic, _clinic_scenarios())


def test_every_text_the_pharmacy_interpreter_says_is_listed(pharmacy):
    def status(value):
        return {"hooks": {"refill_status": {"status": value}}, "at": PHARMACY_OPEN}

    scenarios = [
        ("1 1234567# 04121980#", status("ready")),
        ("1 1234567# 04121980#", status("pending")),
        ("1 1234567# 04121980#", status("unknown")),
        ("1 . . .", {"at": PHARMACY_OPEN}),
        ("1 12# 12# 12#", {"at": PHARMACY_OPEN}),
        ("1 1234567# 13452000# 13452000# 13452000#", {"at": PHARMACY_OPEN}),
        ("2 1", {"at": PHARMACY_OPEN}),
        ("2 1", {"at": PHARMACY_OPEN, "caller": None}),
        (". . .", {"at": PHARMACY_OPEN}),
        ("7 7 7", {"at": PHARMACY_OPEN}),
        ("0", {"at": PHARMACY_CLOSED}),
    ]
    _check_complete(pharmacy, scenarios)


# ---------------------------------------------------------------------- missing files


def test_missing_finds_the_recorded_file_present_and_the_rest_absent(pharmacy, tmp_path):
    prompts = prompt_texts(pharmacy)
    assert missing(pharmacy, tmp_path) == prompts  # nothing recorded yet
    greeting, emergency = prompts[0], prompts[1]
    wav(tmp_path / "prompts" / "en" / f"{greeting.key}.wav")
    wav(tmp_path / "prompts" / "en" / f"{emergency.key}.wav16", rate=16000)  # 16 kHz audio, as Asterisk names it
    wav(tmp_path / "prompts" / "es" / f"{prompts[2].key}.wav")  # the right key in the wrong language does not count
    absent = missing(pharmacy, tmp_path)
    assert greeting not in absent and emergency not in absent
    assert absent == prompts[2:]
    assert audio_file(tmp_path, greeting) == tmp_path / "prompts" / "en" / f"{greeting.key}.wav"
    assert audio_file(tmp_path, prompts[2]) is None
    assert unplayable(pharmacy, tmp_path) == []
    # the tree's own folder is the default
    assert pharmacy.recordings_dir == ROOT / "recordings"
    assert missing(pharmacy) == missing(pharmacy, ROOT / "recordings")


def test_templates_are_never_missing(clinic, tmp_path):
    absent = missing(clinic, tmp_path)
    assert len(absent) == 48 and not any(p.is_template for p in absent)


def test_files_asterisk_cannot_play_are_reported(pharmacy, tmp_path):
    p = prompt_texts(pharmacy)[0]
    f = wav(tmp_path / "prompts" / "en" / f"{p.key}.wav", rate=16000)
    assert p not in missing(pharmacy, tmp_path)  # present...
    [(bad, path, why)] = unplayable(pharmacy, tmp_path)  # ...but Asterisk's .wav reader wants 8 kHz
    assert bad == p and path == f and "16000 Hz" in why and ".wav16" in why
    assert "mono" in audio_problem(wav(tmp_path / "stereo.wav", channels=2))
    assert "16-bit" in audio_problem(wav(tmp_path / "8bit.wav", bits=8))
    assert "PCM" in audio_problem(wav(tmp_path / "ext.wav", fmt=0xFFFE))
    (tmp_path / "junk.wav").write_bytes(b"ID3 not a wav")
    assert "not a WAV" in audio_problem(tmp_path / "junk.wav")
    assert audio_problem(ROOT / "recordings" / "chime.wav") is None
    assert audio_problem(wav(tmp_path / "wide.wav16", rate=16000)) is None


# ---------------------------------------------------------------------- manifest


def test_manifest_round_trip_merges_trees_per_language(clinic, pharmacy, tmp_path):
    written = write_manifests([clinic, pharmacy], tmp_path)
    assert written == {"en": tmp_path / "prompts" / "en" / MANIFEST, "es": tmp_path / "prompts" / "es" / MANIFEST}
    assert written["en"].read_text(encoding="utf-8").splitlines()[0] == "key\tnode\ttext"
    prompts = prompt_texts(clinic) + prompt_texts(pharmacy)
    for lang, path in written.items():
        rows = read_manifest(path)
        assert rows == manifest_rows(prompts, lang)
        expected = {p.key for p in prompts if p.language == lang and not p.is_template}
        assert [r.key for r in rows] == list(dict.fromkeys(r.key for r in rows))  # one row per key
        assert {r.key for r in rows} == expected
        for r in rows:
            assert r.key == prompt_key(r.text, lang)
            assert "{" not in r.text  # templates cannot be recorded: not in the manifest
    en = {r.text: r for r in read_manifest(written["en"])}
    assert en["That date was not valid."].node == "change_dob,refill_dob,rx_dob"  # both trees, one recording
    assert en["Thank you for calling the Riverside Pharmacy refill line."].node == "greeting"
    assert len(read_manifest(written["es"])) == 24
    # rewriting replaces the file (no stale rows, no temporary files left behind)
    write_manifests(pharmacy, tmp_path)
    assert {r.key for r in read_manifest(written["en"])} == {p.key for p in prompt_texts(pharmacy)}
    assert sorted(f.name for f in (tmp_path / "prompts" / "en").iterdir()) == [MANIFEST]


_TINY = """
name: tiny
medical: false
languages: LANGS
timezone: UTC
start: hello
human: {target: desk}
nodes:
  hello: {type: say, text: HELLO, next: desk}
  desk: {type: transfer, to: "+15550100200", human: true, on_failure: bye}
  bye: {type: hangup, prompt: BYE}
"""


def tiny(langs: str, hello: str, bye: str = '"Goodbye {caller}."') -> CallTree:
    return build_tree(_TINY.replace("LANGS", langs).replace("HELLO", hello).replace("BYE", bye), allow_lints=True)


def test_manifest_escapes_tabs_newlines_and_backslashes(tmp_path):
    text = '"Line one,\\tcolumn.\\nLine two \\\\ done."'
    tree = tiny("[en]", text)
    [p] = [p for p in prompt_texts(tree) if not p.is_template]
    assert p.text == "Line one,\tcolumn.\nLine two \\ done."
    path = write_manifests(tree, tmp_path)["en"]
    raw = path.read_text(encoding="utf-8")
    assert raw.count("\n") == 2 and raw.splitlines()[1].count("\t") == 2
    assert read_manifest(path)[0].text == p.text
    assert render_manifest(read_manifest(path)) == raw


# ---------------------------------------------------------------------- the command line


def test_cli_list_marks_templates_and_explains_them():
    r = runner.invoke(app, ["list", str(CLINIC_FILE), str(PHARMACY_FILE)])
    assert r.exit_code == 0, r.output
    assert f"{CLINIC_FILE}: 50 spoken text(s) (en 25, es 25), 2 template(s)" in r.output
    assert f"{PHARMACY_FILE}: 18 spoken text(s) (en 18)" in r.output
    greeting = prompt_key("Thank you for calling Riverside Family Clinic.", "en")
    line = next(ln for ln in r.output.splitlines() if greeting in ln)
    assert line.split()[:3] == ["en", greeting, "greeting"]
    tpl = [ln for ln in r.output.splitlines() if "TEMPLATE {appointment_date}" in ln]
    assert len(tpl) == 2 and all("appointment_found" in ln for ln in tpl)
    assert "per-call speech synthesis" in r.output and "say-number" in r.output


def test_cli_list_language_filter_and_json():
    r = runner.invoke(app, ["list", str(CLINIC_FILE), "--language", "es", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    [entry] = data["files"]
    assert entry["languages"] == ["en", "es"] and len(entry["prompts"]) == 25
    assert {p["language"] for p in entry["prompts"]} == {"es"}
    tpl = [p for p in entry["prompts"] if p["is_template"]]
    assert len(tpl) == 1 and tpl[0]["key"] is None and tpl[0]["audio"] is None
    assert tpl[0]["variables"] == ["appointment_date"]
    static = next(p for p in entry["prompts"] if p["node"] == "greeting")
    assert static["audio"] == f"prompts/es/{prompt_key(static['text'], 'es')}.wav"
    assert data["template_note"] == TEMPLATE_NOTE
    r = runner.invoke(app, ["list", str(PHARMACY_FILE), "--language", "es"])
    assert r.exit_code == 2 and "no tree speaks 'es'" in r.output
    r = runner.invoke(app, ["list", str(ROOT / "calltrees"), "--language", "es"])
    assert r.exit_code == 0 and f"{PHARMACY_FILE}: does not speak es" in r.output
    assert f"{CLINIC_FILE}: 25 spoken text(s) (es 25), 1 template(s)" in r.output


def test_cli_missing_exits_1_until_every_text_is_recorded(pharmacy, tmp_path):
    r = runner.invoke(app, ["missing", str(PHARMACY_FILE), "--recordings", str(tmp_path)])
    assert r.exit_code == 1
    assert "18 of 18 recordable text(s) have no audio" in r.output
    prompts = prompt_texts(pharmacy)
    for p in prompts[:-1]:
        wav(p.path(tmp_path))
    r = runner.invoke(app, ["missing", str(PHARMACY_FILE), "--recordings", str(tmp_path)])
    assert r.exit_code == 1 and "1 of 18" in r.output
    listed = [ln for ln in r.output.splitlines() if ln.strip().startswith("missing")]
    assert len(listed) == 1 and prompts[-1].key in listed[0] and "voicemail_goodbye" in listed[0]
    wav(prompts[-1].path(tmp_path), rate=16000)  # present but unplayable as .wav
    r = runner.invoke(app, ["missing", str(PHARMACY_FILE), "--recordings", str(tmp_path)])
    assert r.exit_code == 1 and "cannot play" in r.output and "16000 Hz" in r.output
    wav(prompts[-1].path(tmp_path))
    r = runner.invoke(app, ["missing", str(PHARMACY_FILE), "--recordings", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "OK: all 18 recordable text(s) have audio" in r.output


def test_cli_missing_skips_templates(clinic, tmp_path):
    for p in prompt_texts(clinic):
        if not p.is_template:
            wav(p.path(tmp_path))
    r = runner.invoke(app, ["missing", str(CLINIC_FILE), "--recordings", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "all 48 recordable text(s) have audio" in r.output and "2 template(s) skipped" in r.output


def test_cli_manifest_writes_one_file_per_language(tmp_path):
    r = runner.invoke(app, ["manifest", str(ROOT / "calltrees"), "--recordings", str(tmp_path)])
    assert r.exit_code == 0, r.output
    en, es = tmp_path / "prompts" / "en" / MANIFEST, tmp_path / "prompts" / "es" / MANIFEST
    assert {r.key for r in read_manifest(en)} == {p.key for t in (CLINIC_FILE, PHARMACY_FILE)
                                                 for p in prompt_texts(load_tree(t))
                                                 if p.language == "en" and p.key}
    assert f"{en}: {len(read_manifest(en))} text(s) to record" in r.output
    assert f"{es}: 24 text(s) to record" in r.output
    assert "2 template text(s) left out" in r.output


def test_cli_refuses_a_broken_tree(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntimezone: UTC\nstart: nowhere\nhuman: {target: nowhere}\nnodes: {}\n", encoding="utf-8")
    r = runner.invoke(app, ["list", str(bad)])
    assert r.exit_code == 1 and "does not load" in r.output
    r = runner.invoke(app, ["missing", str(tmp_path / "absent.yaml")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_readme_examples_use_real_keys(clinic):
    readme = (ROOT / "recordings" / "README.md").read_text(encoding="utf-8")
    keys = {p.key for p in prompt_texts(clinic)}
    for lang, text in (("en", "Thank you for calling Riverside Family Clinic."),
                       ("es", "Gracias por llamar a la Clínica Familiar Riverside.")):
        key = prompt_key(text, lang)
        assert key in keys and key in readme
