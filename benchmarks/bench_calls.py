"""Complete simulated calls per second through the sample clinic tree, on one core.

Three measurements in one run, so the ratios hold on a noisy machine:

- ``baseline``: a bare walk of the same journeys over the raw YAML dicts (no
  validation, no timing, no trace): about the least work any interpreter
  could do in Python. It is the yardstick, not a competitor.
- ``interpreter``: the pure core, ``Interpreter.start/step``, replaying the
  event stream of each journey (what an adapter feeds it live).
- ``simulator``: the whole simulated call (virtual clock, prompt timing, key
  script, collect timers) as ``ivr simulate`` and the day simulator run it.

Target (issue 2): at least 5,000 complete simulated calls per second.
Run: ``python -m benchmarks.bench_calls`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from ivr import events as E
from ivr.interpreter import Interpreter
from ivr.simulate import CallSimulator, SimOptions
from ivr.tree import load_tree

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "calltrees" / "clinic-main.yaml"
TZ = ZoneInfo("America/New_York")
OPEN = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
CLOSED = datetime(2026, 11, 23, 20, 30, tzinfo=TZ)
HOOKS = {"find_appointment": {"date": "December 3", "id": "A-1"}, "cancel_appointment": {}}

# A mix of patient journeys: (time, keys, queue outcomes)
JOURNEYS: list[tuple[datetime, list[str], dict[str, str]]] = [
    (OPEN, ["2", "04121980#"], {}),  # refill recorded
    (OPEN, ["1", "1"], {}),  # book: scheduling queue
    (OPEN, ["1", "2", "04121980#", "1"], {}),  # cancel via lookup + sms
    (OPEN, ["3", "2"], {}),  # insurance queue
    (OPEN, ["9", "4", "1"], {}),  # Spanish, urgent nurse
    (OPEN, ["!0"], {}),  # barge-in to a person
    (OPEN, [".", ".", "."], {}),  # silence -> front desk
    (OPEN, ["5"], {"records": "no_agents"}),  # records -> voicemail
    (CLOSED, ["1"], {}),  # after hours -> nurse line
    (OPEN, ["1", "1", "4"], {"scheduling": "answered"}),  # agent then survey
]


def sim_options(at: datetime, keys: list[str], queues: dict[str, str], i: int) -> SimOptions:
    return SimOptions(at=at, keys=list(keys), queue_outcomes=queues, hooks=HOOKS, call_id=f"b{i}")


def record_events(tree: Any) -> list[tuple[E.CallStarted, list[Any]]]:
    """Run each journey once through the simulator and keep the events the interpreter saw."""
    streams = []
    for i, (at, keys, queues) in enumerate(JOURNEYS):
        sim = CallSimulator(tree)
        seen: list[Any] = []
        real_step = sim.interp.step

        def spy(state: Any, ev: Any, _real: Any = real_step, _seen: list[Any] = seen) -> Any:
            _seen.append(ev)
            return _real(state, ev)

        sim.interp.step = spy  # type: ignore[method-assign]
        res = sim.run(sim_options(at, keys, queues, i), record_lines=False)
        streams.append((E.CallStarted(at=at, call_id=f"b{i}", caller="+15555550123"), seen))
        assert res.state.outcome is not None
    return streams


def bare_walk(raw: dict[str, Any], keys: list[str], is_open: bool) -> str:
    """The yardstick: follow the same journey over plain dicts with the least logic possible."""
    nodes = raw["nodes"]
    nid = raw["start"]
    ks = list(keys)
    for _ in range(100):
        if nid == "human":
            nid = raw["human"]["target"]
        n = nodes[nid]
        t = n["type"]
        if t in ("say", "play", "set", "sms", "callback"):
            nid = n["next"]
        elif t == "branch":
            nid = n["cases"][0]["next"] if is_open else n["default"]
        elif t in ("menu", "input", "survey"):
            k = ks.pop(0) if ks else "."
            k = k.lstrip("!")
            if t == "menu":
                opt = n["options"].get(k, raw["human"]["target"]) if k != "." else n["no_input"]["next"]
                nid = opt["next"] if isinstance(opt, dict) else opt
            else:
                nid = n["next"]
        elif t == "lookup":
            nid = n["next"]
        else:
            return nid
    return nid


def timed(fn: Any, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    tree = load_tree(TREE)
    raw = yaml.safe_load(TREE.read_text(encoding="utf-8"))
    streams = record_events(tree)
    interp = Interpreter(tree)
    sim = CallSimulator(tree)
    n = args.calls
    plan = [JOURNEYS[i % len(JOURNEYS)] for i in range(n)]
    splan = [streams[i % len(streams)] for i in range(n)]

    def run_baseline() -> None:
        for at, keys, _ in plan:
            bare_walk(raw, keys, at is OPEN)

    def run_interpreter() -> None:
        for start, evs in splan:
            state, _ = interp.start(start)
            for ev in evs:
                state, _ = interp.step(state, ev)

    def run_simulator() -> None:
        for i, (at, keys, queues) in enumerate(plan):
            sim.run(sim_options(at, keys, queues, i), record_lines=False)

    results = {}
    for name, fn in (("baseline", run_baseline), ("interpreter", run_interpreter), ("simulator", run_simulator)):
        fn()  # warm up
        times = timed(fn, args.rounds)
        best = min(times)
        results[name] = n / best
        results[name + "_median"] = n / statistics.median(times)
    events = sum(len(evs) + 1 for _, evs in splan) / n
    print(f"clinic tree, {len(JOURNEYS)} journeys mixed, {n} calls x {args.rounds} rounds (best round; median in brackets)")
    print(f"  events per call (mean): {events:.1f}")
    for name in ("baseline", "interpreter", "simulator"):
        rate = results[name]
        ratio = rate / results["baseline"]
        print(f"  {name:<12} {rate:>10,.0f} calls/s  [{results[name + '_median']:>9,.0f}]   {ratio:6.3f} x baseline")
    def verdict(rate: float) -> str:
        return "met" if rate >= 5000 else "NOT met"

    print("  target 5,000 complete simulated calls/s on one core:")
    print(f"    pure interpreter, whole calls from answer to end:            {results['interpreter']:>7,.0f}/s  "
          f"{verdict(results['interpreter'])}")
    print(f"    ivr simulate's full adapter (virtual clock, timers, script): {results['simulator']:>7,.0f}/s  "
          f"{verdict(results['simulator'])}")
    return results


if __name__ == "__main__":
    main()
