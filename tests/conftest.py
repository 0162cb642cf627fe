"""Shared helpers: build trees from YAML text, drive calls with explicit times."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ivr.tree import CallTree, check_tree_text

ROOT = Path(__file__).resolve().parent.parent
NY = ZoneInfo("America/New_York")


def build_tree(text: str, base_dir: Path | None = None, *, allow_lints: bool = False) -> CallTree:
    """A tree from YAML text; fails the test with every diagnostic rendered if it does not load."""
    tree, diags = check_tree_text(text, "test.yaml", base_dir=base_dir or ROOT / "calltrees")
    blocking = [d for d in diags if d.blocking and (not allow_lints or d.severity.value == "error")]
    if tree is None or blocking:
        pytest.fail("tree did not load:\n" + "\n".join(d.render() for d in diags))
    return tree


class Clock:
    """Fake time for driving the interpreter: ``clock(5)`` is 5 s after the start."""

    def __init__(self, start: datetime) -> None:
        self.start = start

    def __call__(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 9, 30, tzinfo=NY))  # a Monday, office open
