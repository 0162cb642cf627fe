"""Erlang C / Erlang A staffing (issue 6, ``ivr staff``).

Each formula in routing/staffing.py is checked against something computed another way:
Erlang C against exact rational arithmetic and textbook closed forms; Erlang A against a
brute-force birth-death chain with a per-caller absorbing chain solved by uniformization,
and against a seeded discrete-event simulation; plus monotonicity properties and limits.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import statistics
import time
from fractions import Fraction

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ivr.cli_staff import app as staff_app
from ivr.cli_staff import staff
from ivr.errors import IvrError
from routing.staffing import (
    QueueMetrics,
    StaffingInputError,
    erlang_a,
    erlang_b,
    erlang_c,
    queue_metrics,
    staff_for,
    staffing_table,
)

# ---------------------------------------------------------------------------
# independent reference implementations


def exact_erlang_c(n: int, a: Fraction) -> Fraction:
    """Erlang C the textbook way, with factorials, in exact rationals (a < n)."""
    top = a**n / math.factorial(n) * Fraction(n) / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


def log_erlang_c(n: int, a: float) -> float:
    """ln C(N, A) from lgamma and log-sum-exp: a second large-N path that shares no code."""
    terms = [k * math.log(a) - math.lgamma(k + 1) for k in range(n)]
    top = n * math.log(a) - math.lgamma(n + 1) + math.log(n / (n - a))
    terms.append(top)
    m = max(terms)
    return top - (m + math.log(sum(math.exp(t - m) for t in terms)))


def brute_erlang_a(n: int, lam: float, h: float, patience: float, t: float, k_max: int = 600) -> dict[str, float]:
    """Erlang A by brute force: truncated stationary distribution, then per-caller chains.

    A caller who arrives to find N + k in the system has k callers ahead. Ahead-count j
    drops at rate N·mu + j·theta (service start of the head, or an abandon ahead); the
    caller reaches an agent after j = 0 is left; the caller hangs up at rate theta.
    P(answered | k) and E[V e^{-theta V} | k] are products over independent stages;
    P(answered within T | k) is solved by uniformizing that absorbing chain.
    """
    mu, theta = 1.0 / h, 1.0 / patience
    w = [1.0]
    for i in range(1, n + 1):
        w.append(w[-1] * lam / (i * mu))
    for k in range(1, k_max + 1):
        w.append(w[-1] * lam / (n * mu + k * theta))
    z = sum(w)
    pi = [v / z for v in w]
    assert pi[-1] < 1e-14, "truncation too short"
    queue = pi[n:]  # queue[k]: arriving caller finds k ahead (PASTA)
    p_wait = sum(queue)
    abandon = sum(k * theta * queue[k] for k in range(len(queue))) / lam
    rates = [n * mu + j * theta for j in range(len(queue))]
    answered_waited = wait_answered = 0.0
    prod = 1.0
    acc = 0.0
    for k, p in enumerate(queue):
        prod *= rates[k] / (rates[k] + theta)
        acc += 1.0 / (rates[k] + theta)
        answered_waited += p * prod
        wait_answered += p * prod * acc
    # uniformization: u[j] = P(answered within T | j ahead)
    big = rates[-1] + theta
    steps_mean = big * t
    u_step = [0.0] * len(queue)  # P(answered within m jumps | j ahead)
    served = 0.0
    m = 0
    while True:
        # P(answered within the first m uniformized jumps), weighted by Poisson(m; big * T)
        if steps_mean > 0:
            poisson = math.exp(m * math.log(steps_mean) - steps_mean - math.lgamma(m + 1))
        else:
            poisson = float(m == 0)
        served += poisson * sum(queue[j] * u_step[j] for j in range(len(queue)))
        if m > steps_mean + 12 * math.sqrt(steps_mean) + 30:
            break
        nxt = [0.0] * len(queue)
        for j in range(len(queue)):
            down = 1.0 if j == 0 else u_step[j - 1]
            nxt[j] = rates[j] / big * down + (1.0 - (rates[j] + theta) / big) * u_step[j]
        u_step = nxt
        m += 1
    answered = 1.0 - abandon
    return {"p_wait": p_wait, "abandon": abandon, "answered": answered,
            "answered_waited": answered_waited, "asa": wait_answered / answered,
            "service_level": (1.0 - p_wait) + served}


def simulate_mmn_m(n: int, lam: float, h: float, patience: float, t: float, customers: int, seed: int,
                   warmup: int = 5_000, batches: int = 20) -> dict[str, tuple[float, float]]:
    """FCFS M/M/N+M by the Kiefer-Wolfowitz recursion on agents' free times.

    A caller's offered wait V is the gap to the earliest free agent; the caller is answered
    iff V <= patience, and only answered callers take an agent (abandoners hold nobody).
    Returns (mean, standard error) per metric from batch means.
    """
    rng = random.Random(seed)
    free = [0.0] * n
    clock = 0.0
    size = (customers - warmup) // batches
    stats: dict[str, list[float]] = {"p_wait": [], "abandon": [], "service_level": [], "asa": []}
    waited = aband = within = answered = 0
    wait_sum = 0.0
    for i in range(customers):
        clock += rng.expovariate(lam)
        tau = rng.expovariate(1.0 / patience)
        start = max(clock, free[0])
        v = start - clock
        if v <= tau:
            heapq.heapreplace(free, start + rng.expovariate(1.0 / h))
        if i < warmup:
            continue
        waited += v > 0
        if v <= tau:
            answered += 1
            wait_sum += v
            within += v <= t
        else:
            aband += 1
        if (i - warmup + 1) % size == 0:
            stats["p_wait"].append(waited / size)
            stats["abandon"].append(aband / size)
            stats["service_level"].append(within / size)
            stats["asa"].append(wait_sum / answered)
            waited = aband = within = answered = 0
            wait_sum = 0.0
    return {k: (statistics.fmean(v), statistics.stdev(v) / math.sqrt(len(v))) for k, v in stats.items()}


# ---------------------------------------------------------------------------
# Erlang C


def test_erlang_c_matches_exact_rational_arithmetic():
    for n, a in [(1, Fraction(1, 2)), (2, Fraction(3, 2)), (5, Fraction(37, 10)), (14, Fraction(10)),
                 (28, Fraction(24)), (40, Fraction(391, 10))]:
        want = float(exact_erlang_c(n, a))
        got = erlang_c(n, float(a) / 240.0, 240.0)
        assert got == pytest.approx(want, rel=1e-12), (n, a)


def test_erlang_c_textbook_closed_forms():
    for rho in (0.1, 0.5, 0.93):
        assert erlang_c(1, rho, 1.0) == pytest.approx(rho, rel=1e-13)  # M/M/1: P(wait) = rho
        assert erlang_c(2, 2 * rho, 1.0) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-13)  # M/M/2
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)


def test_worked_example_100_calls_per_half_hour():
    """The call-centre guides' example: 100 calls per 30 min, AHT 180 s (10 erlangs), 80/20 target."""
    lam = 100 / 1800
    m = queue_metrics(14, lam, 180, 20)
    assert m.offered_erlangs == pytest.approx(10.0)
    assert m.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert m.service_level == pytest.approx(0.8884, abs=5e-5)
    assert m.asa == pytest.approx(7.84, abs=5e-3)
    assert m.occupancy == pytest.approx(10 / 14)
    assert queue_metrics(13, lam, 180, 20).service_level < 0.8 < m.service_level
    best = staff_for(0.8, 20, lam, 180)
    assert best.agents == 14 and best == m


