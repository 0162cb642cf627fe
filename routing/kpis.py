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
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
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


class _Call(NamedTuple):
    """One call's facts, derived once and then counted in every group it belongs to."""

    rec: Any
    offered: bool
    answered: bool
    abandoned: bool
    wait: float | None  # seconds in queue, when the exit time is known
    sl_t: float | None  # the call's T (offered calls only)
    sl_target: float | None
    talk: float | None
    wrap: float | None
    to_person: float | None  # started_at -> answered_at (answered calls)
    overflowed: bool
    contained: bool
    ivr_abandoned: bool


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


def _derive(rec: Any, sl_of: Callable[[str | None], tuple[float, float | None]],
            left_at: Mapping[str, datetime], overflowed: set[str], wraps: Mapping[str, float]) -> _Call:
    queued_at, answered_at, outcome = rec.queued_at, rec.answered_at, rec.outcome
    if queued_at is None and rec.queue is None:  # never reached a queue
        ended_by = rec.ended_by
        return _Call(rec, False, False, False, None, None, None, None, None, None, False,
                     outcome in CONTAINED_OUTCOMES or (outcome == "hangup" and ended_by == "engine"),
                     outcome == "hangup" and ended_by == "caller")
    answered = answered_at is not None
    abandoned = not answered and outcome == "abandoned"
    wait: float | None = None
    if queued_at is not None:
        if answered:
            wait = _secs(queued_at, answered_at)
        elif abandoned:
            wait = _secs(queued_at, rec.ended_at)
        elif rec.call_id in left_at:
            wait = _secs(queued_at, left_at[rec.call_id])
    t, target = sl_of(rec.queue)
    talk = wrap = to_person = None
    if answered:
        agent_end = rec.agent_ended_at
        talk = _secs(answered_at, agent_end if agent_end is not None else rec.ended_at)
        wrap = wraps.get(rec.call_id)
        to_person = _secs(rec.started_at, answered_at)
    return _Call(rec, True, answered, abandoned, wait, t, target, talk, wrap, to_person,
                 rec.call_id in overflowed, False, False)


