"""The same single queue in two general-purpose discrete-event simulators: SimPy and Ciw.

Why this module exists: the day simulator (``ivr.daysim``) runs the real call-tree
interpreter and the real router on a virtual clock, and the benchmark reports how fast it
is *relative to* a general-purpose simulator doing the plain queueing part alone. This
module is that yardstick, written the way each library's documentation writes it, and
checked (``tests/test_general_sim.py``) against the exact Erlang formulas in
:mod:`routing.staffing`, so the ratio compares simulators of the same model.

The shared model (M/M/N+M, "Erlang A"; Erlang C when ``patience`` is None)
--------------------------------------------------------------------------
* Poisson arrivals at ``calls_per_hour`` for ``hours`` hours. No call arrives at or after
  the horizon; calls still in the system then are served to completion (or abandon) as
  usual, so every call ends answered or abandoned.
* ``agents`` identical agents, one FIFO queue, exponential service with mean ``aht``
  seconds; no wrap-up, no ring time.
* Exponential patience with mean ``patience`` seconds: a caller still waiting when their
  patience runs out hangs up; a caller whose service has begun never abandons.
  ``patience=None`` means infinitely patient.
* Calls arriving before ``warmup`` seconds are simulated but left out of the statistics.
* Service level with threshold ``t`` seconds, in the project's two variants (see
  :mod:`routing.kpis`): ``service_level`` = answered within T / (offered - abandoned within
  T) (the default variant; ``routing.staffing`` calls it
  ``service_level_excl_short_abandons``), ``service_level_strict`` = answered within T /
  offered (``routing.staffing``'s ``service_level``). "Within T" is ``wait <= t``.

All times are seconds. In a FIFO queue a caller's wait depends only on the callers ahead,
so stopping arrivals at the horizon does not bias anyone's wait: every call arriving in
``[warmup, horizon)`` sees the queue as the steady state would (once the warm-up has washed
out the empty start).

SimPy (``simpy_queue``)
-----------------------
The process-based model of the SimPy "bank renege" example: an arrival process that sleeps
an exponential gap and starts a caller process; the caller requests a
``simpy.Resource(capacity=agents)`` inside ``with`` and races the request against a patience
``env.timeout`` with ``|``. If the timeout wins, leaving the ``with`` block cancels the
pending request (the caller leaves the queue); if the request wins, the caller holds the
agent for an exponential service time and the ``with`` block releases it. ``env.run()``
without ``until`` runs until the last call has left. All randomness comes from one
``random.Random(seed)``. (A patience timeout that lost the race stays in SimPy's event heap
until it fires and is ignored: SimPy cannot cancel a timeout; that cost is part of the
idiomatic model.)

Ciw (``ciw_queue``)
-------------------
One node built with ``ciw.create_network``: ``number_of_servers=[agents]``,
``service_distributions=[ciw.dists.Exponential(1/aht)]`` and, with patience,
``reneging_time_distributions=[ciw.dists.Exponential(1/patience)]`` (Ciw >= 3; a reneging
customer leaves the node and gets a record with ``record_type == "renege"``, its
``waiting_time`` being arrival to renege; served customers get ``record_type == "service"``).
``ciw.seed(seed)`` seeds Ciw's streams (Ciw samples from the global :mod:`random` module and
``ciw.rng``; their previous states are restored afterwards so a run has no side effect on
other users of ``random``).

Stopping arrivals at the horizon: Ciw has no "arrivals until time H" switch for an
exponential stream (``ciw.dists.PoissonIntervals`` has ``max_sample_date`` but pre-draws a
Poisson count and uniform dates, i.e. a different sampler), and ``simulate_until_max_time``
stops everything at once, leaving calls unfinished. So the arrival distribution is Ciw's own
``Exponential`` wrapped in a time-dependent custom distribution, which Ciw documents
(subclass a ``ciw.dists`` distribution and use the ``t`` argument of ``sample``): it returns
the exponential gap, or ``inf`` when the next arrival would fall at or after the horizon, so
the arrival node falls silent there. The run is ``simulate_until_max_time(inf)``: with no
arrivals left it ends when the last call leaves (Ciw's loop stops once the next event date is
infinite). This is the shared model exactly; no drain window or post-horizon arrivals.

``QueueRun`` and ``main``
-------------------------
Both functions return a :class:`QueueRun`, built by the same counting code. ``main`` (``python
-m benchmarks.general_sim``) times both on a ~100-agent queue and prints calls per second.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["QueueRun", "ciw_queue", "main", "simpy_queue"]


@dataclass(frozen=True)
class QueueRun:
    """What one replication of the single queue produced, counting calls that arrived at or after the warm-up."""

    offered: int  # calls arriving after warm-up
    answered: int
    abandoned: int
    answered_within_t: int  # answered with wait <= t
    abandoned_within_t: int  # abandoned with wait <= t ("short abandons")
    asa: float | None  # mean wait of answered calls (zero waits included); None with nothing answered
    service_level: float | None  # answered within t / (offered - abandoned within t)  [the project's default variant]
    service_level_strict: float | None  # answered within t / offered
    abandonment_rate: float | None  # abandoned / offered
    waits: tuple[float, ...] | None = None  # waits of the answered calls in arrival order (keep_waits=True only)


# ---------------------------------------------------------------------------- shared pieces


def _check(calls_per_hour: float, aht: float, agents: int, hours: float, patience: float | None, t: float,
           warmup: float) -> None:
    if not (isinstance(agents, int) and not isinstance(agents, bool) and agents >= 1):
        raise ValueError(f"agents must be a whole number >= 1, got {agents!r}")
    for name, v in (("calls_per_hour", calls_per_hour), ("aht", aht), ("hours", hours)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if patience is not None and not (isinstance(patience, (int, float)) and math.isfinite(patience) and patience > 0):
        raise ValueError(f"patience must be None or a finite number > 0, got {patience!r}")
    for name, v in (("t", t), ("warmup", warmup)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if warmup >= hours * 3600.0:
        raise ValueError(f"warmup ({warmup} s) must end before the horizon ({hours * 3600.0} s)")


def _summarise(calls: Iterable[tuple[float, bool, float]], t: float, keep_waits: bool) -> QueueRun:
    """Count ``(arrival time, answered?, wait)`` per counted call (the warm-up already left out)."""
    ordered = sorted(calls)
    offered = len(ordered)
    answered_waits = [w for _, ans, w in ordered if ans]
    answered = len(answered_waits)
    abandoned = offered - answered
    ans_in_t = sum(1 for w in answered_waits if w <= t)
    ab_in_t = sum(1 for _, ans, w in ordered if not ans and w <= t)
    sl_base = offered - ab_in_t
    return QueueRun(
        offered=offered,
        answered=answered,
        abandoned=abandoned,
        answered_within_t=ans_in_t,
        abandoned_within_t=ab_in_t,
        asa=math.fsum(answered_waits) / answered if answered else None,
        service_level=ans_in_t / sl_base if sl_base else None,
        service_level_strict=ans_in_t / offered if offered else None,
        abandonment_rate=abandoned / offered if offered else None,
        waits=tuple(answered_waits) if keep_waits else None,
    )


# ---------------------------------------------------------------------------- SimPy


def simpy_queue(*, calls_per_hour: float, aht: float, agents: int, hours: float, patience: float | None = None,
                t: float = 20.0, seed: int = 0, warmup: float = 0.0, keep_waits: bool = False) -> QueueRun:
    """One replication of the shared single-queue model in SimPy (process-based, bank-renege style)."""
    _check(calls_per_hour, aht, agents, hours, patience, t, warmup)
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    staff = simpy.Resource(env, capacity=agents)
    horizon = hours * 3600.0
    arrival_rate = calls_per_hour / 3600.0
    calls: list[tuple[float, bool, float]] = []

    def caller(env: simpy.Environment):
        arrive = env.now
        with staff.request() as req:
            if patience is None:
                yield req
                answered = True
            else:
                results = yield req | env.timeout(rng.expovariate(1.0 / patience))
                answered = req in results
            if arrive >= warmup:
                calls.append((arrive, answered, env.now - arrive))
            if answered:
                yield env.timeout(rng.expovariate(1.0 / aht))

    def source(env: simpy.Environment):
        while True:
            gap = rng.expovariate(arrival_rate)
            if env.now + gap >= horizon:
                return
            yield env.timeout(gap)
            env.process(caller(env))

    env.process(source(env))
    env.run()
    return _summarise(calls, t, keep_waits)


# ---------------------------------------------------------------------------- Ciw


@cache
def _exponential_until() -> type:
    """Ciw's Exponential, falling silent at a stop date (a time-dependent custom distribution)."""
    import ciw

    class ExponentialUntil(ciw.dists.Exponential):
        def __init__(self, rate: float, stop: float) -> None:
            super().__init__(rate)
            self.stop = stop

        def __repr__(self) -> str:
            return f"ExponentialUntil(rate={self.rate}, stop={self.stop})"

        def sample(self, t: float | None = None, ind: Any = None) -> float:
            gap = super().sample(t, ind)
            return gap if t + gap < self.stop else math.inf

    return ExponentialUntil


