"""Contact-center KPIs from finished calls and agent state changes: pure functions over plain records.

Everything here is computed from values handed in: :class:`routing.store.CallRecord` rows (or any
object with the same attributes), optionally the agents' state transitions (``AgentEvent``-like) and
the router's queue events (``CallEvent``-like). No I/O, no clock, no database: ``ivr report`` feeds it
rows read from the store, and the day simulator can feed it the records of a virtual day, so live and
simulated numbers are computed by the same code.

The definitions (formula, numerator and denominator, which variant) are in ``routing/KPIS.md``;
each field of :class:`Kpis` repeats the short form. In brief:

- **offered**: calls that reached a queue (``queued_at`` or ``queue`` set on the record);
- **service level** (default variant, "abandons within T excluded"):
  answered within T / (offered − abandoned within T); **strict**: answered within T / offered;
  T is the queue's ``service_level.seconds`` (``queues.yaml``), 20 s for a queue not configured;
- waits and percentiles in seconds; percentiles by the nearest-rank method (:func:`percentile`).

:func:`confidence_interval` (Student t, no scipy) is for replications of a simulated day.
"""

from __future__ import annotations

import itertools
import math
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from operator import attrgetter, sub
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_SL_SECONDS", "GROUPINGS", "NO_QUEUE", "AgentKpis", "ConfidenceInterval", "KpiReport", "Kpis",
    "compute_kpis", "confidence_interval", "percentile", "t_cdf", "t_quantile",
]

DEFAULT_SL_SECONDS = 20.0  # service-level threshold T for a queue that queues.yaml does not describe
GROUPINGS = ("queue", "hour", "hour_of_day", "skill", "tree", "channel")
NO_QUEUE = "(no queue)"  # the ``queue`` group of calls that never reached a queue
BUSY = frozenset({"on_call", "wrap_up"})  # occupancy's numerator
STAFFED = frozenset({"ready", "reserved", "on_call", "wrap_up"})  # logged in and not in not_ready
NOT_READY = "not_ready"
CONTAINED_OUTCOMES = frozenset({"record", "voicemail"})  # plus a tree hangup (outcome hangup, ended by the engine)


# ====================================================================== inputs (duck-typed)