def _mean(xs: Sequence[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _same(values: Iterable[float | None]) -> float | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _summarize(calls: Sequence[_Call], busy: float | None = None, staffed: float | None = None) -> Kpis:
    offered = [c for c in calls if c.offered]
    answered = [c for c in offered if c.answered]
    abandoned = [c for c in offered if c.abandoned]
    ans_in_t = sum(1 for c in answered if c.wait is not None and c.sl_t is not None and c.wait <= c.sl_t)
    ab_in_t = sum(1 for c in abandoned if c.wait is not None and c.sl_t is not None and c.wait <= c.sl_t)
    waits = [c.wait for c in offered if c.wait is not None]
    answer_waits = [c.wait for c in answered if c.wait is not None]
    talks = [c.talk for c in answered if c.talk is not None]
    wraps = [c.wrap for c in answered if c.wrap is not None]
    avg_talk, avg_wrap = _mean(talks), _mean(wraps)
    ttp = [c.to_person for c in answered if c.to_person is not None]
    contained = sum(1 for c in calls if c.contained)
    return Kpis(
        calls=len(calls),
        offered=len(offered),
        answered=len(answered),
        abandoned=len(abandoned),
        other_exits=len(offered) - len(answered) - len(abandoned),
        answered_within_t=ans_in_t,
        abandoned_within_t=ab_in_t,
        overflowed=sum(1 for c in offered if c.overflowed),
        service_level=_ratio(ans_in_t, len(offered) - ab_in_t),
        service_level_strict=_ratio(ans_in_t, len(offered)),
        sl_seconds=_same(c.sl_t for c in offered),
        sl_target=_same(c.sl_target for c in offered),
        asa=_mean(answer_waits),
        avg_wait=_mean(waits),
        p90_wait=percentile(waits, 0.9),
        max_wait=max(waits) if waits else None,
        waits=len(waits),
        abandonment_rate=_ratio(len(abandoned), len(offered)),
        avg_talk=avg_talk,
        avg_wrap_up=avg_wrap,
        aht=None if avg_talk is None else avg_talk + (avg_wrap or 0.0),
        aht_includes_wrap_up=avg_talk is not None and avg_wrap is not None,
        transfers=sum(1 for c in calls if c.rec.outcome == "transfer"),
        contained=contained,
        containment_rate=_ratio(contained, len(calls)),
        ivr_abandoned=sum(1 for c in calls if c.ivr_abandoned),
        time_to_person_avg=_mean(ttp),
        time_to_person_p90=percentile(ttp, 0.9),
        callbacks=sum(1 for c in calls if c.rec.outcome == "callback"),
        fallbacks=sum(1 for c in calls if c.rec.outcome == "fallback"),
        errors=sum(1 for c in calls if c.rec.outcome == "error"),
        occupancy=_ratio(busy, staffed) if (busy is not None and staffed is not None) else None,
        busy_seconds=busy,
        staffed_seconds=staffed,
    )


# ====================================================================== agents' time


class _Span(NamedTuple):
    agent_id: str
    status: str
    start: datetime
    end: datetime
    call_id: str | None
    closed: bool  # ended by a later event (not by the end of the data)


def _spans(events: Sequence[Any], start: datetime | None, horizon: datetime | None) -> list[_Span]:
    """Each agent's status timeline: from each event to the agent's next one (the last to ``horizon``).

    With a window ``start``, the time from ``start`` to an agent's first event is spent in that event's
    ``from_status``. Unclipped: callers clip to the window.
    """
    by_agent: dict[str, list[Any]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.at):  # stable: ties keep the store's order (by id)
        by_agent[e.agent_id].append(e)
    out: list[_Span] = []
    for agent, evs in by_agent.items():
        if start is not None and evs[0].at > start:
            out.append(_Span(agent, _status(evs[0].from_status), start, evs[0].at, None, True))
        for e, nxt in itertools.pairwise(evs):
            out.append(_Span(agent, _status(e.to_status), e.at, nxt.at, e.call_id, True))
        last = evs[-1]
        if horizon is not None and horizon > last.at:
            out.append(_Span(agent, _status(last.to_status), last.at, horizon, last.call_id, False))
    return out


def _clip(s: _Span, start: datetime | None, end: datetime | None) -> _Span | None:
    a = max(s.start, start) if start is not None else s.start
    b = min(s.end, end) if end is not None else s.end
    return s._replace(start=a, end=b) if b > a else None


def _split_by_hour(s: _Span, tz: tzinfo) -> Iterable[tuple[datetime, float]]:
    """Pieces of a span at local hour boundaries: (piece start, seconds). Computed in absolute time, so a
    DST change (or a :30 zone) splits where the local clock shows HH:00."""
    a = s.start
    while a < s.end:
        local = a.astimezone(tz)
        into = local.minute * 60 + local.second + local.microsecond / 1e6
        b = min(s.end, a + timedelta(seconds=3600 - into))
        yield a, (b - a).total_seconds()
        a = b


# ====================================================================== grouping


def _hour_label(at: datetime, tz: tzinfo) -> str:
    local = at.astimezone(tz)
    return f"{local:%Y-%m-%d %H}:00" + (" (repeated)" if local.fold else "")  # the hour a DST change repeats


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


def _hour_of_day(at: datetime, tz: tzinfo) -> str:
    return f"{at.astimezone(tz):%H}:00"


def _group_keys(name: str, tz: tzinfo, queues: Mapping[str, Any] | None) -> Callable[[Any], list[str]]:
    if name == "queue":
        return lambda r: [r.queue or NO_QUEUE]
    if name in ("hour", "hour_of_day"):
        label = _cached_by_quarter_hour(_hour_label if name == "hour" else _hour_of_day, tz)
        return lambda r: [label(r.started_at)]
    if name == "tree":
        return lambda r: [r.tree]
    if name == "channel":
        return lambda r: [r.channel]
    if name == "skill":
        assert queues is not None

        def skills(r: Any) -> list[str]:
            spec = queues.get(r.queue) if r.queue is not None else None
            return sorted(getattr(spec, "skills", None) or ())

        return skills
    raise ValueError(f"unknown grouping {name!r}; use one of {', '.join(GROUPINGS)}")


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
    events = list(agent_events)
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
        times = [e.at for e in events] + [r.ended_at for r in recs]
        horizon = max(times) if times else None
    spans = _spans(events, start, horizon)
    wraps: dict[str, float] = defaultdict(float)
    for s in spans:
        if s.status == "wrap_up" and s.closed and s.call_id:
            wraps[s.call_id] += _secs(s.start, s.end)
    clipped = [c for c in (_clip(s, start, end) for s in spans) if c is not None]

    sl_of = _thresholds(queues, sl_seconds)
    calls = [_derive(r, sl_of, left_at, overflowed, wraps) for r in recs]

    busy_total = sum((c.end - c.start).total_seconds() for c in clipped if c.status in BUSY)
    staffed_total = sum((c.end - c.start).total_seconds() for c in clipped if c.status in STAFFED)
    have_agents = bool(clipped)
    overall = _summarize(calls, busy_total if have_agents else None, staffed_total if have_agents else None)

    groups: dict[str, dict[str, Kpis]] = {}
    for name in groupings:
        keyf = _group_keys(name, zone, queues)
        members: dict[str, list[_Call]] = defaultdict(list)
        for c in calls:
            for k in keyf(c.rec):
                members[k].append(c)
        busy: dict[str, float] = defaultdict(float)
        staffed: dict[str, float] = defaultdict(float)
        if name in ("hour", "hour_of_day") and have_agents:
            label = _cached_by_quarter_hour(_hour_label if name == "hour" else _hour_of_day, zone)
            for c in clipped:
                if c.status not in STAFFED:
                    continue
                for at, secs in _split_by_hour(c, zone):
                    k = label(at)
                    staffed[k] += secs
                    if c.status in BUSY:
                        busy[k] += secs
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
    time_in: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for c in clipped:
        time_in[c.agent_id][c.status] += (c.end - c.start).total_seconds()
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
