"""Routing decisions per second and p99 latency: 1,000 agents, 50 skills, 1,000 waiting calls.

Beside it, in the same run, a naive matcher that scans every agent for every
decision (what a router without an index does), on the same workload. Target
(issue 3): p99 <= 100 us per decision and at least 20x the naive matcher.

A *decision* is one matching step: a call arriving and being offered to the
best available agent (or left waiting), or an agent becoming free and taking
the best call across its queues. Run: ``python -m benchmarks.bench_routing``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from agents.roster import AgentSpec
from agents.state import Status
from routing.model import Offer
from routing.queues import QueueSpec
from routing.router import Router

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
SKILLS = [f"s{i:02d}" for i in range(50)]
LANGS = ["en", "es", "fr", "zh"]


def build(n_agents: int, n_queues: int, seed: int) -> tuple[dict[str, QueueSpec], list[AgentSpec], random.Random]:
    rng = random.Random(seed)
    queues = {f"q{i}": QueueSpec(skills={SKILLS[i % 50]: 3}, when_nobody_logged_in="wait", ring_timeout=1e6)
              for i in range(n_queues)}
    agents = []
    for i in range(n_agents):
        skills = {s: rng.randint(1, 10) for s in rng.sample(SKILLS, 6)}
        langs = ["en"] + (["es"] if rng.random() < 0.4 else []) + ([rng.choice(LANGS[2:])] if rng.random() < 0.1 else [])
        agents.append(AgentSpec(id=f"a{i}", name=f"Agent {i}", endpoint=f"PJSIP/{2000 + i}", skills=skills, languages=langs))
    return queues, agents, rng


def call_args(rng: random.Random, n_queues: int) -> dict:
    q = rng.randrange(n_queues)
    skill = SKILLS[q % 50]
    extra = [(rng.choice(SKILLS), rng.randint(1, 5))] if rng.random() < 0.3 else []
    return {"queue": f"q{q}", "skills": [(skill, rng.randint(2, 8))] + extra,
            "language": "es" if rng.random() < 0.25 else "en", "priority": rng.choice([0, 0, 0, 1, 5])}


class NaiveMatcher:
    """The yardstick: for every decision, scan all agents (or all waiting calls) and pick the best."""

    def __init__(self, agents: list[AgentSpec]) -> None:
        self.agents = agents
        self.ready: dict[str, float] = {}  # agent -> idle since (ts)
        self.waiting: list[tuple[int, float, int, dict]] = []

    def eligible(self, a: AgentSpec, call: dict) -> bool:
        return all(a.skills.get(s, 0) >= lvl for s, lvl in call["skills"]) and call["language"] in a.languages

    def arrive(self, call: dict, now: float, seq: int) -> str | None:
        best = None
        for a in self.agents:  # linear scan over every agent
            if a.id in self.ready and self.eligible(a, call) and (best is None or self.ready[a.id] < self.ready[best.id]):
                best = a
        if best is None:
            self.waiting.append((-call["priority"], now, seq, call))
            return None
        del self.ready[best.id]
        return best.id

    def free(self, agent: AgentSpec, now: float) -> dict | None:
        best = None
        for item in self.waiting:  # linear scan over every waiting call
            if self.eligible(agent, item[3]) and (best is None or item[:3] < best[:3]):
                best = item
        if best is None:
            self.ready[agent.id] = now
            return None
        self.waiting.remove(best)
        return best[3]


def run_router(queues, agents, rng, n_waiting: int, n_decisions: int) -> list[float]:
    r = Router(queues, agents)
    for i, a in enumerate(agents):
        r.login(a.id, T0 + timedelta(seconds=i * 0.01))
    # Fill the lines: calls nobody can take yet (every agent busy) until 1,000 wait.
    now = T0 + timedelta(seconds=60)
    seq = 0
    while len(r.calls) - len(r.reservations) < n_waiting:
        d = r.enqueue(f"w{seq}", now=now, **call_args(rng, len(queues)))
        for o in d:
            if isinstance(o, Offer):
                r.answered(o.call_id, now)
        seq += 1
    lat: list[float] = []
    on_call = [aid for aid, st in r.agents.items() if st.status is Status.ON_CALL]
    perf = time.perf_counter
    for i in range(n_decisions):
        now += timedelta(seconds=0.5)
        if i % 2 == 0 and on_call:  # an agent finishes: wrap-up of 0 s, then takes the best waiting call
            aid = on_call.pop(rng.randrange(len(on_call)))
            r.call_ended(aid, now)
            t0 = perf()
            d = r.tick(now + timedelta(seconds=30))  # wrap-up ends -> ready -> matched
            lat.append(perf() - t0)
        else:  # a new call arrives
            args = call_args(rng, len(queues))
            t0 = perf()
            d = r.enqueue(f"n{i}", now=now, **args)
            lat.append(perf() - t0)
        for o in d:
            if isinstance(o, Offer):
                r.answered(o.call_id, now)
                on_call.append(o.agent_id)
    return lat


def run_naive(agents, rng, n_queues: int, n_waiting: int, n_decisions: int) -> list[float]:
    m = NaiveMatcher(agents)
    for i, a in enumerate(agents):
        m.ready[a.id] = i * 0.01
    seq = 0
    busy: list[AgentSpec] = []
    by_id = {a.id: a for a in agents}
    while len(m.waiting) < n_waiting:
        got = m.arrive(call_args(rng, n_queues), 60.0, seq)
        if got:
            busy.append(by_id[got])
        seq += 1
    lat: list[float] = []
    perf = time.perf_counter
    now = 60.0
    for i in range(n_decisions):
        now += 0.5
        if i % 2 == 0 and busy:
            a = busy.pop(rng.randrange(len(busy)))
            t0 = perf()
            got_call = m.free(a, now)
            lat.append(perf() - t0)
            if got_call is not None:
                busy.append(a)
        else:
            args = call_args(rng, n_queues)
            t0 = perf()
            got = m.arrive(args, now, seq + i)
            lat.append(perf() - t0)
            if got:
                busy.append(by_id[got])
    return lat


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description="routing decisions: indexed router vs naive scan")
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=1000)
    ap.add_argument("--decisions", type=int, default=20000)
    ap.add_argument("--queues", type=int, default=50)
    args = ap.parse_args(argv)
    queues, agents, _ = build(args.agents, args.queues, 7)
    gc.collect()
    gc.disable()
    try:
        lat = run_router(queues, agents, random.Random(11), args.waiting, args.decisions)
        naive = run_naive(agents, random.Random(11), args.queues, args.waiting, args.decisions)
    finally:
        gc.enable()
    res = {
        "router_per_s": len(lat) / sum(lat), "router_p50_us": pct(lat, 0.5) * 1e6, "router_p99_us": pct(lat, 0.99) * 1e6,
        "naive_per_s": len(naive) / sum(naive), "naive_p50_us": pct(naive, 0.5) * 1e6, "naive_p99_us": pct(naive, 0.99) * 1e6,
    }
    res["speedup"] = res["router_per_s"] / res["naive_per_s"]
    print(f"{args.agents} agents, 50 skills, {args.queues} queues, {args.waiting} calls waiting; {args.decisions} decisions each")
    print(f"  naive linear scan  {res['naive_per_s']:>10,.0f} decisions/s   p50 {res['naive_p50_us']:7.1f} us   p99 {res['naive_p99_us']:7.1f} us")
    print(f"  indexed router     {res['router_per_s']:>10,.0f} decisions/s   p50 {res['router_p50_us']:7.1f} us   p99 {res['router_p99_us']:7.1f} us")
    print(f"  router / naive: {res['speedup']:.1f}x  (target >= 20x: {'met' if res['speedup'] >= 20 else 'NOT met'}); "
          f"p99 target <= 100 us: {'met' if res['router_p99_us'] <= 100 else 'NOT met'}")
    print(f"  mean per decision: router {statistics.fmean(lat) * 1e6:.1f} us, naive {statistics.fmean(naive) * 1e6:.1f} us")
    return res


if __name__ == "__main__":
    main()
