"""The single-queue model (M/M/N, M/M/N+M) as a day-simulator scenario: one tree node, one queue, N agents.

Why this module exists: the day simulator is checked against the Erlang C and Erlang A formulas
(``tests/test_daysim_erlang.py``) and benchmarked against SimPy and Ciw on the same model
(``benchmarks/bench_daysim.py``). Both need the model written as the files a clinic would write:
a tree whose start node is the queue, a ``queues.yaml`` with no wrap-up, and a scenario with
constant Poisson arrivals, exponential talk time, exponential patience (or none), agents who pick
up at once (``answer_after: 0``) and are on shift all day.
"""

from __future__ import annotations

from pathlib import Path

import yaml

TREE = """\
name: Single queue
version: 1
description: One queue and nothing else, for the Erlang cross-check and the benchmark.
medical: false
languages: [en]
default_language: en
timezone: UTC
start: q
human: {target: q, key: "0"}
nodes:
  q:
    type: queue
    queue: main
    requirements: {skills: {general: 1}}
    fallback: {default: line}
  line:
    type: transfer
    to: "+15550100300"
    label: Answering service
    human: true
    timeout: 40
"""


def write_single_queue(folder: Path, *, agents: int, calls_per_hour: float, aht: float, hours: int,
                       patience: float | None = None, t: float = 20.0, warmup_minutes: float = 0.0,
                       replications: int = 10, seed: int = 1, start_hour: int = 1) -> Path:
    """Write tree, queues and scenario into ``folder``; return the scenario's path.

    Arrivals run from ``start_hour``:00 for ``hours`` hours (UTC, so no DST); agents are on shift
    from midnight to 23:59, which leaves the day time to drain.
    """
    if start_hour + hours > 23:
        raise ValueError("the arrivals must end by 23:00 so the day can drain before the shift ends")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "single-queue.yaml").write_text(TREE, encoding="utf-8")
    queues = {"queues": {"main": {"skills": {"general": 1}, "service_level": {"seconds": t, "target": 0.8},
                                  "wrap_up": 0, "ring_timeout": 60, "max_no_answer": 0,
                                  "when_nobody_logged_in": "wait"}}}
    (folder / "single-queue-queues.yaml").write_text(yaml.safe_dump(queues), encoding="utf-8")
    scenario = {
        "name": f"single queue: {agents} agents, {calls_per_hour:g} calls/h, AHT {aht:g} s"
                + (f", patience {patience:g} s" if patience else ""),
        "tree": "single-queue.yaml", "queues": "single-queue-queues.yaml", "date": "2026-11-23",
        "seed": seed, "replications": replications, "warmup_minutes": warmup_minutes,
        "arrivals": {f"{h:02d}:00": calls_per_hour for h in range(start_hour, start_hour + hours)},
        "mix": [{"name": "caller", "share": 1, "keys": ""}],
        "talk": {"default": {"dist": "exponential", "mean": aht}},
        "answer_after": 0,
        "agents": [{"name": "agent", "count": agents, "skills": {"general": 1}, "shift": "00:00-23:59"}],
    }
    if patience is not None:
        scenario["patience"] = {"dist": "exponential", "mean": patience}
    path = folder / "single-queue-scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path
