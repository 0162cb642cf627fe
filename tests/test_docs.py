"""The documentation's examples must keep working: the complete tree in calltrees/README.md and its flow test."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ivr.flowtest import run_file
from ivr.tree import check_tree
from conftest import ROOT


def _example_blocks() -> list[str]:
    text = (ROOT / "calltrees" / "README.md").read_text(encoding="utf-8")
    section = text.split("## A complete small tree", 1)[1]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_readme_example_tree_validates_clean_and_its_flow_tests_pass(tmp_path: Path):
    tree_text, tests_text = _example_blocks()[:2]
    (tmp_path / "lakeside.yaml").write_text(tree_text, encoding="utf-8")
    (tmp_path / "lakeside.tests.yaml").write_text(tests_text, encoding="utf-8")
    shutil.copytree(ROOT / "recordings", tmp_path.parent / "recordings", dirs_exist_ok=True)
    tree, diags = check_tree(tmp_path / "lakeside.yaml")
    assert tree is not None and diags == [], "\n".join(d.render() for d in diags)
    claimed = re.search(r"worst-case time to a person: ([\d.]+) s", (ROOT / "calltrees" / "README.md").read_text())
    assert claimed and float(claimed.group(1)) == tree.metrics["seconds_to_human"]
    result = run_file(tmp_path / "lakeside.tests.yaml")
    assert result.passed, [(s.name, s.failures) for s in result.scenarios]
    assert len(result.scenarios) == 4


def test_the_sample_report_is_what_simulate_day_makes_today(tmp_path: Path, monkeypatch):
    """scenarios/samples/ holds the clinic Monday's report for people who want to see one without
    running anything; it must not drift from what the command makes. If this fails after a deliberate
    change, regenerate it with the command in scenarios/README.md ("A sample report")."""
    from typer.testing import CliRunner

    from ivr.cli import app

    monkeypatch.chdir(ROOT)
    html, csv = tmp_path / "r.html", tmp_path / "r.csv"
    res = CliRunner().invoke(app, ["simulate-day", "scenarios/clinic-monday.yaml", "--html", str(html), "--csv",
                                   str(csv), "--no-progress", "--format", "json"])
    assert res.exit_code == 0, res.output
    samples = ROOT / "scenarios" / "samples"
    assert csv.read_text(encoding="utf-8") == (samples / "clinic-monday.csv").read_text(encoding="utf-8")
    assert html.read_text(encoding="utf-8") == (samples / "clinic-monday.html").read_text(encoding="utf-8")
    assert (samples / "clinic-monday.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
