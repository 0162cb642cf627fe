"""The day simulator agrees with Erlang C and Erlang A on a single queue (issue 6).

The model is written as a clinic would write it (a tree whose start node is the queue, a
queues.yaml, a scenario: ``benchmarks/single_queue.py``) and run by the real interpreter and the
real router. Over independent replications, the 95 % Student-t interval of each KPI must contain
the exact value from ``routing.staffing`` (public formulas). A warm-up hour washes out the empty
start. The seeds are the scenario's defaults, not chosen to pass: with five checks at 95 % a
model error of a few percent would show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.single_queue import write_single_queue
from ivr.daysim.engine import DayModel
from ivr.daysim.runner import run_replications, summarize_day
from ivr.daysim.scenario import load_scenario
from routing.staffing import queue_metrics

AGENTS, CALLS_PER_HOUR, AHT, T = 8, 150.0, 150.0, 20.0  # 6.25 erlangs on 8 agents: 78 % occupancy


def _run(folder: Path, patience: float | None) -> tuple[dict, object]:
    scenario = write_single_queue(folder, agents=AGENTS, calls_per_hour=CALLS_PER_HOUR, aht=AHT, hours=8,
                                  patience=patience, t=T, warmup_minutes=60, replications=10, seed=3)
    model = DayModel(load_scenario(scenario))
    summary = summarize_day(model, run_replications(model, 10, jobs=1))
    exact = queue_metrics(AGENTS, CALLS_PER_HOUR / 3600, AHT, T, patience)
    return summary.groups["queue"]["main"], exact


def _within(est, value: float, what: str) -> None:
    assert est.n == 10, f"{what}: only {est.n} replications defined it"
    assert est.low is not None and est.high is not None
    assert est.low <= value <= est.high, f"{what}: exact {value:.4f} outside [{est.low:.4f}, {est.high:.4f}]"


@pytest.fixture(scope="module")
def erlang_c_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, object]:
    return _run(tmp_path_factory.mktemp("erlang-c"), None)


def test_single_queue_agrees_with_erlang_c(erlang_c_run: tuple[dict, object]):
    q, exact = erlang_c_run
    assert q["abandoned"].mean == 0  # nobody hangs up without patience
    _within(q["asa"], exact.asa, "ASA")
    _within(q["service_level"], exact.service_level, "service level")
    _within(q["avg_wait"], exact.mean_wait_all, "mean wait")
    # occupancy is per hour of the day and overall (not per queue); every answered call waited <= its wait
    assert q["answered"].mean == q["offered"].mean


def test_single_queue_agrees_with_erlang_a(tmp_path: Path):
    q, exact = _run(tmp_path, 120.0)
    _within(q["abandonment_rate"], exact.abandon_rate, "abandonment")
    _within(q["asa"], exact.asa, "ASA")
    _within(q["service_level"], exact.service_level_excl_short_abandons, "service level (short abandons excluded)")
    _within(q["service_level_strict"], exact.service_level, "service level (strict)")
    _within(q["avg_wait"], exact.mean_wait_all, "mean time in queue")


def test_an_erlang_mismatch_would_be_caught(erlang_c_run: tuple[dict, object]):
    """The intervals are tight enough to matter: one agent fewer in the formula is far outside them."""
    q, _ = erlang_c_run
    wrong = queue_metrics(AGENTS - 1, CALLS_PER_HOUR / 3600, AHT, T)
    assert not (q["asa"].low <= wrong.asa <= q["asa"].high)
    assert not (q["service_level"].low <= wrong.service_level <= q["service_level"].high)


@pytest.mark.parametrize("bad", [{"hours": 23}])
def test_the_model_writer_refuses_a_day_that_cannot_drain(tmp_path: Path, bad: dict):
    with pytest.raises(ValueError, match="drain"):
        write_single_queue(tmp_path, agents=2, calls_per_hour=10, aht=60, **bad)
