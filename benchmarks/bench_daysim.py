"""The day simulator's speed: a 100-agent centre's day, and the single queue it shares with SimPy and Ciw.

Two measurements (issue 6), each with a baseline timed in the same run:

1. **The day**: ``benchmarks/scenarios/center-100.yaml``, about 30,000 calls through the sample
   clinic tree (prompts, menus, date-of-birth entry, lookups, callbacks) and 100 multi-skill agents
   with shifts, breaks and wrap-up, one replication. Reported: seconds to simulate, seconds for the
   KPIs, calls per second. Target: the day in under 10 s.
2. **The shared model**: one queue, 100 agents, 2,500 calls/h, AHT 130 s, exponential patience
   180 s, 12 h (about 30,000 calls): the day simulator (real interpreter and router, the model
   written as a tree + queues + scenario, ``benchmarks/single_queue.py``) against SimPy and Ciw
   running the same model (``benchmarks/general_sim.py``). Reported as ratios of calls per second;
   the Erlang A values are printed beside each simulator's own KPIs so the ratio compares equals.
   Target: not slower than the general simulator.

Run: ``python -m benchmarks.bench_daysim`` (or ``make bench``). ``--quick`` runs a small day (CI
smoke test). Best of ``--runs`` timings is kept (a noisy machine only ever adds time).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.general_sim import ciw_queue, simpy_queue
from benchmarks.single_queue import write_single_queue
from ivr.daysim.engine import DayModel, DaySimulator
from ivr.daysim.runner import measure
from ivr.daysim.scenario import load_scenario
from routing.staffing import queue_metrics

ROOT = Path(__file__).resolve().parent.parent
CENTER = ROOT / "benchmarks" / "scenarios" / "center-100.yaml"
SHARED = {"agents": 100, "calls_per_hour": 2_500.0, "aht": 130.0, "patience": 180.0, "hours": 12}


def _best(fn: Any, runs: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, out = dt, res
    return best, out


def bench_day(scenario: Path, runs: int) -> dict[str, float]:
    model = DayModel(load_scenario(scenario))
    sim_s, out = _best(lambda: DaySimulator(model).run(0), runs)
    kpi_s, rep = _best(lambda: measure(model, 0, out), 1)
    o = rep.report.overall
    print(f"day: {scenario.name}: {out.arrivals:,} calls, {len(model.roster)} agents, {out.events:,} events")
    print(f"  simulate  {sim_s:6.2f} s   ({out.arrivals / sim_s:,.0f} calls/s, {out.events / sim_s:,.0f} events/s)")
    print(f"  KPIs      {kpi_s:6.2f} s")
    total = sim_s + kpi_s
    print(f"  the day   {total:6.2f} s   target < 10 s: {'met' if total < 10 else 'NOT met'}")
    print(f"  (SL {o.service_level:.1%}, ASA {o.asa:.1f} s, abandonment {o.abandonment_rate:.1%}, "
          f"occupancy {o.occupancy:.1%}, IVR containment {o.containment_rate:.1%})")
    return {"day_seconds": total, "simulate_seconds": sim_s, "kpi_seconds": kpi_s, "calls": out.arrivals}


def bench_shared(runs: int, hours: int) -> dict[str, float]:
    model_args = dict(SHARED, hours=hours)
    m = queue_metrics(model_args["agents"], model_args["calls_per_hour"] / 3600, model_args["aht"], 20.0,
                      model_args["patience"])
    print(f"shared model: one queue, {model_args['agents']} agents, {model_args['calls_per_hour']:g} calls/h, "
          f"AHT {model_args['aht']:g} s, patience {model_args['patience']:g} s, {hours} h")
    print(f"  Erlang A: SL {m.service_level_excl_short_abandons:.1%}, ASA {m.asa:.1f} s, "
          f"abandonment {m.abandon_rate:.1%}")
    with tempfile.TemporaryDirectory() as tmp:
        scenario = write_single_queue(Path(tmp), agents=model_args["agents"],
                                      calls_per_hour=model_args["calls_per_hour"], aht=model_args["aht"],
                                      hours=hours, patience=model_args["patience"], replications=1)
        model = DayModel(load_scenario(scenario))
        ours_s, out = _best(lambda: DaySimulator(model).run(0), runs)
        ours = measure(model, 0, out).report.overall
    rows = [("day simulator", ours_s, out.arrivals, ours.service_level, ours.asa, ours.abandonment_rate)]
    sim_args = {k: model_args[k] for k in ("agents", "calls_per_hour", "aht", "patience", "hours")}
    for name, fn in (("simpy", simpy_queue), ("ciw", ciw_queue)):
        secs, run = _best(lambda fn=fn: fn(**sim_args, seed=1), runs)
        rows.append((name, secs, run.offered, run.service_level, run.asa, run.abandonment_rate))
    base = rows[1][2] / rows[1][1]  # SimPy's calls per second: the baseline
    results: dict[str, float] = {}
    for name, secs, calls, sl, asa, ab in rows:
        per_s = calls / secs
        results[f"{name.replace(' ', '_')}_calls_per_s"] = per_s
        print(f"  {name:<14} {per_s:>9,.0f} calls/s  {per_s / base:5.2f} x SimPy   "
              f"(SL {sl:.1%}, ASA {asa:.1f} s, abandonment {ab:.1%})")
    ratio_simpy = results["day_simulator_calls_per_s"] / results["simpy_calls_per_s"]
    ratio_ciw = results["day_simulator_calls_per_s"] / results["ciw_calls_per_s"]
    print(f"  target: not slower than the general simulator: vs SimPy {'met' if ratio_simpy >= 1 else 'NOT met'} "
          f"({ratio_simpy:.2f} x), vs Ciw {'met' if ratio_ciw >= 1 else 'NOT met'} ({ratio_ciw:.2f} x)")
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_daysim", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="timings per measurement (best kept)")
    ap.add_argument("--quick", action="store_true", help="the sample clinic day and a 1-hour shared model (smoke test)")
    args = ap.parse_args(argv)
    out: dict[str, float] = {}
    out.update(bench_day(ROOT / "scenarios" / "clinic-monday.yaml" if args.quick else CENTER, args.runs))
    out.update(bench_shared(args.runs, 1 if args.quick else SHARED["hours"]))
    return out


if __name__ == "__main__":
    main()