def ciw_queue(*, calls_per_hour: float, aht: float, agents: int, hours: float, patience: float | None = None,
              t: float = 20.0, seed: int = 0, warmup: float = 0.0, keep_waits: bool = False) -> QueueRun:
    """One replication of the shared single-queue model in Ciw (one node; reneging for patience)."""
    _check(calls_per_hour, aht, agents, hours, patience, t, warmup)
    import ciw

    horizon = hours * 3600.0
    saved = random.getstate(), ciw.rng
    try:
        ciw.seed(seed)
        network = ciw.create_network(
            arrival_distributions=[_exponential_until()(calls_per_hour / 3600.0, horizon)],
            service_distributions=[ciw.dists.Exponential(1.0 / aht)],
            number_of_servers=[agents],
            reneging_time_distributions=None if patience is None else [ciw.dists.Exponential(1.0 / patience)],
        )
        sim = ciw.Simulation(network)
        sim.simulate_until_max_time(math.inf)
        records = sim.get_all_records(only=["service", "renege"])
    finally:
        random.setstate(saved[0])
        ciw.rng = saved[1]
    if sim.nodes[1].number_of_individuals:  # pragma: no cover - would mean Ciw stopped before the queue drained
        raise RuntimeError("Ciw stopped with calls still in the system")
    calls = [(r.arrival_date, r.record_type == "service", r.waiting_time) for r in records if r.arrival_date >= warmup]
    return _summarise(calls, t, keep_waits)


