"""Staffing a single queue: Erlang C (M/M/N) and Erlang A (M/M/N+M), and the smallest N for a target.

Why this module exists: managers ask "how many agents do I need at 9 a.m. for 80 % of
calls answered within 20 s?" (issue 6, ``ivr staff``). The answer comes from public
queueing formulas, and the day simulator is tested against these same numbers, so they
must be exact, numerically stable for large centres, and free of I/O.

Units
-----
The functions take rates and durations in *one* time unit of your choice: an
``arrival_rate`` in calls per second goes with ``mean_handle``, ``t`` and ``patience`` in
seconds (calls per minute with minutes, and so on). ``staffing_table`` and the CLI take
calls per hour and seconds and convert. Waiting times come back in that same unit.

Notation: λ arrival rate, μ = 1/AHT service rate, A = λ·AHT offered load (erlangs),
N agents, θ = 1/patience abandonment rate, T the service-level threshold.

Erlang C (M/M/N, nobody abandons)
---------------------------------
* Erlang B by the stable recursion ``B(0) = 1``, ``B(n) = A·B(n-1) / (n + A·B(n-1))``
  (no factorials, so 10,000 agents are as easy as 10), then
  ``C(N, A) = N·B / (N - A·(1 - B))`` for A < N — the probability an arriving call waits.
* Waiting time is ``P(W > t) = C·exp(-(N - A)·t / AHT)``, so the service level is
  ``SL(T) = 1 - C·exp(-(N - A)·T / AHT)``. Variant: calls answered within T over calls
  offered; in Erlang C every offered call is eventually answered, so this is also answered
  within T over answered (no abandons to count or exclude).
* ASA (mean wait of all calls, zero waits included) ``= C·AHT / (N - A)``.
* Occupancy ``= A / N``.
* A ≥ N is unstable (the queue grows without bound): ``p_wait = 1``, ``service_level = 0``,
  ``asa = inf``, ``occupancy = 1`` and ``stable = False``.

Erlang A (M/M/N+M, Palm's model: exponential patience with mean ``patience``)
------------------------------------------------------------------------------
The number in system is a birth-death chain: birth λ everywhere, death n·μ for n ≤ N and
N·μ + k·θ with k callers waiting. Following Mandelbaum & Zeltyn, "The Palm/Erlang-A
queue, with applications to call centers" (2007), and Garnett, Mandelbaum & Reiman,
"Designing a call center with impatient customers" (MSOM 2002), put
``x = N·μ/θ``, ``y = λ/θ`` and

    R(a, z) = Σ_{n≥0} z^n / ((a+1)(a+2)…(a+n)) = Γ(a+1)·e^z·z^(-a)·P(a, z),

with ``P`` the regularized lower incomplete gamma function (``R(x, y)`` is their
``A(x, y) = x·e^y·y^(-x)·γ(x, y)``; it is the queue part of the stationary distribution,
``Σ_k π(N+k) / π(N)``). Let ``W_low = Σ_{n<N} π(n)/π(N) = 1/E_B(N, A) - 1`` (kept in logs
via the Erlang B recursion) and ``Z = W_low + R(x, y)`` so that ``π(N) = 1/Z``. Then

* ``P(wait > 0) = R(x, y) / Z`` (PASTA; with exponential patience every queued caller waits
  a positive time).
* Each caller has an *offered wait* V (the wait an infinitely patient caller would have)
  and patience τ ~ Exp(θ), independent; the caller is answered iff V ≤ τ and waits
  ``min(V, τ)``. With k callers ahead, V is a sum of Exp(N·μ + j·θ), j = 0..k, and summing
  over the stationary queue gives
  ``P(V > t) = e^{y(1-q)}·q^x·R(x, y·q) / Z`` with ``q = e^{-θ·t}``.
* Answered after waiting (``V > 0`` and ``V ≤ τ``): ``E[e^{-θV}; V > 0] = x/(x+1)·R(x+1, y) / Z``;
  answered after waiting longer than T: ``x/(x+1)·e^{y(1-q)}·q^{x+1}·R(x+1, y·q) / Z``.
* ``P(abandon) = P(wait > 0) - P(answered after waiting)``
  (equal to ``π(N)·[R(x,y)·(1 - x/y) + x/y]``, the M&Z form, and to θ·E[min(V, τ)]).
* Abandoned after waiting longer than T: ``q·P(V > T) - P(answered after waiting > T)``
  (memorylessness); abandoned within T is the rest of ``P(abandon)``.
* ``service_level`` = P(answered with wait ≤ T) over *all offered calls*: an abandon, early
  or late, counts as a miss (the strictest common variant; for Erlang C it is the
  same number). ``service_level_excl_short_abandons`` = answered within T
  over (offered - abandoned within T): callers who hang up before T are left out of the
  denominator (the other common variant; "short" abandons are those within T).
* ``asa`` = mean wait of *answered* calls (zero waits included) =
  ``E[V e^{-θV}] / P(answered)``, with
  ``E[V e^{-θV}] = x·R(x+1, y) / (θ·(x+1)·Z) · [1/(x+1) - ∂/∂a ln R(a, y) at a = x+1]``
  (differentiate ``E[e^{-sV}; V > 0] = x·e^y·y^{-(x+s/θ)}·γ(x + s/θ, y)/Z`` in s at s = θ;
  the a-derivative is taken numerically with a five-point stencil).
  ``mean_wait_all`` = mean time in queue over all offered calls ``= P(abandon)/θ``.
* Occupancy ``= A·(1 - P(abandon)) / N`` (only answered calls occupy agents).

R is evaluated in logs from the power series when ``z < a + 1`` and from the Lentz
continued fraction for Q = 1 - P otherwise (Numerical Recipes §6.2), so overloaded
centres with patient callers (astronomically large R) do not overflow. As patience → ∞
Erlang A tends to Erlang C for a stable queue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import Any

from ivr.errors import IvrError

__all__ = [
    "QueueMetrics",
    "StaffingInputError",
    "StaffingUnreachable",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "queue_metrics",
    "staff_for",
    "staffing_table",
]

MAX_AGENTS = 2_000_000  # a search that passes this has an unreachable target
_EPS = 1e-17
_FPMIN = 1e-300


class StaffingInputError(IvrError, ValueError):
    """A staffing input is out of range (negative rate, SL target of 1, ...)."""

    error_id = "E-STAFF-INPUT"


class StaffingUnreachable(IvrError):
    """No number of agents up to :data:`MAX_AGENTS` meets the targets."""

    error_id = "E-STAFF-UNREACHABLE"


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state performance of one queue with ``agents`` agents.

    Times (``asa``, ``mean_wait_all``, ``t``, ``mean_handle``, ``patience``) are in the time
    unit of the inputs. ``patience`` is ``None`` for Erlang C. Probabilities are fractions
    of *offered* calls unless the field name says otherwise.
    """

    model: str  # "erlang_c" or "erlang_a"
    agents: int
    arrival_rate: float
    mean_handle: float
    patience: float | None
    t: float  # the service-level threshold T
    offered_erlangs: float  # A = λ·AHT
    p_wait: float  # P(an arriving call waits at all)
    service_level: float  # P(answered with wait ≤ T) over offered
    service_level_excl_short_abandons: float  # answered within T / (offered - abandoned within T)
    asa: float  # mean wait of answered calls, zero waits included
    mean_wait_all: float  # mean time in queue over all offered calls (abandoners' time too)
    occupancy: float  # fraction of agent time busy with calls
    abandon_rate: float  # P(caller hangs up before answer); 0 for Erlang C
    abandon_within_t: float  # P(caller hangs up having waited ≤ T); 0 for Erlang C
    stable: bool = True  # False for Erlang C with A ≥ N

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; infinities (unstable Erlang C) become ``None``."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------
# input validation


