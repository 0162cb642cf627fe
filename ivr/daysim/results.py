"""What a simulated day produces: KPIs over replications, each with a confidence interval.

Every replication is one independent day (its own random stream). Its calls and agent
state changes go through :func:`routing.kpis.compute_kpis`, the same function ``ivr report``
runs over live traffic, so simulated and real numbers mean the same thing. This module turns
the replications' :class:`routing.kpis.KpiReport` values into one :class:`DaySummary`: for each
KPI (overall, per queue, per skill, per hour of day, per agent) the mean over replications and a
Student-t confidence interval (:func:`routing.kpis.confidence_interval`).

The summary is plain data (``to_json``) so the terminal table, CSV/JSON and the HTML report
all read the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.kpis import ConfidenceInterval, KpiReport, confidence_interval

# Kpis fields that are numbers worth an interval (booleans and the T/target echoes are not).
METRICS: tuple[str, ...] = (
    "calls", "offered", "answered", "abandoned", "other_exits", "answered_within_t", "abandoned_within_t",
    "overflowed", "service_level", "service_level_strict", "asa", "avg_wait", "p90_wait", "max_wait",
    "abandonment_rate", "avg_talk", "avg_wrap_up", "aht", "transfers", "contained", "containment_rate",
    "ivr_abandoned", "time_to_person_avg", "time_to_person_p90", "callbacks", "fallbacks", "errors",
    "occupancy",
)
AGENT_METRICS: tuple[str, ...] = ("answered", "aht", "occupancy", "staffed_seconds", "busy_seconds", "not_ready_seconds")
WAIT_BIN_SECONDS = 15.0
WAIT_BINS = 20  # 0-15 s, ..., 285-300 s, then one bin for 300 s and more


@dataclass(frozen=True)
class Estimate:
    """A KPI over replications: ``mean`` and the interval ``[low, high]`` at the summary's level.

    ``n`` is how many replications had the KPI defined (a rate with no calls is undefined, not 0);
    ``low``/``high`` are None when ``n`` < 2. ``mean`` is None when no replication defined it.
    """

    mean: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: Iterable[float | None], level: float) -> "Estimate":
        xs = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not xs:
            return cls(None, None, None, 0)
        ci: ConfidenceInterval = confidence_interval(xs, level)
        return cls(ci.mean, ci.low, ci.high, ci.n)

    def contains(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class WaitHistogram:
    """Queue waits of offered calls, in bins of ``bin_seconds`` (the last bin is open-ended), as the mean
    count per replication: ``answered[i]`` callers were answered after a wait in bin i, ``abandoned[i]``
    hung up after one."""

    bin_seconds: float
    answered: tuple[float, ...]
    abandoned: tuple[float, ...]

    @property
    def edges(self) -> tuple[float, ...]:
        """Lower edge of each bin, in seconds."""
        return tuple(i * self.bin_seconds for i in range(len(self.answered)))

    def as_dict(self) -> dict[str, Any]:
        return {"bin_seconds": self.bin_seconds, "edges": list(self.edges),
                "answered": list(self.answered), "abandoned": list(self.abandoned)}


@dataclass(frozen=True)
class DaySummary:
    """A simulated day over ``replications`` replications.

    - ``overall[metric]``; ``groups[grouping][key][metric]`` for groupings ``queue``, ``skill`` and
      ``hour_of_day`` (keys like ``"09:00"``); ``agents[agent_id][metric]``.
    - ``sl_targets[queue]``: each queue's service-level target and ``sl_seconds[queue]`` its T (from
      ``queues.yaml``), so a report can draw the target line.
    """

    name: str
    scenario_file: str
    tree: str
    date: str
    tz: str
    replications: int
    seed: int
    level: float
    sl_variant: str
    overall: Mapping[str, Estimate]
    groups: Mapping[str, Mapping[str, Mapping[str, Estimate]]]
    agents: Mapping[str, Mapping[str, Estimate]]
    wait_histogram: WaitHistogram
    sl_targets: Mapping[str, float]
    sl_seconds: Mapping[str, float]
    agents_scheduled: int
    warmup_minutes: float = 0.0
    notes: tuple[str, ...] = field(default=())

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows for CSV: group, key, metric, mean, low, high, n."""
        out: list[dict[str, Any]] = []

        def add(group: str, key: str, metrics: Mapping[str, Estimate]) -> None:
            for m, e in metrics.items():
                out.append({"group": group, "key": key, "metric": m, **e.as_dict()})

        add("all", "all", self.overall)
        for g, keyed in self.groups.items():
            for k, metrics in keyed.items():
                add(g, k, metrics)
        for a, metrics in self.agents.items():
            add("agent", a, metrics)
        return out

    def to_json(self) -> dict[str, Any]:
        def block(metrics: Mapping[str, Estimate]) -> dict[str, Any]:
            return {m: e.as_dict() for m, e in metrics.items()}

        return {
            "name": self.name, "scenario_file": self.scenario_file, "tree": self.tree, "date": self.date,
            "tz": self.tz, "replications": self.replications, "seed": self.seed, "confidence_level": self.level,
            "sl_variant": self.sl_variant, "agents_scheduled": self.agents_scheduled,
            "warmup_minutes": self.warmup_minutes,
            "overall": block(self.overall),
            "groups": {g: {k: block(m) for k, m in keyed.items()} for g, keyed in self.groups.items()},
            "agents": {a: block(m) for a, m in self.agents.items()},
            "wait_histogram": self.wait_histogram.as_dict(),
            "sl_targets": dict(self.sl_targets), "sl_seconds": dict(self.sl_seconds),
            "notes": list(self.notes),
        }


def wait_bins(waits: Iterable[float], bin_seconds: float = WAIT_BIN_SECONDS, bins: int = WAIT_BINS) -> list[int]:
    """Counts of ``waits`` in ``bins`` bins of ``bin_seconds``, plus one open-ended bin."""
    counts = [0] * (bins + 1)
    for w in waits:
        counts[min(bins, int(w // bin_seconds))] += 1
    return counts


def summarize(reports: Sequence[KpiReport], histograms: Sequence[tuple[list[int], list[int]]], *,
              level: float = 0.95, **meta: Any) -> DaySummary:
    """Fold the replications' reports (and their wait histograms: (answered, abandoned) counts) into one summary.

    ``meta`` gives the descriptive fields of :class:`DaySummary` (name, tree, date, ...).
    """
    if not reports:
        raise ValueError("a summary needs at least one replication")

    def fold(kpis: Sequence[Any], names: Sequence[str]) -> dict[str, Estimate]:
        return {m: Estimate.of((getattr(k, m) for k in kpis), level) for m in names}

    overall = fold([r.overall for r in reports], METRICS)
    groups: dict[str, dict[str, dict[str, Estimate]]] = {}
    for g in reports[0].groups:
        keys: dict[str, None] = {}
        for r in reports:
            keys.update(dict.fromkeys(r.groups.get(g, {})))
        groups[g] = {}
        for k in sorted(keys):
            present = [r.groups[g][k] for r in reports if k in r.groups.get(g, {})]
            groups[g][k] = fold(present, METRICS)
    agents: dict[str, dict[str, Estimate]] = {}
    agent_ids = sorted({a for r in reports for a in r.agents})
    for a in agent_ids:
        agents[a] = fold([r.agents[a] for r in reports if a in r.agents], AGENT_METRICS)
    n = len(histograms) or 1
    width = max((len(h[0]) for h in histograms), default=WAIT_BINS + 1)
    ans = [0.0] * width
    ab = [0.0] * width
    for answered, abandoned in histograms:
        for i, c in enumerate(answered):
            ans[i] += c / n
        for i, c in enumerate(abandoned):
            ab[i] += c / n
    return DaySummary(overall=overall, groups=groups, agents=agents, level=level, replications=len(reports),
                      wait_histogram=WaitHistogram(meta.pop("bin_seconds", WAIT_BIN_SECONDS), tuple(ans), tuple(ab)),
                      sl_variant=reports[0].sl_variant, **meta)
