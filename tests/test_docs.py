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