# ---------------------------------------------------------------------------- throughput


def _throughput(fn: Any, runs: int, **model: Any) -> tuple[float, int, QueueRun]:
    """Best-of-``runs`` calls simulated per second (all arrivals, warm-up included: warmup=0)."""
    best = math.inf
    run = None
    for i in range(runs):
        t0 = time.perf_counter()
        run = fn(seed=i, **model)
        best = min(best, time.perf_counter() - t0)
    assert run is not None
    return run.offered / best, run.offered, run


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Time SimPy and Ciw on one large single queue; print and return calls per second."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.general_sim", description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--calls-per-hour", type=float, default=2_500.0)
    ap.add_argument("--aht", type=float, default=130.0, help="mean handle time, seconds")
    ap.add_argument("--patience", type=float, default=180.0, help="mean patience, seconds; 0 = infinitely patient")
    ap.add_argument("--hours", type=float, default=12.0)
    ap.add_argument("--runs", type=int, default=3, help="repetitions per library (best time kept)")
    args = ap.parse_args(argv)
    model = {"calls_per_hour": args.calls_per_hour, "aht": args.aht, "agents": args.agents, "hours": args.hours,
                 "patience": args.patience or None}
    import ciw  # noqa: F401  (import cost kept out of the timings)
    import simpy  # noqa: F401

    from routing.staffing import queue_metrics

    m = queue_metrics(args.agents, args.calls_per_hour / 3600.0, args.aht, 20.0, model["patience"])
    print(f"single queue: {args.agents} agents, {args.calls_per_hour:g} calls/h, AHT {args.aht:g} s, "
          f"patience {args.patience or 'inf'} s, {args.hours:g} h; Erlang: occupancy {m.occupancy:.1%}, "
          f"ASA {m.asa:.1f} s, SL {m.service_level_excl_short_abandons:.1%}, abandon {m.abandon_rate:.1%}")
    results: dict[str, float] = {}
    for name, fn in (("simpy", simpy_queue), ("ciw", ciw_queue)):
        per_s, calls, run = _throughput(fn, args.runs, **model)
        results[f"{name}_calls_per_s"] = per_s
        print(f"  {name:<6} {per_s:>10,.0f} calls/s  ({calls:,} calls; this run: ASA {run.asa:.1f} s, "
              f"SL {run.service_level:.1%}, abandon {run.abandonment_rate:.1%})")
    return results


if __name__ == "__main__":
    main()
