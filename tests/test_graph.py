"""The diagrams admins review: every node and way out is drawn, labelled and safely escaped."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.checks import human_enabled
from ivr.graph import GraphUnavailable, render
from ivr.schema import InputNode
from ivr.tree import CallTree, check_tree_text, load_tree

CLINIC = Path(__file__).parent.parent / "calltrees" / "clinic-main.yaml"

# Text chosen to break naive quoting in both Mermaid and DOT, plus Spanish that must survive.
NASTY_TREE = """\
name: 'Test "quoted" [tree] \\ back'
medical: false
timezone: America/New_York
start: ask
human: {target: desk}
nodes:
  ask:
    type: menu
    prompt: "Press 1."
    options:
      "1": {next: desk, label: 'Say "hi" [now] {x} <b> | # (y)'}
    timeout: 5
    no_input: {next: desk}
    invalid: {next: desk}
  desk:
    type: queue
    queue: desk
    fallback: {default: line}
  line:
    type: transfer
    to: "+15550100"
    label: 'Nurse "on call" [24/7] Clínica \\n'
    human: true
"""


@pytest.fixture(scope="module")
def clinic() -> CallTree:
    return load_tree(CLINIC)


@pytest.fixture
def nasty(tmp_path: Path) -> CallTree:
    tree, diags = check_tree_text(NASTY_TREE, "t.yaml", base_dir=tmp_path)
    assert tree is not None, "\n".join(str(d) for d in diags)
    assert not [d for d in diags if d.blocking], "\n".join(str(d) for d in diags)
    return tree


def _mermaid_lines(text: str) -> tuple[list[str], list[str]]:
    """Node and edge lines, asserting every line is one of the shapes render() writes."""
    node_re = re.compile(r'^ {4}[ns]_\w+(\(\(|\(\[|\[\[|\(|\{|\[)"([^"]*)"(\)\)|\]\)|\]\]|\)|\}|\])$')
    edge_re = re.compile(r'^ {4}[ns]_\w+ (-->|-\.->)(\|"([^"]*)"\|)? n_\w+$')
    nodes, edges = [], []
    for line in text.splitlines()[1:]:
        if node_re.match(line):
            nodes.append(line)
        elif edge_re.match(line):
            edges.append(line)
        else:
            assert re.match(r"^ {4}(%%|classDef |class |style )", line), f"unexpected mermaid line: {line!r}"
    return nodes, edges


def test_mermaid_has_every_node_and_marks_start_and_emergency(clinic: CallTree) -> None:
    text = render(clinic, "mermaid")
    assert text.startswith("flowchart TD\n")
    nodes, _ = _mermaid_lines(text)
    for nid in clinic.spec.nodes:
        assert any(line.startswith(f'    n_{nid}') and f'"{nid}<br/>' in line for line in nodes), nid
    assert "    s_start --> n_welcome" in text
    assert re.search(r"^    class n_emergency emergency$", text, re.M)
    assert "EMERGENCY NOTICE" in text
    assert "change_dob<br/>input<br/>dob PHI" in text  # sensitive input flagged
    assert "scheduling: scheduling#gt;=5" in text  # skills shown, > escaped
    assert re.search(r"^    class .*\bn_front_desk\b.* people$", text, re.M)
    assert re.search(r"^    class .*\bn_goodbye\b.* ends$", text, re.M)


def test_option_and_handler_edges_are_labelled(clinic: CallTree) -> None:
    text = render(clinic, "mermaid")
    assert '    n_main -->|"2"| n_refill_dob' in text
    assert '    n_main -->|"8 English, 9 Español"| n_main' in text  # option labels, non-ASCII kept
    assert '    n_main -->|"no input, invalid"| n_front_desk' in text  # `human` resolved to the target
    assert '    n_check_hours -->|"open: office"| n_main' in text
    assert '    n_check_hours -->|"default"| n_after_hours' in text
    assert '    n_front_desk -->|"closed"| n_after_hours_person' in text
    assert '    n_front_desk -->|"wait key 1"| n_front_desk_callback' in text
    assert '    n_scheduling_queue -->|"after call"| n_survey' in text
    assert '    n_nurse_line -->|"on failure"| n_answering_service' in text
    assert '    n_find_appointment -->|"ok"| n_appointment_found' in text
    assert '    n_find_appointment -->|"fallback"| n_appointment_not_found' in text
    dot = render(clinic, "dot")
    assert '"main" -> "refill_dob" [label="2"];' in dot


def test_person_key_is_one_dashed_edge_per_menu(clinic: CallTree) -> None:
    text = render(clinic, "mermaid")
    assert text.count('    n_main -.->|"0 person"| n_front_desk') == 1
    dashed = [line for line in text.splitlines() if "-.->" in line]
    sources = [line.split()[0] for line in dashed]
    assert len(sources) == len(set(sources))
    for nid, node in clinic.spec.nodes.items():
        if human_enabled(clinic, node):
            key = "*" if isinstance(node, InputNode) else "0"
            assert f'    n_{nid} -.->|"{key} person"| n_front_desk' in text, nid
    assert len(dashed) == sum(human_enabled(clinic, n) for n in clinic.spec.nodes.values())
    dot = render(clinic, "dot")
    assert re.search(r'^    "main" -> "front_desk" \[label="0 person", style=dashed', dot, re.M)


def test_quotes_and_brackets_are_escaped(nasty: CallTree) -> None:
    text = render(nasty, "mermaid")
    nodes, edges = _mermaid_lines(text)  # any unescaped quote would break these line shapes
    assert len(nodes) == 4 and len(edges) == 4
    for line in nodes + edges:
        inner = re.findall(r'"([^"]*)"', line)
        assert all(not set(s.replace("<br/>", "")) & set('"[]{}()<>|') for s in inner), line
    assert "Nurse #quot;on call#quot; #91;24/7#93; Clínica" in text
    assert '|"1 Say #quot;hi#quot; #91;now#93; #123;x#125; #lt;b#gt; #124; #35; #40;y#41;, no input, invalid"|' in text
    dot = render(nasty, "dot")
    assert dot.startswith('digraph "Test \\"quoted\\" [tree] \\\\ back" {')
    assert "rankdir=TB" in dot
    assert 'Nurse \\"on call\\" [24/7] Clínica \\\\n' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (CI installs graphviz)")
def test_dot_parses_with_graphviz(clinic: CallTree, nasty: CallTree) -> None:
    for tree in (clinic, nasty):
        out = subprocess.run(["dot", "-Tsvg"], input=render(tree, "dot").encode("utf-8"),
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr.decode()
        assert b"<svg" in out.stdout and not out.stderr.strip(), out.stderr.decode()
    svg = render(clinic, "svg")
    assert "<svg" in svg and "Español" in svg
    assert "Clínica" in render(nasty, "svg")


def test_svg_without_graphviz_says_what_to_do(clinic: CallTree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(GraphUnavailable, match="apt-get install graphviz") as info:
        render(clinic, "svg")
    assert "--format mermaid" in str(info.value)


def test_svg_failure_includes_stderr(clinic: CallTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'syntax error in line 3' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake))
    with pytest.raises(GraphUnavailable, match="syntax error in line 3"):
        render(clinic, "svg")


def test_unknown_format_is_rejected(clinic: CallTree) -> None:
    with pytest.raises(ValueError, match="mermaid"):
        render(clinic, "png")