class CallLike(Protocol):
    """What the KPIs read from a finished call (``routing.store.CallRecord`` has it all)."""

    @property
    def call_id(self) -> str: ...
    @property
    def tree(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime: ...
    @property
    def outcome(self) -> str: ...
    @property
    def ended_by(self) -> str: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def queued_at(self) -> datetime | None: ...
    @property
    def answered_at(self) -> datetime | None: ...
    @property
    def agent_ended_at(self) -> datetime | None: ...


class AgentEventLike(Protocol):
    """One agent state transition (``routing.store.AgentEvent``); statuses as strings or ``Status`` values."""

    @property
    def agent_id(self) -> str: ...
    @property
    def from_status(self) -> Any: ...
    @property
    def to_status(self) -> Any: ...
    @property
    def call_id(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...


class CallEventLike(Protocol):
    """One router queue event (``routing.store.CallEvent``): kind ``left``, ``queue_failed`` or ``overflowed``."""

    @property
    def call_id(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...


# ====================================================================== results


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one set of calls (all calls, one queue, one hour, ...). Times in seconds; rates 0..1.

    A rate or mean whose denominator is zero is ``None`` (not 0): "no calls" is not "0 % answered".
    """

    calls: int  # every call in the set (started in the window)
    offered: int  # reached a queue: queued_at (or queue) set
    answered: int  # offered, and an agent answered (answered_at set)
    abandoned: int  # offered, not answered, outcome "abandoned" (the caller hung up while waiting)
    other_exits: int  # offered, neither answered nor abandoned: timeout, full, no agents, wait key, fallback
    answered_within_t: int  # answered with wait <= T
    abandoned_within_t: int  # abandoned with wait <= T ("short abandons")
    overflowed: int  # offered calls the router moved to another queue (needs call events)
    service_level: float | None  # answered_within_t / (offered - abandoned_within_t)  [default variant]
    service_level_strict: float | None  # answered_within_t / offered
    sl_seconds: float | None  # T when every offered call in the set has the same T, else None (mixed)
    sl_target: float | None  # the queues' service_level.target when they all share one
    asa: float | None  # mean wait of answered calls (queued_at -> answered_at)
    avg_wait: float | None  # mean wait of offered calls whose queue exit time is known
    p90_wait: float | None  # nearest-rank 90th percentile of the same waits
    max_wait: float | None
    waits: int  # how many waits avg_wait / p90_wait are over
    abandonment_rate: float | None  # abandoned / offered
    avg_talk: float | None  # mean answered_at -> agent_ended_at (ended_at when the agent end is unknown)
    avg_wrap_up: float | None  # mean wrap-up of answered calls, from agent events (None without them)
    aht: float | None  # avg_talk + avg_wrap_up (just avg_talk when no wrap-up is known)
    aht_includes_wrap_up: bool
    transfers: int  # outcome "transfer": the tree sent the call to a number
    contained: int  # never queued, and ended in record, voicemail, or a hangup by the tree
    containment_rate: float | None  # contained / calls
    ivr_abandoned: int  # never queued, outcome hangup, ended by the caller: hung up in the IVR
    time_to_person_avg: float | None  # mean started_at -> answered_at of answered calls
    time_to_person_p90: float | None
    callbacks: int  # outcome "callback"
    fallbacks: int  # outcome "fallback": handed to the dialplan fallback
    errors: int  # outcome "error"
    occupancy: float | None  # busy / staffed agent time (only for "all" and hour groups; needs agent events)
    busy_seconds: float | None  # agents' on_call + wrap_up time
    staffed_seconds: float | None  # agents' ready + reserved + on_call + wrap_up time

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AgentKpis:
    """One agent over the window: calls answered, handle time, and occupancy from their state changes."""

    agent_id: str
    answered: int
    avg_talk: float | None
    avg_wrap_up: float | None
    aht: float | None
    logged_in_seconds: float  # any status but logged_out
    not_ready_seconds: float
    staffed_seconds: float  # logged in and not in not_ready: ready, reserved, on_call, wrap_up
    busy_seconds: float  # on_call + wrap_up
    occupancy: float | None  # busy / staffed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KpiReport:
    """``overall``; ``groups[grouping][key]`` (e.g. ``groups["queue"]["billing"]``); ``agents[agent_id]``."""

    overall: Kpis
    groups: Mapping[str, Mapping[str, Kpis]]
    agents: Mapping[str, AgentKpis]
    tz: str
    start: datetime | None = None
    end: datetime | None = None
    sl_variant: str = "abandons within T excluded: answered within T / (offered - abandoned within T)"
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """No call started in the window."""
        return self.overall.calls == 0

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows for CSV/JSON: ``{"group": "all", "key": "all", ...Kpis}``, then one row per group key,
        then ``{"group": "agent", "key": agent_id, ...AgentKpis}``. Call rows and agent rows have different
        columns (a CSV writer takes the union)."""
        rows: list[dict[str, Any]] = [{"group": "all", "key": "all", **self.overall.as_dict()}]
        for name, keyed in self.groups.items():
            rows.extend({"group": name, "key": key, **k.as_dict()} for key, k in keyed.items())
        rows.extend({"group": "agent", "key": a.agent_id, **a.as_dict()} for a in self.agents.values())
        return rows


class ConfidenceInterval(NamedTuple):
    """``mean ± half_width`` at ``level`` over ``n`` values (``half_width`` etc. None when n < 2)."""

    mean: float
    low: float | None
    high: float | None
    half_width: float | None
    n: int
    level: float


# ====================================================================== statistics


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``p`` (0 < p <= 1) of the values at or below it.

    Sorted values x_1 <= ... <= x_n: x_k with k = ceil(p * n). Always an observed value (no interpolation):
    "90 % of callers waited at most this long". None for no values.
    """
    if not 0 < p <= 1:
        raise ValueError(f"percentile p must be in (0, 1], got {p}")
    s = sorted(values)
    if not s:
        return None
    k = max(1, math.ceil(p * len(s) - 1e-9))  # 1e-9: 0.9 * 10 is 9.000000000000002 in floating point
    return s[k - 1]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom: 1 - I_{df/(df+t²)}(df/2, 1/2) / 2 for t > 0."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(df):
        return statistics.NormalDist().cdf(t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (``t_quantile(0.975, 4)`` = 2.776).

    Closed forms for df 1 and 2; otherwise the CDF (regularized incomplete beta) inverted by bisection
    to about 1e-12 relative. ``df = inf`` gives the normal quantile. No scipy needed.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2.0


def confidence_interval(values: Iterable[float | None], level: float = 0.95) -> ConfidenceInterval:
    """Two-sided Student-t interval for the mean of independent replications: mean ± t_{(1+level)/2, n-1}·s/√n.

    ``s`` is the sample standard deviation (n - 1). ``None`` and NaN values (a KPI undefined in that
    replication, e.g. no calls offered) are left out; ``n`` says how many counted. With one value the
    interval is unknown (``half_width`` None). Raises ValueError when no value is left.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(xs)
    if n == 0:
        raise ValueError("a confidence interval needs at least one value")
    mean = math.fsum(xs) / n
    if n == 1:
        return ConfidenceInterval(mean, None, None, None, 1, level)
    half = t_quantile(0.5 + level / 2.0, n - 1) * statistics.stdev(xs) / math.sqrt(n)
    return ConfidenceInterval(mean, mean - half, mean + half, half, n, level)


# ====================================================================== one call, as the KPIs see it

# A call's disposition: the counter of :class:`Kpis` it adds one to. An offered call is answered or
# abandoned (each within T or not) or an other exit; a call that never reached a queue is contained, an
# IVR abandon, or neither.
_ANSWERED, _ANSWERED_IN_T, _ABANDONED, _ABANDONED_IN_T, _OTHER_EXIT = (
    "answered", "answered_in_t", "abandoned", "abandoned_in_t", "other_exit")
_CONTAINED, _IVR_ABANDONED, _IVR_OTHER = "contained", "ivr_abandoned", "ivr_other"
_OFFERED = frozenset({_ANSWERED, _ANSWERED_IN_T, _ABANDONED, _ABANDONED_IN_T, _OTHER_EXIT})


@dataclass(frozen=True, eq=False)
class _Tally:
    """Everything :func:`_summarize` counts about a call. :func:`_derive` makes one instance per distinct
    value and shares it, so a tally is hashed by identity (``eq=False``) and a group's counters all come
    from one C-level ``Counter`` pass over its calls, not one Python pass per counter."""

    disposition: str
    outcome: str
    overflowed: bool
    sl: tuple[float, float | None] | None  # the (T, target) of the call's queue (offered calls only)


class _Call(NamedTuple):
    """One call's facts, derived once and then counted in every group it belongs to."""

    rec: Any
    answered: bool
    wait: float | None  # seconds in queue, when the exit time is known (offered calls only)
    talk: float | None
    wrap: float | None
    to_person: float | None  # started_at -> answered_at (answered calls)
    tally: _Tally


_TALLY = attrgetter("tally")
_AT, _STARTED_AT, _TO_STATUS = attrgetter("at"), attrgetter("started_at"), attrgetter("to_status")


def _secs(a: datetime, b: datetime) -> float:
    """b - a in seconds, never negative (clock skew between adapters must not produce negative waits)."""
    d = (b - a).total_seconds()
    return max(0.0, d)


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return value


def _thresholds(queues: Mapping[str, Any] | None, sl_seconds: float | None) -> Callable[[str | None], tuple[float, float | None]]:
    """queue name -> (T, target), memoized: T is ``sl_seconds``, else the queue's ``service_level.seconds``,
    else :data:`DEFAULT_SL_SECONDS`; the target is the queue's ``service_level.target`` (None if unknown)."""
    cache: dict[str | None, tuple[float, float | None]] = {}

    def get(queue: str | None) -> tuple[float, float | None]:
        got = cache.get(queue)
        if got is None:
            spec = queues.get(queue) if (queues is not None and queue is not None) else None
            sl = getattr(spec, "service_level", None)
            t = sl_seconds if sl_seconds is not None else (sl.seconds if sl is not None else DEFAULT_SL_SECONDS)
            got = cache[queue] = (float(t), float(sl.target) if sl is not None else None)
        return got

    return get


def _derive(recs: Iterable[Any], sl_of: Callable[[str | None], tuple[float, float | None]],
            left_at: Mapping[str, datetime], overflowed: set[str], wraps: Mapping[str, float]) -> list[_Call]:
    """Each record's :class:`_Call`, in one loop (it runs for every call of every simulated day, so
    :func:`_secs` is inlined)."""
    tallies: dict[tuple[str, str, bool, tuple[float, float | None] | None], _Tally] = {}
    out: list[_Call] = []
    append = out.append
    for rec in recs:
        queued_at, answered_at, outcome = rec.queued_at, rec.answered_at, rec.outcome
        if queued_at is None and rec.queue is None:  # never reached a queue
            ended_by = rec.ended_by
            if outcome in CONTAINED_OUTCOMES or (outcome == "hangup" and ended_by == "engine"):
                disposition = _CONTAINED
            elif outcome == "hangup" and ended_by == "caller":
                disposition = _IVR_ABANDONED
            else:
                disposition = _IVR_OTHER
            key = (disposition, outcome, False, None)
            tally = tallies.get(key) or tallies.setdefault(key, _Tally(*key))
            append(_Call(rec, False, None, None, None, None, tally))
            continue
        answered = answered_at is not None
        abandoned = not answered and outcome == "abandoned"
        wait: float | None = None
        if queued_at is not None:  # the queue exit: answered, hung up, or the router's last "left" event
            exit_at = answered_at if answered else rec.ended_at if abandoned else left_at.get(rec.call_id)
            if exit_at is not None:
                d = (exit_at - queued_at).total_seconds()
                wait = max(0.0, d)
        sl = sl_of(rec.queue)
        within_t = wait is not None and wait <= sl[0]
        talk = wrap = to_person = None
        if answered:
            agent_end = rec.agent_ended_at
            d = ((agent_end if agent_end is not None else rec.ended_at) - answered_at).total_seconds()
            talk = max(0.0, d)
            wrap = wraps.get(rec.call_id)
            d = (answered_at - rec.started_at).total_seconds()
            to_person = max(0.0, d)
            disposition = _ANSWERED_IN_T if within_t else _ANSWERED
        elif abandoned:
            disposition = _ABANDONED_IN_T if within_t else _ABANDONED
        else:
            disposition = _OTHER_EXIT
        key = (disposition, outcome, rec.call_id in overflowed, sl)
        tally = tallies.get(key) or tallies.setdefault(key, _Tally(*key))
        append(_Call(rec, answered, wait, talk, wrap, to_person, tally))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _same(values: Iterable[float | None]) -> float | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _summarize(calls: Sequence[_Call], busy: float | None = None, staffed: float | None = None) -> Kpis:
    """The KPIs of a set of calls. Nothing depends on the calls' order (counts, ``math.fsum``, sorted
    percentiles, max, distinct values), so a group may collect its calls in any order."""
    by_disposition: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    overflowed = 0
    sls: set[tuple[float, float | None]] = set()  # the (T, target) of the offered calls' queues
    for tally, n in Counter(map(_TALLY, calls)).items():
        by_disposition[tally.disposition] += n
        by_outcome[tally.outcome] += n
        if tally.overflowed:
            overflowed += n
        if tally.sl is not None:
            sls.add(tally.sl)
    offered = sum(n for d, n in by_disposition.items() if d in _OFFERED)
    ans_in_t, ab_in_t = by_disposition[_ANSWERED_IN_T], by_disposition[_ABANDONED_IN_T]
    answered_n = ans_in_t + by_disposition[_ANSWERED]
    abandoned_n = ab_in_t + by_disposition[_ABANDONED]
    waits = [c.wait for c in calls if c.wait is not None]  # only offered calls have a wait
    answered = [c for c in calls if c.answered]
    answer_waits = [c.wait for c in answered if c.wait is not None]
    talks = [c.talk for c in answered if c.talk is not None]
    wraps = [c.wrap for c in answered if c.wrap is not None]
    avg_talk, avg_wrap = _mean(talks), _mean(wraps)
    ttp = [c.to_person for c in answered if c.to_person is not None]
    contained = by_disposition[_CONTAINED]
    return Kpis(
        calls=len(calls),
        offered=offered,
        answered=answered_n,
        abandoned=abandoned_n,
        other_exits=offered - answered_n - abandoned_n,
        answered_within_t=ans_in_t,
        abandoned_within_t=ab_in_t,
        overflowed=overflowed,
        service_level=_ratio(ans_in_t, offered - ab_in_t),
        service_level_strict=_ratio(ans_in_t, offered),
        sl_seconds=_same(t for t, _ in sls),
        sl_target=_same(target for _, target in sls),
        asa=_mean(answer_waits),
        avg_wait=_mean(waits),
        p90_wait=percentile(waits, 0.9),
        max_wait=max(waits) if waits else None,
        waits=len(waits),
        abandonment_rate=_ratio(abandoned_n, offered),
        avg_talk=avg_talk,
        avg_wrap_up=avg_wrap,
        aht=None if avg_talk is None else avg_talk + (avg_wrap or 0.0),
        aht_includes_wrap_up=avg_talk is not None and avg_wrap is not None,
        transfers=by_outcome["transfer"],
        contained=contained,
        containment_rate=_ratio(contained, len(calls)),
        ivr_abandoned=by_disposition[_IVR_ABANDONED],
        time_to_person_avg=_mean(ttp),
        time_to_person_p90=percentile(ttp, 0.9),
        callbacks=by_outcome["callback"],
        fallbacks=by_outcome["fallback"],
        errors=by_outcome["error"],
        occupancy=_ratio(busy, staffed) if (busy is not None and staffed is not None) else None,
        busy_seconds=busy,
        staffed_seconds=staffed,
    )


# ====================================================================== agents' time


class _Spans(NamedTuple):
    """The agents' stretches of time in one status, cut to the window, as columns: span i is ``status[i]``
    from ``start[i]`` to ``end[i]``, ``seconds[i]`` long. Agent by agent (in order of first event), oldest
    first: every agent-time total adds them up in that order, so its float sum does not change.

    Columns, not an object (or a NamedTuple) per span: a day has ~70,000 spans, and building one tuple at
    a time in a Python loop was the largest cost here; columns are built and read by map, zip and
    compress, in C.
    """

    status: list[str]
    start: list[datetime]
    end: list[datetime]
    seconds: list[float]


_SECONDS = timedelta.total_seconds
_POSITIVE = (0.0).__lt__  # d -> d > 0


class _StatusNames(dict[Any, str]):
    """A status (a str or a ``Status``) -> its name, memoized: ``_status`` of a str is a failed getattr."""

    def __missing__(self, raw: Any) -> str:
        name = self[raw] = _status(raw)
        return name


def _cut(starts: list[datetime], ends: list[datetime], lengths: list[float],
         start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Cut one agent's spans to ``[start, end)``: returns the range ``lo:hi`` of the spans that overlap
    it, and shortens (in place) those across an edge. The spans are in time order, so ``starts`` and
    ``ends`` are sorted: the spans wholly outside are a prefix and a suffix, found by bisection, and the
    ones across an edge are next to them. A span left empty keeps a length <= 0, which the caller drops."""
    lo = bisect_right(ends, start) if start is not None else 0  # before lo: ended by the window's start
    hi = bisect_left(starts, end) if end is not None else len(starts)  # from hi: started at its end or later
    if start is not None:
        i = lo
        while i < hi and starts[i] < start:
            starts[i] = start
            lengths[i] = (ends[i] - start).total_seconds()
            i += 1
    if end is not None:
        i = hi - 1
        while i >= lo and ends[i] > end:
            ends[i] = end
            lengths[i] = (end - starts[i]).total_seconds()
            i -= 1
    return lo, hi


def _agent_time(events: Sequence[Any], start: datetime | None, end: datetime | None,
                horizon: datetime | None) -> tuple[_Spans, dict[str, dict[str, float]], dict[str, float]]:
    """Every agent's status timeline cut to ``[start, end)``, each agent's seconds by status in it, and
    each call's wrap-up seconds.

    ``events`` must be sorted by ``at`` (stably: ties keep the store's order, by id). Each agent is in an
    event's ``to_status`` from that event to their next one (the last until ``horizon``); with a window
    ``start``, the time from ``start`` to an agent's first event is spent in that event's ``from_status``.
    A call's wrap-up is its agent's closed (followed by a later event) ``wrap_up`` stretch carrying its
    call id, uncut. Empty spans are dropped; an agent with no time in the window has no seconds by
    status. Built a column at a time, one agent after the other (see :class:`_Spans`).
    """
    by_agent: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        by_agent[e.agent_id].append(e)
    names = _StatusNames()
    wraps: dict[str, float] = defaultdict(float)
    spans = _Spans([], [], [], [])
    time_in: dict[str, dict[str, float]] = {}
    for agent, evs in by_agent.items():
        # span i runs from event i to event i + 1 in event i's to_status
        ats = list(map(_AT, evs))
        statuses = list(map(names.__getitem__, map(_TO_STATUS, evs)))
        starts, ends = ats[:-1], ats[1:]
        lengths = list(map(_SECONDS, map(sub, ends, starts)))  # >= 0: the events are sorted
        for i in [i for i, s in enumerate(statuses[:-1]) if s == "wrap_up"]:
            call_id = evs[i].call_id
            if call_id:
                wraps[call_id] += lengths[i]  # _secs(start, end): the same, as lengths[i] >= 0
        del statuses[-1:]  # now each span's status; the last event's to_status is appended below if it lasts
        if start is not None and ats[0] > start:  # from the window's start, the first event's from_status
            starts.insert(0, start)
            ends.insert(0, ats[0])
            statuses.insert(0, names[evs[0].from_status])
            lengths.insert(0, (ats[0] - start).total_seconds())
        if horizon is not None and horizon > ats[-1]:  # the last status lasts until the horizon
            starts.append(ats[-1])
            ends.append(horizon)
            statuses.append(names[evs[-1].to_status])
            lengths.append((horizon - ats[-1]).total_seconds())
        if start is not None or end is not None:
            lo, hi = _cut(starts, ends, lengths, start, end)
            statuses, starts, ends, lengths = statuses[lo:hi], starts[lo:hi], ends[lo:hi], lengths[lo:hi]
        keep = list(map(_POSITIVE, lengths))  # not empty (nor cut away by the window)
        if any(keep):
            statuses, lengths = list(itertools.compress(statuses, keep)), list(itertools.compress(lengths, keep))
            spans.status.extend(statuses)
            spans.start.extend(itertools.compress(starts, keep))
            spans.end.extend(itertools.compress(ends, keep))
            spans.seconds.extend(lengths)
            seconds = time_in[agent] = defaultdict(float)
            for status, d in zip(statuses, lengths):
                seconds[status] += d
    return spans, time_in, wraps


# ====================================================================== hours


def _hour_label(at: datetime, tz: tzinfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%Y-%m-%d %H}:00" + (" (repeated)" if local.fold else "")  # the hour a DST change repeats


def _hour_of_day(at: datetime, tz: tzinfo) -> str:
    return f"{at.astimezone(tz):%H}:00"


_HOUR_LABELS: dict[str, Callable[[datetime, tzinfo], str]] = {"hour": _hour_label, "hour_of_day": _hour_of_day}


def _cached_by_quarter_hour(label: Callable[[datetime, tzinfo], str], tz: tzinfo) -> Callable[[datetime], str]:
    """``label(at, tz)`` memoized per 15-minute slice of absolute time: UTC offsets (and DST changes) are
    whole quarter hours, so every instant of a slice has the same local hour. A day of calls then costs
    ~100 time-zone conversions instead of one per call."""
    cache: dict[int, str] = {}

    def f(at: datetime) -> str:
        slot = int(at.timestamp() // 900)
        got = cache.get(slot)
        if got is None:
            got = cache[slot] = label(at, tz)
        return got

    return f


def _total(spans: _Spans, statuses: frozenset[str]) -> float:
    """The seconds of the spans in one of ``statuses``, added up by sum() in span order, as they always
    were (so the same float, and an int 0 when there are none)."""
    return sum(itertools.compress(spans.seconds, map(statuses.__contains__, spans.status)))


def _next_hour(a: datetime, tz: tzinfo) -> datetime:
    """The next instant after ``a`` at which the local clock in ``tz`` shows HH:00 (at ``a``'s UTC offset)."""
    local = a.astimezone(tz)
    into = local.minute * 60 + local.second + local.microsecond / 1e6
    return a + timedelta(seconds=3600 - into)


def _split_by_hour(a: datetime, b: datetime, tz: tzinfo) -> Iterator[tuple[datetime, float]]:
    """Pieces of ``[a, b)`` at local hour boundaries: (piece start, seconds). Computed in absolute time, so
    a DST change (or a :30 zone) splits where the local clock shows HH:00. One time-zone conversion per
    piece: :class:`_HourGrid` finds the same pieces without, and falls back to this in odd zones."""
    while a < b:
        nxt = min(b, _next_hour(a, tz))
        yield a, (nxt - a).total_seconds()
        a = nxt


def _offset_and_fold(at: datetime, tz: tzinfo) -> tuple[timedelta | None, int]:
    """What, besides the hour, the label of ``at`` in ``tz`` depends on."""
    local = at.astimezone(tz)
    return local.utcoffset(), local.fold


class _HourGrid:
    """The local hour boundaries from ``first`` to past ``last``, found once, so that labelling ~30,000
    calls and splitting ~70,000 agent spans by local hour needs no time-zone conversion for each.
    Instants before ``first`` or after ``last`` are labelled by :func:`_cached_by_quarter_hour`.

    ``bounds[0]`` is ``first`` and ``bounds[i + 1]`` is :func:`_next_hour` of ``bounds[i]``: the boundaries
    :func:`_split_by_hour` walks from ``first``. An instant ``a`` in ``[bounds[i], bounds[i + 1])`` has
    the same local hour (and fold) as ``bounds[i]``, and ``bounds[i + 1]`` as its next boundary, when
    neither the zone's UTC offset nor the fold changes inside that interval (``uniform[i]``): always, in
    zones whose offset changes on the local hour, as DST changes do. Elsewhere (historical zones: St.
    John's changed at 00:01 until 2011), and for data spread over more than :attr:`MAX_SPREAD` (too many
    hours to list), :func:`_split_by_hour` and :func:`_cached_by_quarter_hour` do the work as they always
    did, one conversion at a time and in the same order: so even where a 15-minute slice holds two local
    hours and its label depends on which instant the cache saw first, the results do not change.
    """

    MAX_SPREAD = timedelta(days=400)

    def __init__(self, tz: tzinfo, first: datetime, last: datetime) -> None:
        self.tz = tz
        one_us = timedelta(microseconds=1)
        bounds = [first.astimezone(UTC)]
        if timedelta(0) <= last - first <= self.MAX_SPREAD:
            while bounds[-1] <= last:
                bounds.append(_next_hour(bounds[-1], tz))
            self.uniform = [_offset_and_fold(a, tz) == _offset_and_fold(b - one_us, tz)
                            for a, b in itertools.pairwise(bounds)]
        else:  # one interval over everything, not uniform: each instant is converted on its own
            bounds.append(max(first, last).astimezone(UTC) + one_us)
            self.uniform = [False]
        self.bounds = bounds

    def group_by_hour(self, calls: Iterable[_Call], label: Callable[[datetime, tzinfo], str]
                      ) -> dict[str, list[_Call]]:
        """The calls by ``label`` of their ``started_at``."""
        bounds, uniform, tz = self.bounds, self.uniform, self.tz
        labels = [label(b, tz) for b in bounds[:-1]]
        odd_label = _cached_by_quarter_hour(label, tz)
        members: dict[str, list[_Call]] = defaultdict(list)
        i = 0
        for c in calls:
            at = c.rec.started_at
            if not bounds[i] <= at < bounds[i + 1]:  # most calls are in the previous call's hour
                i = bisect_right(bounds, at) - 1
                if not 0 <= i < len(labels):  # off the grid
                    members[odd_label(at)].append(c)
                    i = 0
                    continue
            members[labels[i] if uniform[i] else odd_label(at)].append(c)
        return members

    def time_by_hour(self, spans: _Spans, label: Callable[[datetime, tzinfo], str]
                     ) -> tuple[dict[str, float], dict[str, float]]:
        """(busy, staffed) seconds by ``label`` of the hour: the staffed spans split at the local hour
        boundaries, added up piece by piece in span order, as :func:`_split_by_hour` gives them."""
        bounds, uniform, tz = self.bounds, self.uniform, self.tz
        labels = [label(b, tz) for b in bounds[:-1]]
        odd_label = _cached_by_quarter_hour(label, tz)
        busy: dict[str, float] = defaultdict(float)
        staffed: dict[str, float] = defaultdict(float)
        i = 0
        for status, a, b, secs in zip(*spans):
            if status not in STAFFED:
                continue
            if not bounds[i] <= a < bounds[i + 1]:  # most spans are in the previous span's hour
                i = bisect_right(bounds, a) - 1
            if uniform[i] and b <= bounds[i + 1]:  # within one hour: most spans
                k = labels[i]
                staffed[k] += secs
                if status in BUSY:
                    busy[k] += secs
                continue
            pieces: Iterable[tuple[str, float]]
            if not uniform[i]:
                pieces = [(odd_label(at), s) for at, s in _split_by_hour(a, b, tz)]
            else:  # the first piece ends at bounds[i + 1]; the next ones start on the grid
                pieces = []
                j = i
                while a < b:
                    nxt = min(b, bounds[j + 1])
                    pieces.append((labels[j] if uniform[j] else odd_label(a), (nxt - a).total_seconds()))
                    a, j = nxt, j + 1
            for k, s in pieces:
                staffed[k] += s
                if status in BUSY:
                    busy[k] += s
        return busy, staffed


# ====================================================================== grouping


def _members(name: str, calls: Sequence[_Call], by_queue: Mapping[str | None, list[_Call]],
             queues: Mapping[str, Any] | None, grid: _HourGrid | None) -> dict[str, list[_Call]]:
    """The calls of each key of grouping ``name``. ``queue`` and ``skill`` join the lists of calls by
    the record's queue (``by_queue``) instead of looking at each call again; a group's calls may come
    in any order (:func:`_summarize`)."""
    members: dict[str, list[_Call]] = defaultdict(list)
    if name == "queue":
        for queue, cs in by_queue.items():
            members[queue or NO_QUEUE].extend(cs)
    elif name == "skill":
        assert queues is not None
        for queue, cs in by_queue.items():
            spec = queues.get(queue) if queue is not None else None
            for skill in sorted(getattr(spec, "skills", None) or ()):
                members[skill].extend(cs)
    elif name in _HOUR_LABELS:
        if grid is not None:  # None: no calls
            members = grid.group_by_hour(calls, _HOUR_LABELS[name])
    elif name in ("tree", "channel"):
        key = attrgetter(name)
        for c in calls:
            members[key(c.rec)].append(c)
    else:
        raise ValueError(f"unknown grouping {name!r}; use one of {', '.join(GROUPINGS)}")
    return members


def _sort_key(k: str) -> tuple[int, str]:
    return (1 if k == NO_QUEUE else 0, k)


# ====================================================================== the report


def compute_kpis(
    records: Iterable[CallLike],
    agent_events: Iterable[AgentEventLike] = (),
    *,
    call_events: Iterable[CallEventLike] = (),
    queues: Mapping[str, Any] | None = None,
    sl_seconds: float | None = None,
    by: Sequence[str] = ("queue", "hour"),
    tz: str | tzinfo = "UTC",
    start: datetime | None = None,
    end: datetime | None = None,
) -> KpiReport:
    """The KPIs of the calls that started in ``[start, end)`` (all calls when not given), overall and by group.

    - ``records``: finished calls (``CallRecord``-like).
    - ``agent_events``: agents' state transitions, oldest first or not (sorted here by ``at``). Give
      every event up to ``end``, including those before ``start``: an agent's state at ``start`` is
      the one their last earlier event left them in. Used for occupancy (clipped to the window, or to
      the span of the data without one) and for each answered call's wrap-up (the agent's
      ``wrap_up`` interval carrying that call id), which AHT then includes.
    - ``call_events``: the router's queue events; used for ``overflowed`` and for the queue exit time
      of offered calls that were neither answered nor abandoned (else their wait is left out of
      ``avg_wait``/``p90_wait``).
    - ``queues``: queue name -> ``QueueSpec`` (``routing.queues.load_queues``): each queue's
      service-level T and target, and its skills for the ``skill`` grouping.
    - ``sl_seconds``: one T for every queue, overriding ``queues``; T is 20 s for a queue not in ``queues``.
    - ``by``: groupings among :data:`GROUPINGS`: ``queue`` (the queue on the record, the tree's queue;
      calls that never reached one under :data:`NO_QUEUE`), ``hour`` (local date and hour of
      ``started_at`` in ``tz``: a call is counted in the hour it started, whatever hours it spans),
      ``hour_of_day`` (local hour only, all dates together), ``skill`` (each skill the queue requires in
      ``queues``; skipped when ``queues`` is not given), ``tree``, ``channel``.

    It runs on every replication of a simulated day (~30,000 calls, ~70,000 agent events), hence the
    column-at-a-time agent timeline and the hour grid below; results are the same to the last bit.
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    _aware(start, "start")
    _aware(end, "end")
    if start is not None and end is not None and end <= start:
        raise ValueError("the window's end must be after its start")
    for name in by:
        if name not in GROUPINGS:
            raise ValueError(f"unknown grouping {name!r}; use one of {', '.join(GROUPINGS)}")
    notes: list[str] = []
    groupings = [b for b in dict.fromkeys(by) if b != "skill" or queues is not None]
    if "skill" in by and queues is None:
        notes.append("per-skill KPIs need the queue configuration (queues.yaml); skipped")

    recs = [r for r in records
            if (start is None or r.started_at >= start) and (end is None or r.started_at < end)]
    events = sorted(agent_events, key=_AT)  # stable: ties keep the store's order (by id)
    ids = {r.call_id for r in recs}
    left_at: dict[str, datetime] = {}
    overflowed: set[str] = set()
    for ce in call_events:
        if ce.call_id not in ids:
            continue
        if ce.kind == "left" and (ce.call_id not in left_at or ce.at >= left_at[ce.call_id]):
            left_at[ce.call_id] = ce.at
        elif ce.kind == "overflowed":
            overflowed.add(ce.call_id)

    # agents: the timeline, each call's wrap-up, and time by status within the window
    horizon = end
    if horizon is None:
        times = [r.ended_at for r in recs]
        if events:
            times.append(events[-1].at)  # the latest event (they are sorted)
        horizon = max(times) if times else None
    spans, time_in, wraps = _agent_time(events, start, end, horizon)

    sl_of = _thresholds(queues, sl_seconds)
    calls = _derive(recs, sl_of, left_at, overflowed, wraps)

    busy_total, staffed_total = _total(spans, BUSY), _total(spans, STAFFED)
    have_agents = bool(spans.seconds)
    overall = _summarize(calls, busy_total if have_agents else None, staffed_total if have_agents else None)

    by_queue: dict[str | None, list[_Call]] = defaultdict(list)
    for c in calls:
        by_queue[c.rec.queue].append(c)
    grid: _HourGrid | None = None
    if any(name in _HOUR_LABELS for name in groupings) and (calls or have_agents):
        # from the window's start (or the data's first instant) to its end (or the horizon): every agent
        # span, and all the calls but odd ones (ended before they started), which group_by_hour handles
        first = start if start is not None else events[0].at if events else min(map(_STARTED_AT, recs))
        assert horizon is not None
        grid = _HourGrid(zone, first, horizon)
    groups: dict[str, dict[str, Kpis]] = {}
    for name in groupings:
        members = _members(name, calls, by_queue, queues, grid)
        busy: dict[str, float] = {}
        staffed: dict[str, float] = {}
        if name in _HOUR_LABELS and have_agents:
            assert grid is not None
            busy, staffed = grid.time_by_hour(spans, _HOUR_LABELS[name])
            for k in staffed:
                members.setdefault(k, [])
        groups[name] = {
            k: _summarize(members[k], busy.get(k, 0.0) if k in staffed else None, staffed.get(k))
            for k in sorted(members, key=_sort_key)
        }

    agents: dict[str, AgentKpis] = {}
    answered_by: dict[str, list[_Call]] = defaultdict(list)
    for c in calls:
        if c.answered and c.rec.agent_id:
            answered_by[c.rec.agent_id].append(c)
    for agent in sorted(set(answered_by) | set(time_in)):
        mine = answered_by.get(agent, [])
        talk = _mean([c.talk for c in mine if c.talk is not None])
        wrap = _mean([c.wrap for c in mine if c.wrap is not None])
        t = time_in.get(agent, {})
        b = sum(v for s, v in t.items() if s in BUSY)
        st = sum(v for s, v in t.items() if s in STAFFED)
        nr = t.get(NOT_READY, 0.0)
        agents[agent] = AgentKpis(agent, len(mine), talk, wrap, None if talk is None else talk + (wrap or 0.0),
                                  st + nr, nr, st, b, _ratio(b, st))

    return KpiReport(overall, groups, agents, getattr(zone, "key", str(zone)), start, end, notes=tuple(notes))
