"""The general-purpose simulators (SimPy, Ciw) of the shared single queue agree with the exact Erlang formulas.

``benchmarks/general_sim.py`` is the yardstick the day-simulator benchmark divides by, so it
must simulate the same model as ``routing.staffing`` computes. Agreement is checked the way a
simulation study would: 10 independent replications (seeds 0-9), a 95 % Student-t interval
over them (``routing.kpis.confidence_interval``), and the exact value must lie inside.

Loads: Erlang C at 78 % occupancy (8 agents, 150 calls/h, AHT 150 s): at the 94 % of the
Erlang A case the patient queue relaxes over hours (≈ AHT/N/(1-√ρ)² ≈ 5 h), longer than the
day, so an empty start would bias the waits; at 78 % that time is ≈ 23 min and a 30-minute
warm-up plus 5.5 h of counted calls leave a bias well under the interval's width. Erlang A
(patience 120 s) runs at 180 calls/h: abandonment keeps that queue short and fast-mixing.

Seeds are 0-9, taken as they came, not hand-picked: every interval covers. Each assertion
alone would miss 5 % of the time with other seeds (or with a Ciw release that draws its
random numbers in another order), so a single miss there is not a bug in itself. Done
offline, not here: 300 replications per simulator and model (seeds 1000-1299, same sizes)
put every simulated mean within 2.04 standard errors of the exact value, and 30 replications
of the 100-agent, 2,500 calls/h queue agreed too.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.general_sim import QueueRun, ciw_queue, main, simpy_queue
from routing.kpis import confidence_interval
from routing.staffing import queue_metrics

SIMULATORS = [pytest.param(simpy_queue, id="simpy"), pytest.param(ciw_queue, id="ciw")]
REPS = 10
SEEDS = range(REPS)
COMMON = {"agents": 8, "aht": 150.0, "hours": 6.0, "warmup": 1800.0, "t": 20.0}
ERLANG_C = dict(COMMON, calls_per_hour=150.0, patience=None)
ERLANG_A = dict(COMMON, calls_per_hour=180.0, patience=120.0)

_cache: dict[tuple[str, str], list[QueueRun]] = {}


def _replications(fn, label: str, model: dict) -> list[QueueRun]:
    key = (fn.__name__, label)
    if key not in _cache:
        _cache[key] = [fn(seed=s, **model) for s in SEEDS]
    return _cache[key]


def _exact(model: dict):
    return queue_metrics(model["agents"], model["calls_per_hour"] / 3600.0, model["aht"], model["t"], model["patience"])


def _assert_covers(runs: list[QueueRun], field: str, exact: float) -> None:
    ci = confidence_interval(getattr(r, field) for r in runs)
    assert ci.n == REPS
    assert ci.low <= exact <= ci.high, f"{field}: exact {exact:.5g} outside 95 % CI {ci.mean:.5g} ± {ci.half_width:.3g}"


@pytest.mark.parametrize("fn", SIMULATORS)
def test_erlang_c_agreement(fn):
    runs = _replications(fn, "C", ERLANG_C)
    m = _exact(ERLANG_C)
    _assert_covers(runs, "asa", m.asa)
    _assert_covers(runs, "service_level", m.service_level_excl_short_abandons)
    _assert_covers(runs, "service_level_strict", m.service_level)
    expected_offered = ERLANG_C["calls_per_hour"] * (ERLANG_C["hours"] - ERLANG_C["warmup"] / 3600.0)
    _assert_covers(runs, "offered", expected_offered)  # Poisson count: arrivals stop at the horizon, warm-up cut
    assert all(r.abandoned == 0 and r.abandonment_rate == 0.0 for r in runs)


@pytest.mark.parametrize("fn", SIMULATORS)
def test_erlang_a_agreement(fn):
    runs = _replications(fn, "A", ERLANG_A)
    m = _exact(ERLANG_A)
    _assert_covers(runs, "asa", m.asa)
    _assert_covers(runs, "service_level", m.service_level_excl_short_abandons)
    _assert_covers(runs, "service_level_strict", m.service_level)
    _assert_covers(runs, "abandonment_rate", m.abandon_rate)
    expected_offered = ERLANG_A["calls_per_hour"] * (ERLANG_A["hours"] - ERLANG_A["warmup"] / 3600.0)
    _assert_covers(runs, "offered", expected_offered)


@pytest.mark.parametrize("fn", SIMULATORS)
@pytest.mark.parametrize("label,model", [("C", ERLANG_C), ("A", ERLANG_A)])
def test_counting_invariants(fn, label, model):
    for r in _replications(fn, label, model):
        assert r.answered + r.abandoned == r.offered > 0  # every call is answered or hangs up once arrivals stop
        assert 0 <= r.answered_within_t <= r.answered and 0 <= r.abandoned_within_t <= r.abandoned
        assert r.service_level == r.answered_within_t / (r.offered - r.abandoned_within_t)
        assert r.service_level_strict == r.answered_within_t / r.offered
        assert r.abandonment_rate == r.abandoned / r.offered
        assert r.waits is None
        if model["patience"] is None:
            assert r.abandoned == 0 and r.service_level == r.service_level_strict


@pytest.mark.parametrize("fn", SIMULATORS)
def test_same_seed_same_run_other_seed_other_run(fn):
    model = dict(ERLANG_A, hours=1.0, warmup=0.0, keep_waits=True)
    a, b, c = fn(seed=7, **model), fn(seed=7, **model), fn(seed=8, **model)
    assert a == b and a.waits is not None and len(a.waits) == a.answered
    assert a != c and a.waits != c.waits


def test_ciw_leaves_the_global_random_state_alone():
    random.seed(123)
    before = random.getstate()
    ciw_queue(calls_per_hour=100.0, aht=60.0, agents=2, hours=0.5, patience=60.0, seed=3)
    assert random.getstate() == before


@pytest.mark.parametrize("fn", SIMULATORS)
def test_warmup_only_drops_the_early_calls(fn):
    # The warm-up changes the counting, not the simulation: the counted calls are the tail (in arrival order).
    model = {"calls_per_hour": 120.0, "aht": 100.0, "agents": 4, "hours": 2.0, "patience": 90.0, "seed": 5, "keep_waits": True}
    full, warm = fn(warmup=0.0, **model), fn(warmup=3600.0, **model)
    assert 0 < warm.offered < full.offered and warm.answered <= full.answered and warm.abandoned <= full.abandoned
    assert full.waits[len(full.waits) - len(warm.waits):] == warm.waits


@pytest.mark.parametrize("fn", SIMULATORS)
def test_overloaded_patient_queue_drains_after_the_horizon(fn):
    # 2 erlangs offered to 1 agent: the queue only grows during the day, and everyone is still answered after it.
    r = fn(calls_per_hour=60.0, aht=120.0, agents=1, hours=1.0, patience=None, seed=2)
    assert r.offered > 20 and r.answered == r.offered and r.abandoned == 0 and r.asa > 300.0


@pytest.mark.parametrize("fn", SIMULATORS)
@pytest.mark.parametrize("bad", [{"agents": 0}, {"agents": 2.5}, {"aht": 0.0}, {"patience": 0.0},
                                 {"warmup": 7200.0}, {"calls_per_hour": float("nan")}, {"t": -1.0}])
def test_bad_inputs_are_refused(fn, bad):
    model = {"calls_per_hour": 60.0, "aht": 60.0, "agents": 2, "hours": 1.0} | bad
    with pytest.raises(ValueError):
        fn(**model)


def test_throughput_benchmark_runs(capsys):
    res = main(["--agents", "10", "--calls-per-hour", "200", "--aht", "150", "--hours", "0.5", "--runs", "1"])
    assert res["simpy_calls_per_s"] > 0 and res["ciw_calls_per_s"] > 0
    out = capsys.readouterr().out
    assert "simpy" in out and "ciw" in out and "calls/s" in out