def test_westbay_example_360_calls_per_half_hour():
    """360 calls per half hour, 4-minute calls, 55 agents, 15 s threshold (A = 48 erlangs)."""
    m = queue_metrics(55, 360 / 1800, 240, 15)
    assert m.offered_erlangs == pytest.approx(48.0)
    assert m.p_wait == pytest.approx(float(exact_erlang_c(55, Fraction(48))), rel=1e-12)
    assert m.p_wait == pytest.approx(0.2387, abs=5e-5)
    assert m.asa == pytest.approx(m.p_wait * 240 / 7, rel=1e-12) and m.asa == pytest.approx(8.18, abs=5e-3)
    assert m.service_level == pytest.approx(1 - m.p_wait * math.exp(-7 * 15 / 240), rel=1e-12)


def test_erlang_c_is_stable_for_thousands_of_agents():
    for n, a in [(1000, 950.0), (1200, 1150.0), (3000, 2990.0)]:
        got = erlang_c(n, a / 300.0, 300.0)
        assert 0.0 < got < 1.0
        assert math.log(got) == pytest.approx(log_erlang_c(n, a), rel=1e-9)
    assert erlang_c(5000, 10.0, 1.0) == 0.0  # underflows cleanly to 0, no OverflowError
    started = time.perf_counter()
    best = staff_for(0.8, 20, 20_000 / 3600, 300)  # ~1,667 erlangs
    assert time.perf_counter() - started < 1.0
    assert best.service_level >= 0.8
    assert queue_metrics(best.agents - 1, 20_000 / 3600, 300, 20).service_level < 0.8


def test_unstable_erlang_c_is_reported_not_computed():
    m = queue_metrics(10, 10 / 180, 180, 20)  # A = N
    assert (m.stable, m.p_wait, m.service_level, m.asa, m.occupancy) == (False, 1.0, 0.0, math.inf, 1.0)
    assert m.to_json()["asa"] is None
    assert erlang_c(3, 5.0, 1.0) == 1.0


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.05, 300.0), extra=st.integers(1, 40), t=st.floats(0.0, 120.0), h=st.floats(10.0, 900.0))
def test_erlang_c_monotone_in_agents_and_threshold(a, extra, t, h):
    n = math.floor(a) + extra
    m0, m1 = queue_metrics(n, a / h, h, t), queue_metrics(n + 1, a / h, h, t)
    assert m1.p_wait <= m0.p_wait
    assert m1.service_level >= m0.service_level
    assert m1.asa <= m0.asa
    assert m1.occupancy < m0.occupancy
    assert queue_metrics(n, a / h, h, t + 10).service_level >= m0.service_level
    assert m0.service_level >= 1 - m0.p_wait - 1e-15  # answered at once always count


# ---------------------------------------------------------------------------
# Erlang A

CASES = [
    # (agents, calls/s, AHT s, patience s, T s)
    (10, 1 / 20, 180, 120, 20),  # 9 erlangs, under-loaded: series branch
    (8, 1 / 18, 180, 300, 20),  # 10 erlangs on 8 agents, over-loaded: continued-fraction branch
    (3, 1 / 60, 300, 30, 10),  # impatient callers
    (25, 1 / 8, 180, 2000, 30),  # patient callers, x and y ~ 300
    (1, 1 / 100, 60, 90, 0),  # T = 0
]


@pytest.mark.parametrize("case", CASES)
def test_erlang_a_matches_brute_force_chain(case):
    n, lam, h, patience, t = case
    got = erlang_a(n, lam, h, patience, t)
    want = brute_erlang_a(n, lam, h, patience, t)
    assert got.model == "erlang_a"
    assert got.p_wait == pytest.approx(want["p_wait"], rel=1e-9, abs=1e-12)
    assert got.abandon_rate == pytest.approx(want["abandon"], rel=1e-8, abs=1e-12)
    assert 1 - got.abandon_rate - (1 - got.p_wait) == pytest.approx(want["answered_waited"], rel=1e-8, abs=1e-12)
    assert got.service_level == pytest.approx(want["service_level"], rel=1e-8, abs=1e-11)
    assert got.asa == pytest.approx(want["asa"], rel=1e-6)
    assert got.occupancy == pytest.approx(lam * h * want["answered"] / n, rel=1e-9)
    assert got.mean_wait_all == pytest.approx(got.abandon_rate * patience, rel=1e-12)


def test_erlang_a_sl_variants_are_consistent():
    m = erlang_a(10, 1 / 20, 180, 60, 20)
    assert 0 < m.abandon_within_t < m.abandon_rate
    assert m.service_level <= 1 - m.abandon_rate
    assert m.service_level_excl_short_abandons == pytest.approx(m.service_level / (1 - m.abandon_within_t))
    assert m.service_level_excl_short_abandons > m.service_level
    m0 = erlang_a(10, 1 / 20, 180, 60, 0)  # T = 0: only calls answered at once count, nobody has hung up yet
    assert m0.service_level == pytest.approx(1 - m0.p_wait, abs=1e-12)
    assert m0.abandon_within_t == pytest.approx(0.0, abs=1e-12)
    big_t = erlang_a(10, 1 / 20, 180, 60, 1e5)  # T beyond anyone's wait: SL = answered
    assert big_t.service_level == pytest.approx(1 - big_t.abandon_rate, abs=1e-12)
    assert big_t.abandon_within_t == pytest.approx(big_t.abandon_rate, abs=1e-12)


@pytest.mark.parametrize("n,lam,h,t", [(14, 100 / 1800, 180, 20), (55, 360 / 1800, 240, 15), (3, 1 / 200, 300, 0)])
def test_erlang_a_tends_to_erlang_c_as_patience_grows(n, lam, h, t):
    c = queue_metrics(n, lam, h, t)
    errors = []
    for patience in (1e4, 1e6, 1e8):
        a = erlang_a(n, lam, h, patience, t)
        errors.append(abs(a.service_level - c.service_level))
        assert a.abandon_rate < 100 * h / patience  # P(abandon) = E[wait]/patience -> 0
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6
    a = erlang_a(n, lam, h, 1e8, t)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-5)
    assert a.asa == pytest.approx(c.asa, rel=1e-5, abs=1e-9)
    assert a.occupancy == pytest.approx(c.occupancy, rel=1e-6)
    assert queue_metrics(n, lam, h, t, patience=math.inf) == c  # infinite patience is Erlang C exactly


def test_erlang_a_overloaded_with_patient_callers_does_not_overflow():
    # 100 erlangs on 80 agents with 1-hour patience: R(x, y) ~ e^{1000s}; the queue still settles
    m = erlang_a(80, 100 / 180, 180, 3600, 20)
    assert all(math.isfinite(v) for v in (m.p_wait, m.service_level, m.asa, m.abandon_rate))
    assert m.abandon_rate == pytest.approx(0.2, abs=0.01)  # nearly all spare load abandons: 1 - N/A
    assert m.occupancy == pytest.approx(1.0, abs=0.01)
    assert m.p_wait > 0.99


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.2, 120.0), n_frac=st.floats(0.5, 1.6), patience=st.floats(5.0, 3000.0),
       shrink=st.floats(0.2, 0.9), t=st.floats(0.0, 90.0), h=st.floats(30.0, 600.0))
def test_erlang_a_monotonicity(a, n_frac, patience, shrink, t, h):
    n = max(1, round(a * n_frac))
    lam = a / h
    base = erlang_a(n, lam, h, patience, t)
    more = erlang_a(n + 1, lam, h, patience, t)
    tol = 1e-9  # deep overload works with ln R ~ 1e3..1e4, so results carry ~1e-12 of rounding
    assert more.service_level >= base.service_level - tol
    assert more.abandon_rate <= base.abandon_rate + tol
    assert more.occupancy <= base.occupancy + tol
    assert more.p_wait <= base.p_wait + tol
    impatient = erlang_a(n, lam, h, patience * shrink, t)
    assert impatient.abandon_rate >= base.abandon_rate - tol  # less patience, more hang-ups
    for m in (base, more, impatient):
        assert 0 <= m.service_level <= 1 - m.abandon_rate + tol
        assert m.abandon_within_t <= m.abandon_rate + tol
        assert m.asa >= 0 and m.occupancy <= min(1.0, a / n) + tol


@pytest.mark.parametrize("case,seed", [((10, 1 / 20, 180, 120, 20), 11), ((8, 1 / 18, 180, 300, 20), 12)])
def test_erlang_a_agrees_with_discrete_event_simulation(case, seed):
    n, lam, h, patience, t = case
    want = erlang_a(n, lam, h, patience, t)
    got = simulate_mmn_m(n, lam, h, patience, t, customers=205_000, seed=seed)
    exact = {"p_wait": want.p_wait, "abandon": want.abandon_rate, "service_level": want.service_level,
             "asa": want.asa}
    for key, (mean, se) in got.items():
        scale = 1.0 if key != "asa" else want.asa
        assert se < 0.02 * scale, (key, se)  # the simulation is long enough to be a real check
        assert abs(mean - exact[key]) < 4 * se + 1e-3 * scale, (key, mean, exact[key], se)


# ---------------------------------------------------------------------------
# staffing search


@settings(max_examples=40, deadline=None)
@given(calls=st.floats(5.0, 3000.0), h=st.floats(30.0, 900.0), target=st.floats(0.0, 0.99),
       t=st.floats(0.0, 60.0), patience=st.one_of(st.none(), st.floats(10.0, 1800.0)))
def test_staff_for_returns_the_smallest_n(calls, h, target, t, patience):
    lam = calls / 3600
    best = staff_for(target, t, lam, h, patience=patience)
    assert best.service_level >= target and best.stable
    if best.agents > 1:
        worse = queue_metrics(best.agents - 1, lam, h, t, patience)
        assert not (worse.stable and worse.service_level >= target)


def test_occupancy_and_abandon_caps_bind():
    lam, h = 300 / 3600, 240  # 20 erlangs
    plain = staff_for(0.5, 60, lam, h)
    capped = staff_for(0.5, 60, lam, h, max_occupancy=0.8)
    assert plain.occupancy > 0.8 and capped.agents == 25 and capped.occupancy == pytest.approx(0.8)
    a_plain = staff_for(0.3, 20, lam, h, patience=60)
    a_capped = staff_for(0.3, 20, lam, h, patience=60, max_abandon=0.02)
    assert a_plain.abandon_rate > 0.02 >= a_capped.abandon_rate
    assert erlang_a(a_capped.agents - 1, lam, h, 60, 20).abandon_rate > 0.02
    assert staff_for(0.8, 20, 0.0, 180).agents == 0  # no calls, no agents


def test_staffing_table_staffs_each_hour():
    day = {10: 400.0, 8: 120.0, 9: 250.0, 13: 0.0}
    table = staffing_table(day, target_sl=0.8, t=20, mean_handle=240, patience=180)
    assert list(table) == [8, 9, 10, 13]
    for hour, m in table.items():
        assert isinstance(m, QueueMetrics)
        assert m.agents == staff_for(0.8, 20, day[hour] / 3600, 240, patience=180).agents
    assert table[8].agents < table[9].agents < table[10].agents and table[13].agents == 0
    with pytest.raises(StaffingInputError):
        staffing_table({24: 10.0}, mean_handle=240)


@pytest.mark.parametrize("call", [
    lambda: erlang_c(0, 1.0, 1.0),
    lambda: erlang_c(True, 1.0, 1.0),
    lambda: erlang_c(2.5, 1.0, 1.0),
    lambda: erlang_c(3, -1.0, 1.0),
    lambda: erlang_c(3, 1.0, 0.0),
    lambda: queue_metrics(3, float("nan"), 1.0),
    lambda: queue_metrics(3, 1.0, 1.0, t=-1),
    lambda: erlang_a(3, 1.0, 1.0, patience=0.0),
    lambda: staff_for(1.0, 20, 1.0, 1.0),
    lambda: staff_for(0.8, 20, 1.0, 1.0, max_occupancy=0.0),
    lambda: staff_for(0.8, 20, 1.0, 1.0, max_abandon=0.05),  # needs patience
    lambda: staff_for("0.8", 20, 1.0, 1.0),
])
def test_bad_inputs_are_clear_errors(call):
    with pytest.raises(StaffingInputError) as info:
        call()
    assert isinstance(info.value, IvrError) and info.value.error_id == "E-STAFF-INPUT"
    assert info.value.details["field"] and "must be" in str(info.value) or "needs" in str(info.value)


# ---------------------------------------------------------------------------
# CLI


def _registered() -> typer.Typer:
    """The way ivr/cli.py registers it, next to another command so the name is required."""
    app = typer.Typer()
    app.command("staff")(staff)
    app.command("other")(lambda: None)
    return app


def test_cli_prints_the_answer_and_its_neighbours():
    r = CliRunner().invoke(_registered(), ["staff", "--calls-per-hour", "200", "--aht", "180"])
    assert r.exit_code == 0, r.output
    rows = {int(cells[1]): cells for cells in
            ([c.strip() for c in line.split("│")[1:-1]] for line in r.output.splitlines() if "│" in line)
            if cells[1].isdigit()}
    assert sorted(rows) == list(range(12, 18))  # N-2 .. N+3 around 14
    assert rows[14][0] == "→" and all(rows[n][0] == "" for n in rows if n != 14)
    assert rows[14][2:5] == ["17.4%", "88.8%", "7.8s"]
    assert "Erlang C" in r.output and "Chosen: 14 agents" in r.output


def test_cli_json_with_patience_uses_erlang_a():
    r = CliRunner().invoke(staff_app, ["--calls-per-hour", "200", "--aht", "180", "--patience", "120",
                                       "--within", "20", "--target", "0.8", "--max-occupancy", "0.9", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    want = staff_for(0.8, 20, 200 / 3600, 180, patience=120, max_occupancy=0.9)
    assert data["model"] == "erlang_a" and data["agents"] == want.agents == 12
    assert data["chosen"]["abandon_rate"] == pytest.approx(want.abandon_rate)
    assert [row["agents"] for row in data["rows"]] == list(range(10, 16))
    assert [row["chosen"] for row in data["rows"]].count(True) == 1


def test_cli_unstable_rows_and_bad_input():
    r = CliRunner().invoke(staff_app, ["--calls-per-hour", "40", "--aht", "180", "--target", "0.5", "--json"])
    data = json.loads(r.output)
    assert data["agents"] == 3 and data["rows"][0]["agents"] == 1 and data["rows"][0]["stable"] is False
    assert data["rows"][0]["asa"] is None  # inf is not JSON
    r = CliRunner().invoke(staff_app, ["--calls-per-hour", "200", "--aht", "180", "--target", "1.2"])
    assert r.exit_code == 2 and "E-STAFF-INPUT" in r.output and "--target" in r.output
    r = CliRunner().invoke(staff_app, ["--calls-per-hour", "200", "--aht", "180", "--max-abandon", "0.05"])
    assert r.exit_code == 2 and "--max-abandon needs --patience" in r.output
