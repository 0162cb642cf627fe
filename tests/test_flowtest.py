"""Flow-test files: mistakes in the tests themselves are reported, not passed silently."""

from __future__ import annotations

from pathlib import Path

from ivr.flowtest import run_file
from conftest import ROOT

CLINIC = ROOT / "calltrees" / "clinic-main.yaml"


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "x.tests.yaml"
    p.write_text(f"tree: {CLINIC}\ndefaults: {{at: \"2026-11-23 09:30\"}}\n" + body)
    return p


def test_expect_naming_a_node_the_tree_lacks_fails(tmp_path: Path):
    r = run_file(write(tmp_path, """scenarios:
  - name: typo in not_nodes
    keys: "3 1"
    expect: {outcome: queue, not_nodes: [billing_queu]}
"""))
    (sc,) = r.scenarios
    assert not sc.passed and "billing_queu" in sc.failures[0] and "x.tests.yaml:6" in sc.failures[0]


def test_bad_queue_outcome_is_a_load_error(tmp_path: Path):
    r = run_file(write(tmp_path, """scenarios:
  - name: bad outcome
    keys: "3 1"
    queue_outcomes: {billing: maybe}
    expect: {outcome: queue}
"""))
    assert not r.passed and r.scenarios == []
    (d,) = [d for d in r.diagnostics if d.blocking]
    assert d.line == 6 and "path" not in d.message and "billing" in str(d.path)


def test_unknown_expect_field_suggests_the_right_one(tmp_path: Path):
    r = run_file(write(tmp_path, """scenarios:
  - name: typo
    keys: "3 1"
    expect: {outcom: queue}
"""))
    (d,) = r.diagnostics
    assert d.id == "E-UNKNOWN-FIELD" and d.hint == "did you mean 'outcome'?"


def test_bad_key_script_in_a_scenario(tmp_path: Path):
    r = run_file(write(tmp_path, """scenarios:
  - name: letter O
    keys: "O4121980#"
    expect: {outcome: queue}
"""))
    (sc,) = r.scenarios
    assert not sc.passed and "not valid" in sc.failures[0]


def test_missing_file_is_a_diagnostic(tmp_path: Path):
    r = run_file(tmp_path / "nope.tests.yaml")
    assert not r.passed and r.diagnostics[0].id == "E-FILE"