def _bad(field: str, value: Any, expected: str) -> StaffingInputError:
    return StaffingInputError(f"{field} must be {expected} (got {value!r})",
                              details={"field": field, "value": value, "expected": expected})


def _real(field: str, value: Any, *, lo: float | None = None, lo_open: bool = False, hi: float | None = None,
          hi_open: bool = False, allow_inf: bool = False) -> float:
    """Check a real number against an interval; booleans and NaN are refused."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _bad(field, value, "a number")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise _bad(field, value, "a finite number")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    expected = "a number " + " and ".join(parts) if parts else "a number"
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise _bad(field, value, expected)
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise _bad(field, value, expected)
    return v


def _agents(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise _bad("agents", value, "a whole number >= 1")
    if value < 1:
        raise _bad("agents", value, "a whole number >= 1")
    return int(value)


def _patience(value: Any) -> float | None:
    """``None`` or +inf mean "callers never hang up" (Erlang C)."""
    if value is None:
        return None
    p = _real("patience", value, lo=0.0, lo_open=True, allow_inf=True)
    return None if math.isinf(p) else p


# ---------------------------------------------------------------------------
# numerics


def _softplus(v: float) -> float:
    """ln(1 + e^v) without overflow."""
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = (a, b) if a >= b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def erlang_b(agents: int, offered_erlangs: float) -> float:
    """Erlang B blocking probability E_B(N, A) by the recursion B(n) = A·B(n-1)/(n + A·B(n-1)).

    The recursion only multiplies numbers in [0, 1], so it neither overflows nor loses
    precision for thousands of agents, unlike A^N/N! over a sum.
    """
    n_agents = int(agents)
    if n_agents < 0:
        raise _bad("agents", agents, "a whole number >= 0")
    a = _real("offered_erlangs", offered_erlangs, lo=0.0)
    b = 1.0
    for n in range(1, n_agents + 1):
        ab = a * b
        b = ab / (n + ab)
    return b


def _log_w_low(agents: int, offered: float) -> float:
    """ln Σ_{n<N} π(n)/π(N) = ln(1/E_B(N, A) - 1), via D(n) = (n/A)·(1 + D(n-1)) in logs."""
    log_a = math.log(offered)
    log_d = -math.inf  # D(0) = 0: no states below 0
    for n in range(1, agents + 1):
        log_d = math.log(n) - log_a + _softplus(log_d) if log_d != -math.inf else math.log(n) - log_a
    return log_d


def _log_r(a: float, z: float) -> float:
    """ln R(a, z), R(a, z) = Σ_{n≥0} z^n/((a+1)…(a+n)) = Γ(a+1)·e^z·z^(-a)·P(a, z); a > 0, z ≥ 0.

    Series for z < a + 1 (terms fall geometrically), else the Lentz continued fraction for
    the upper function Q(a, z) (Numerical Recipes, 3rd ed., §6.2), with P = 1 - Q ≥ ~1/2.
    """
    if z <= 0.0:
        return 0.0
    if z < a + 1.0:
        total = term = 1.0
        n = 0
        while True:
            n += 1
            term *= z / (a + n)
            total += term
            if term < total * _EPS:
                return math.log(total)
    # continued fraction for Q(a, z)
    b = z + 1.0 - a
    c = 1.0 / _FPMIN
    d = 1.0 / b
    h = d
    i = 0
    while True:
        i += 1
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _FPMIN:
            d = _FPMIN
        c = b + an / c
        if abs(c) < _FPMIN:
            c = _FPMIN
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16 or i > 100_000:
            break
    log_q = -z + a * math.log(z) - math.lgamma(a) + math.log(h)
    log_p = math.log1p(-math.exp(log_q)) if log_q < -0.7 else math.log(-math.expm1(log_q))
    return log_p + math.lgamma(a + 1.0) + z - a * math.log(z)


def _dlog_r_da(a: float, z: float) -> float:
    """∂/∂a ln R(a, z) by a five-point central difference (error O(h^4), h = 1e-3·a)."""
    h = 1e-3 * max(1.0, a)
    h = min(h, 0.5 * a)  # stay inside a > 0
    f = _log_r
    return (-f(a + 2 * h, z) + 8 * f(a + h, z) - 8 * f(a - h, z) + f(a - 2 * h, z)) / (12 * h)


def _clamp01(v: float) -> float:
    return min(max(v, 0.0), 1.0)


# ---------------------------------------------------------------------------
# the models


def _idle(model: str, agents: int, mean_handle: float, patience: float | None, t: float) -> QueueMetrics:
    """No arrivals: nobody waits, nobody abandons, agents are idle."""
    return QueueMetrics(model=model, agents=agents, arrival_rate=0.0, mean_handle=mean_handle, patience=patience, t=t,
                        offered_erlangs=0.0, p_wait=0.0, service_level=1.0, service_level_excl_short_abandons=1.0,
                        asa=0.0, mean_wait_all=0.0, occupancy=0.0, abandon_rate=0.0, abandon_within_t=0.0)


def erlang_c(agents: int, arrival_rate: float, mean_handle: float) -> float:
    """Erlang C: the probability an arriving call waits in an M/M/N queue (1.0 when A ≥ N).

    ``C = N·E_B / (N - A·(1 - E_B))`` with E_B from :func:`erlang_b`; stable for 1,000+ agents.
    """
    n = _agents(agents)
    lam = _real("arrival_rate", arrival_rate, lo=0.0)
    h = _real("mean_handle", mean_handle, lo=0.0, lo_open=True)
    a = lam * h
    if a == 0.0:
        return 0.0
    if a >= n:
        return 1.0
    b = erlang_b(n, a)
    return _clamp01(n * b / (n - a * (1.0 - b)))


def _erlang_c_metrics(n: int, lam: float, h: float, t: float) -> QueueMetrics:
    a = lam * h
    if a == 0.0:
        return _idle("erlang_c", n, h, None, t)
    if a >= n:
        return QueueMetrics(model="erlang_c", agents=n, arrival_rate=lam, mean_handle=h, patience=None, t=t,
                            offered_erlangs=a, p_wait=1.0, service_level=0.0, service_level_excl_short_abandons=0.0,
                            asa=math.inf, mean_wait_all=math.inf, occupancy=1.0, abandon_rate=0.0,
                            abandon_within_t=0.0, stable=False)
    c = erlang_c(n, lam, h)
    sl = _clamp01(1.0 - c * math.exp(-(n - a) * t / h))
    asa = c * h / (n - a)
    return QueueMetrics(model="erlang_c", agents=n, arrival_rate=lam, mean_handle=h, patience=None, t=t,
                        offered_erlangs=a, p_wait=c, service_level=sl, service_level_excl_short_abandons=sl, asa=asa,
                        mean_wait_all=asa, occupancy=a / n, abandon_rate=0.0, abandon_within_t=0.0)


def _erlang_a_metrics(n: int, lam: float, h: float, patience: float, t: float) -> QueueMetrics:
    a_load = lam * h
    if a_load == 0.0:
        return _idle("erlang_a", n, h, patience, t)
    theta = 1.0 / patience
    x = n * patience / h  # N·μ/θ
    y = lam * patience  # λ/θ
    log_s = _log_r(x, y)
    log_z = _logaddexp(_log_w_low(n, a_load), log_s)
    p_wait = math.exp(log_s - log_z)

    log_c1 = math.log(x / (x + 1.0))
    log_r1 = _log_r(x + 1.0, y)
    served_waited = math.exp(log_c1 + log_r1 - log_z)  # P(answered, wait > 0)
    abandon = _clamp01(p_wait - served_waited)

    log_q = -theta * t
    q = math.exp(log_q)
    zq = y * q
    grow = -y * math.expm1(log_q)  # y·(1 - q)
    p_v_gt_t = math.exp(grow + x * log_q + _log_r(x, zq) - log_z)  # offered wait longer than T
    served_late = math.exp(log_c1 + grow + (x + 1.0) * log_q + _log_r(x + 1.0, zq) - log_z)
    answered = 1.0 - abandon
    sl = _clamp01(answered - served_late)
    abandon_late = max(0.0, q * p_v_gt_t - served_late)
    abandon_early = _clamp01(abandon - abandon_late)
    denom = 1.0 - abandon_early
    sl_excl = _clamp01(sl / denom) if denom > 0.0 else 0.0

    # E[V·e^{-θV}]: mean wait of answered calls times P(answered)
    bracket = 1.0 / (x + 1.0) - _dlog_r_da(x + 1.0, y)
    wait_answered = served_waited / theta * max(bracket, 0.0)
    asa = wait_answered / answered if answered > 0.0 else math.inf
    return QueueMetrics(model="erlang_a", agents=n, arrival_rate=lam, mean_handle=h, patience=patience, t=t,
                        offered_erlangs=a_load, p_wait=p_wait, service_level=sl,
                        service_level_excl_short_abandons=sl_excl, asa=asa, mean_wait_all=abandon / theta, occupancy=_clamp01(a_load * answered / n),
                        abandon_rate=abandon, abandon_within_t=abandon_early)


def queue_metrics(agents: int, arrival_rate: float, mean_handle: float, t: float = 20.0,
                  patience: float | None = None) -> QueueMetrics:
    """Every metric for ``agents`` agents: Erlang A when ``patience`` is given, else Erlang C.

    ``t`` is the service-level threshold T (same time unit as ``mean_handle``).
    """
    n = _agents(agents)
    lam = _real("arrival_rate", arrival_rate, lo=0.0)
    h = _real("mean_handle", mean_handle, lo=0.0, lo_open=True)
    tt = _real("t", t, lo=0.0)
    p = _patience(patience)
    if p is None:
        return _erlang_c_metrics(n, lam, h, tt)
    return _erlang_a_metrics(n, lam, h, p, tt)


def erlang_a(agents: int, arrival_rate: float, mean_handle: float, patience: float, t: float = 20.0) -> QueueMetrics:
    """Erlang A (M/M/N+M, mean patience ``patience``): exact metrics, see the module docstring."""
    if patience is None:
        raise _bad("patience", patience, "a number > 0 (Erlang A needs a mean patience)")
    return queue_metrics(agents, arrival_rate, mean_handle, t, patience)


# ---------------------------------------------------------------------------
# staffing


def staff_for(target_sl: float, t: float, arrival_rate: float, mean_handle: float, patience: float | None = None,
              max_occupancy: float | None = None, max_abandon: float | None = None) -> QueueMetrics:
    """The smallest number of agents whose service level within ``t`` is at least ``target_sl``.

    Also honours ``max_occupancy`` (occupancy ≤ it; planners cap it to avoid burnout) and
    ``max_abandon`` (P(abandon) ≤ it; Erlang A only, since Erlang C callers never hang up).
    Every criterion is monotone in N (more agents: higher SL, fewer abandons, lower
    occupancy), so the search gallops up from a lower bound — A for Erlang C stability,
    ``target·A`` and ``(1 - max_abandon)·A`` for Erlang A because answered calls can never
    exceed N/A of those offered — and then bisects. Returns that N's :class:`QueueMetrics`.
    With no arrivals the answer is 0 agents.
    """
    target = _real("target_sl", target_sl, lo=0.0, hi=1.0, hi_open=True)
    tt = _real("t", t, lo=0.0)
    lam = _real("arrival_rate", arrival_rate, lo=0.0)
    h = _real("mean_handle", mean_handle, lo=0.0, lo_open=True)
    p = _patience(patience)
    max_occ = None if max_occupancy is None else _real("max_occupancy", max_occupancy, lo=0.0, lo_open=True, hi=1.0)
    max_ab = None if max_abandon is None else _real("max_abandon", max_abandon, lo=0.0, lo_open=True, hi=1.0,
                                                    hi_open=True)
    if max_ab is not None and p is None:
        raise StaffingInputError("max_abandon needs patience: Erlang C assumes nobody hangs up",
                                 details={"field": "max_abandon", "value": max_abandon,
                                          "expected": "patience given (Erlang A)"})
    a = lam * h
    if a == 0.0:
        return _idle("erlang_c" if p is None else "erlang_a", 0, h, p, tt)

    def metrics(n: int) -> QueueMetrics:
        return _erlang_c_metrics(n, lam, h, tt) if p is None else _erlang_a_metrics(n, lam, h, p, tt)

    def ok(m: QueueMetrics) -> bool:
        return (m.stable and m.service_level >= target
                and (max_occ is None or m.occupancy <= max_occ)
                and (max_ab is None or m.abandon_rate <= max_ab))

    if p is None:
        lo = math.floor(a) + 1
        if max_occ is not None:
            lo = max(lo, math.floor(a / max_occ))
    else:
        lo = max(1, math.floor(target * a), math.floor((1.0 - max_ab) * a) if max_ab is not None else 1)
    lo = max(1, lo)
    # gallop: lo, lo+1, lo+3, lo+7, ... until feasible
    step = 1
    bad = lo - 1  # largest N known (or assumed from the bounds) to fail
    hi = lo
    while True:
        if hi > MAX_AGENTS:
            raise StaffingUnreachable(f"no staffing up to {MAX_AGENTS} agents meets the targets",
                                      details={"target_sl": target, "max_occupancy": max_occ, "max_abandon": max_ab})
        m_hi = metrics(hi)
        if ok(m_hi):
            break
        bad = hi
        hi = lo + 2 * step - 1
        step *= 2
    best = m_hi
    while hi - bad > 1:
        mid = (bad + hi) // 2
        m_mid = metrics(mid)
        if ok(m_mid):
            hi, best = mid, m_mid
        else:
            bad = mid
    return best


def staffing_table(arrivals_by_hour: Mapping[int, float], *, target_sl: float = 0.8, t: float = 20.0,
                   mean_handle: float, patience: float | None = None, max_occupancy: float | None = None,
                   max_abandon: float | None = None) -> dict[int, QueueMetrics]:
    """Agents needed hour by hour for a day: ``{hour: QueueMetrics}`` in hour order.

    ``arrivals_by_hour`` maps an hour of the day (0–23) to the calls offered in that hour;
    ``mean_handle``, ``t`` and ``patience`` are in seconds. Each hour is staffed on its own
    as a steady-state queue (the usual "stationary independent period" approximation).
    """
    if not isinstance(arrivals_by_hour, Mapping):
        raise _bad("arrivals_by_hour", arrivals_by_hour, "a mapping of hour (0-23) to calls in that hour")
    out: dict[int, QueueMetrics] = {}
    for hour in sorted(arrivals_by_hour):
        if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
            raise _bad("hour", hour, "a whole number from 0 to 23")
        calls = _real(f"arrivals_by_hour[{hour}]", arrivals_by_hour[hour], lo=0.0)
        out[hour] = staff_for(target_sl, t, calls / 3600.0, mean_handle, patience=patience,
                              max_occupancy=max_occupancy, max_abandon=max_abandon)
    return out
