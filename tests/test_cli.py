"""The `ivr` command as a user runs it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

CLINIC = str(ROOT / "calltrees" / "clinic-main.yaml")


def ivr(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], capture_output=True, text=True, input=stdin,
                          cwd=ROOT, timeout=120)


def _clinic_seconds() -> float:
    from ivr.tree import load_tree

    return load_tree(CLINIC).metrics["seconds_to_human"]


def test_validate_sample_trees_pass_and_print_figures():
    r = ivr("validate", "calltrees/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clinic-main.yaml: OK" in r.stdout and "pharmacy.yaml: OK" in r.stdout
    secs = _clinic_seconds()
    assert 0 < secs <= 20
    assert f"time to a person: {secs:.1f} s worst case (bound 20 s)" in r.stdout
    assert "after hours, all queues closed: welcome -> " in r.stdout and "nurse_line" in r.stdout


def test_validate_broken_tree_exits_1_with_location(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    text = Path(CLINIC).read_text().replace('"4": nurse_menu', '"4": nurse_manu')
    bad.write_text(text)
    shutil.copy(ROOT / "recordings" / "chime.wav", tmp_path / "chime.wav")
    r = ivr("validate", str(bad))
    assert r.returncode == 1
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "nurse_manu" in ln)
    assert f"bad.yaml:{line}:" in r.stdout and "E-UNKNOWN-TARGET" in r.stdout and "did you mean 'nurse_menu'" in r.stdout


def test_validate_json(tmp_path: Path):
    r = ivr("validate", "--json", CLINIC)
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["files"][0]["metrics"]["seconds_to_human"] == _clinic_seconds()
    bad = tmp_path / "t.yaml"
    bad.write_text("name: x\nnodes: [1, 2\n")
    r = ivr("validate", "--json", str(bad))
    data = json.loads(r.stdout)
    (d,) = data["files"][0]["diagnostics"]
    assert r.returncode == 1 and d["id"] == "E-YAML-SYNTAX" and d["line"] == 3 and d["blocking"] is True


def test_simulate_scripted_transcript():
    r = ivr("simulate", CLINIC, "--keys", "2 04121980#", "--at", "2026-11-23 09:30", "--caller", "+15551234567")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "call from ***4567 at Mon 2026-11-23 09:30 EST" in out
    assert 'hears "Thank you for calling Riverside Family Clinic."' in out
    assert "presses 2" in out and "(sensitive)" in out and "04121980" not in out and "+15551234567" not in out
    assert re.search(r"=> record recorded at refill_record \(retention clinical-7y\), then hung up \(refill_recorded\) "
                     r"after \d+\.\d s$", out.strip().splitlines()[-1])


def test_simulate_json_trace():
    r = ivr("simulate", CLINIC, "--keys", "3 1", "--at", "2026-11-23 09:30", "--json")
    data = json.loads(r.stdout)
    assert data["outcome"]["kind"] == "queue" and data["outcome"]["queue"] == "billing"
    assert [e["node"] for e in data["trace"] if e["kind"] == "enter"][-1] == "billing_queue"
    assert all("t" in e and "at" in e for e in data["trace"])


def test_simulate_interactive_reads_keys_from_the_terminal():
    r = ivr("simulate", CLINIC, "--at", "2026-11-23 09:30", stdin="3\n.\n2\nh\n")
    assert r.returncode == 0, r.stderr
    assert "Interactive call" in r.stderr and "keys at main (menu" in r.stderr  # questions on stderr
    assert "keys at" not in r.stdout  # stdout stays a clean transcript
    assert "(no key: timeout)" in r.stdout and "presses 2" in r.stdout
    assert "caller hung up waiting in billing" in r.stdout


def test_simulate_spanish_and_queue_outcome_options():
    r = ivr("simulate", CLINIC, "--at", "2026-11-23 09:30", "--language", "es", "--keys", "5",
            "--queue-outcome", "records=no_agents")
    assert "Para citas" in r.stdout and "voicemail" in r.stdout


def test_simulate_refuses_bad_arguments():
    r = ivr("simulate", CLINIC, "--at", "next tuesday", "--keys", "1")
    assert r.returncode == 2 and "YYYY-MM-DD HH:MM" in r.stderr
    r = ivr("simulate", CLINIC, "--keys", "1", "-q", "scheduling")
    assert r.returncode == 2 and "QUEUE=OUTCOME" in r.stderr


def test_simulate_with_deployment_hooks_file():
    r = ivr("simulate", CLINIC, "--at", "2026-11-23 09:30", "--keys", "1 2 04121980# 1", "--hooks", "calltrees/hooks.py")
    assert "hung up (appointment_cancelled)" in r.stdout


def test_test_command_passes_on_samples_and_fails_on_a_wrong_expectation(tmp_path: Path):
    r = ivr("test", "calltrees/")
    assert r.returncode == 0, r.stdout
    assert " 0 failed" in r.stdout.strip().splitlines()[-1]
    suite = tmp_path / "x.tests.yaml"
    suite.write_text(f"""tree: {CLINIC}
defaults: {{at: "2026-11-23 09:30"}}
scenarios:
  - name: billing goes to billing
    keys: "3 1"
    expect: {{outcome: queue, queue: billing}}
  - name: wrong on purpose
    keys: "3 1"
    expect: {{outcome: transfer, hears: ["a phrase nobody says"]}}
""")
    r = ivr("test", str(suite))
    assert r.returncode == 1
    assert "PASS  billing goes to billing" in r.stdout and "FAIL  wrong on purpose" in r.stdout
    assert "outcome: expected transfer, got queue" in r.stdout and "a phrase nobody says" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_graph_mermaid_and_svg(tmp_path: Path):
    r = ivr("graph", CLINIC)
    assert r.returncode == 0 and r.stdout.startswith("flowchart TD")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz not installed (.ci/run installs it)")
    out = tmp_path / "clinic.svg"
    r = ivr("graph", CLINIC, "--format", "svg", "-o", str(out))
    assert r.returncode == 0 and out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_interactive_json_stays_valid_json():
    r = ivr("simulate", CLINIC, "--at", "2026-11-23 09:30", "--json", stdin="3\n1\nh\n")
    data = json.loads(r.stdout)
    assert data["outcome"]["queue"] == "billing"


def test_bad_key_script_and_missing_files_are_clear_errors(tmp_path: Path):
    r = ivr("simulate", CLINIC, "--keys", "O4121980#")
    assert r.returncode == 2 and "not valid" in r.stderr
    r = ivr("test", str(tmp_path / "nope.tests.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = ivr("validate", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr
