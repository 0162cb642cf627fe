"""Replications of a simulated day, their KPIs, and the summary with confidence intervals.

Each replication is an independent day (its own random stream, derived from the scenario's seed
and the replication number, so replication 3 gives the same day whether it runs alone, in a
series, or in a worker process). Its calls go through :func:`routing.kpis.compute_kpis` exactly
as live calls do in ``ivr report``; :func:`ivr.daysim.results.summarize` folds the replications.

Replications can run in worker processes (``jobs``): a day is single-threaded Python, and a
10-replication what-if on a 2-core machine then takes half the time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from ivr.daysim.engine import DayModel, DayOutcome, DaySimulator
from ivr.daysim.results import DaySummary, summarize, wait_bins
from ivr.daysim.scenario import LoadedScenario
from routing.kpis import KpiReport, compute_kpis

GROUPINGS = ("queue", "skill", "hour_of_day")


@dataclass(frozen=True)
class Replication:
    """What one replication contributes to the summary (small enough to send back from a worker)."""

    index: int
    report: KpiReport
    answered_waits: list[int]  # wait histogram counts (results.wait_bins)
    abandoned_waits: list[int]
    arrivals: int
    unfinished: int
    callbacks_served: int
    callbacks_unserved: int
    events: int


def replicate(model: DayModel, index: int, progress: Callable[[int], None] | None = None) -> Replication:
    """Run replication ``index`` and compute its KPIs."""
    out = DaySimulator(model, progress=progress).run(index)
    return measure(model, index, out)


def measure(model: DayModel, index: int, out: DayOutcome) -> Replication:
    """The KPIs of one simulated day (calls started from the end of the warm-up on)."""
    start = model.base + timedelta(seconds=model.warmup_start) if model.spec.warmup_minutes else None
    report = compute_kpis(out.records, out.agent_events, call_events=out.call_events, queues=model.queues,
                          by=GROUPINGS, tz=model.tree.tz, start=start)
    answered: list[float] = []
    abandoned: list[float] = []
    for r in out.records:
        if r.queued_at is None or (start is not None and r.started_at < start):
            continue
        if r.answered_at is not None:
            answered.append((r.answered_at - r.queued_at).total_seconds())
        elif r.outcome == "abandoned":
            abandoned.append((r.ended_at - r.queued_at).total_seconds())
    return Replication(index, report, wait_bins(answered), wait_bins(abandoned), out.arrivals, out.unfinished,
                       out.callbacks_served, out.callbacks_unserved, out.events)


# A worker process builds the model once (from the scenario file) and keeps it for its replications.
_worker_model: DayModel | None = None


def _worker_init(loaded: LoadedScenario, allow_lints: bool) -> None:
    global _worker_model
    _worker_model = DayModel(loaded, allow_lints=allow_lints)


def _worker_run(index: int) -> Replication:
    assert _worker_model is not None
    return replicate(_worker_model, index)


def run_replications(model: DayModel, replications: int, *, jobs: int = 1,
                     progress: Callable[[int], None] | None = None) -> list[Replication]:
    """Run replications 0..n-1; ``progress`` gets numbers of calls (as they arrive, or per finished
    replication when the work is spread over ``jobs`` processes)."""
    jobs = max(1, min(jobs, replications))
    if jobs == 1:
        return [replicate(model, i, progress) for i in range(replications)]
    with ProcessPoolExecutor(jobs, initializer=_worker_init,
                             initargs=(model.loaded, model.allow_lints)) as pool:
        done: list[Replication] = []
        for rep in pool.map(_worker_run, range(replications)):
            done.append(rep)
            if progress is not None:
                progress(rep.arrivals)
        return done


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def summarize_day(model: DayModel, reps: list[Replication]) -> DaySummary:
    """The replications folded into one :class:`DaySummary` (means and confidence intervals)."""
    spec = model.spec
    n = len(reps)
    notes: list[str] = list(model.notes)
    unfinished = sum(r.unfinished for r in reps)
    if unfinished:
        notes.append(f"{unfinished} call(s) over {n} replication(s) were still in progress 6 h after the last "
                     "shift ended and were cut off (recorded as ended by the engine)")
    served = sum(r.callbacks_served for r in reps) / n
    booked = sum(r.report.overall.callbacks for r in reps) / n
    unserved = sum(r.callbacks_unserved for r in reps) / n
    if booked:
        notes.append(f"callbacks: {booked:.1f} booked per day on average, {served:.1f} dialled back by an agent "
                     f"the same day, {unserved:.1f} still waiting when the day ended (a callback's conversation "
                     "counts in agent occupancy, not as a call)")
    if spec.warmup_minutes:
        notes.append(f"calls in the first {spec.warmup_minutes:g} minutes of the day are left out (warm-up)")
    notes.extend(reps[0].report.notes)
    seen = {q for r in reps for q in r.report.groups.get("queue", {})}
    queues = {q: s for q, s in model.queues.items() if q in seen}  # the queues this tree's callers reached
    return summarize(
        [r.report for r in reps], [(r.answered_waits, r.abandoned_waits) for r in reps], level=spec.confidence,
        name=spec.name, scenario_file=str(model.loaded.file), tree=model.tree.label, date=spec.date.isoformat(),
        tz=getattr(model.tree.tz, "key", str(model.tree.tz)), seed=spec.seed,
        sl_targets={q: s.service_level.target for q, s in queues.items()},
        sl_seconds={q: s.service_level.seconds for q, s in queues.items()},
        agents_scheduled=len(model.roster), warmup_minutes=spec.warmup_minutes, notes=tuple(notes),
    )
