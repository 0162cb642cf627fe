"""KPIs (routing/kpis.py) on hand-built calls with known answers, and `ivr report` against a real SQLite store."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from agents.state import AgentState, Status
from ivr.cli_report import NO_CALLS, report
from routing.kpis import (
    NO_QUEUE,
    compute_kpis,
    confidence_interval,
    percentile,
    t_cdf,
    t_quantile,
)
from routing.model import AgentChanged
from routing.queues import QueueSpec, ServiceLevel
from routing.store import CallEvent, CallRecord, Store

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 09:00 in New York (EST, UTC-5), a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call(cid: str, start: float, outcome: str, *, ended: float | None = None, ended_by: str = "caller",
         queue: str | None = None, queued: float | None = None, answered: float | None = None,
         agent_end: float | None = None, agent: str | None = None, tree: str = "clinic-main",
         channel: str = "asterisk") -> CallRecord:
    """A finished call; times in seconds after T0."""
    last = max(x for x in (start, queued, answered, agent_end, ended) if x is not None)
    return CallRecord(
        cid, tree, channel, at(start), at(ended if ended is not None else last + 1), outcome, "node", ended_by,
        queue=queue, agent_id=agent, queued_at=None if queued is None else at(queued),
        answered_at=None if answered is None else at(answered),
        agent_ended_at=None if agent_end is None else at(agent_end))


def queued(cid: str, queue: str, wait: float, *, answered: bool = True, start: float = 0.0, ivr: float = 5.0,
           talk: float = 60.0, agent: str = "ana") -> CallRecord:
    """A call that reached ``queue`` after ``ivr`` s in the IVR and was answered (or abandoned) after ``wait`` s."""
    q = start + ivr
    if answered:
        return call(cid, start, "agent", queue=queue, queued=q, answered=q + wait, agent_end=q + wait + talk,
                    agent=agent, ended_by="agent")
    return call(cid, start, "abandoned", queue=queue, queued=q, ended=q + wait)


def sample() -> list[CallRecord]:
    """Thirteen calls, one of every kind; T = 20 s."""
    return [
        call("a1", 0, "agent", queue="scheduling", queued=10, answered=25, agent_end=85, agent="ana", ended_by="agent"),
        call("a2", 0, "agent", queue="scheduling", queued=0, answered=40, agent_end=140, agent="ana", ended_by="agent"),
        call("a3", 0, "agent", queue="billing", queued=0, answered=0, agent_end=30, agent="ben", ended_by="agent"),
        call("ab1", 0, "abandoned", queue="scheduling", queued=0, ended=5),
        call("ab2", 0, "abandoned", queue="billing", queued=0, ended=50),
        call("tmo", 0, "voicemail", queue="scheduling", queued=0, ended=700),  # max_wait ran out, then a message
        call("rec", 0, "record", ended=60),  # refill request recorded: contained
        call("bye", 0, "hangup", ended=30, ended_by="engine"),  # the tree said goodbye (e.g. hours played)
        call("gone", 0, "hangup", ended=8, ended_by="caller"),  # hung up in a menu
        call("xfer", 0, "transfer", ended=20, ended_by="transfer"),
        call("cb", 0, "callback", ended=40, ended_by="engine"),
        call("fb", 0, "fallback", ended=3, ended_by="fallback"),
        call("err", 0, "error", ended=9, ended_by="engine"),
    ]


# ====================================================================== call KPIs


def test_every_call_kpi_on_known_calls():
    k = compute_kpis(sample(), sl_seconds=20).overall
    assert (k.calls, k.offered, k.answered, k.abandoned, k.other_exits) == (13, 6, 3, 2, 1)
    assert (k.answered_within_t, k.abandoned_within_t) == (2, 1)  # a1 (15 s), a3 (0 s); ab1 (5 s)
    assert k.service_level == pytest.approx(2 / (6 - 1))
    assert k.service_level_strict == pytest.approx(2 / 6)
    assert k.sl_seconds == 20
    assert k.asa == pytest.approx((15 + 40 + 0) / 3)
    # the voicemail after a timeout has no known queue exit without call events: 5 waits
    assert k.waits == 5 and k.avg_wait == pytest.approx((15 + 40 + 0 + 5 + 50) / 5)
    assert k.p90_wait == 50 and k.max_wait == 50  # nearest rank: ceil(0.9 * 5) = 5th of 0, 5, 15, 40, 50
    assert k.abandonment_rate == pytest.approx(2 / 6)
    assert k.avg_talk == pytest.approx((60 + 100 + 30) / 3)
    assert k.aht == k.avg_talk and k.avg_wrap_up is None and not k.aht_includes_wrap_up
    assert (k.transfers, k.callbacks, k.fallbacks, k.errors) == (1, 1, 1, 1)
    assert k.contained == 2 and k.containment_rate == pytest.approx(2 / 13)  # rec and bye
    assert k.ivr_abandoned == 1  # gone
    assert k.time_to_person_avg == pytest.approx((25 + 40 + 0) / 3)
    assert k.time_to_person_p90 == 40
    assert k.occupancy is None and k.busy_seconds is None  # no agent events given


def test_per_queue_split_and_calls_without_a_queue():
    rep = compute_kpis(sample(), sl_seconds=20, by=("queue",))
    q = rep.groups["queue"]
    assert list(q) == ["billing", "scheduling", NO_QUEUE]  # sorted, the IVR-only calls last
    s, b, none = q["scheduling"], q["billing"], q[NO_QUEUE]
    assert (s.offered, s.answered, s.abandoned, s.other_exits) == (4, 2, 1, 1)
    assert s.service_level == pytest.approx(1 / 3)  # a1 within T; ab1 short abandon excluded; a2 and tmo count
    assert (b.offered, b.answered, b.abandoned) == (2, 1, 1)
    assert b.service_level == pytest.approx(1 / 2) and b.service_level_strict == pytest.approx(1 / 2)
    assert none.offered == 0 and none.service_level is None and none.calls == 7 and none.contained == 2
    assert sum(k.calls for k in q.values()) == rep.overall.calls


def test_no_calls_gives_zero_counts_and_undefined_rates():
    rep = compute_kpis([], by=("queue", "hour"))
    k = rep.overall
    assert rep.empty and (k.calls, k.offered, k.answered, k.abandoned) == (0, 0, 0, 0)
    for rate in (k.service_level, k.service_level_strict, k.asa, k.avg_wait, k.p90_wait, k.abandonment_rate,
                 k.aht, k.containment_rate, k.time_to_person_avg, k.occupancy):
        assert rate is None
    assert rep.groups == {"queue": {}, "hour": {}} and rep.agents == {}
    assert rep.to_rows() == [{"group": "all", "key": "all", **k.as_dict()}]


def test_all_abandoned_after_t_and_all_within_t():
    late = [queued(f"c{i}", "billing", 30 + i, answered=False) for i in range(3)]
    k = compute_kpis(late, sl_seconds=20).overall
    assert (k.offered, k.abandoned, k.answered) == (3, 3, 0)
    assert k.service_level == 0.0 and k.service_level_strict == 0.0  # late abandons count against SL
    assert k.abandonment_rate == 1.0 and k.asa is None and k.aht is None and k.time_to_person_avg is None
    assert k.avg_wait == pytest.approx(31) and k.p90_wait == 32

    early = [queued(f"c{i}", "billing", 3, answered=False) for i in range(2)]
    k = compute_kpis(early, sl_seconds=20).overall
    assert k.abandoned_within_t == 2
    assert k.service_level is None  # every call abandoned within T: nothing left to measure
    assert k.service_level_strict == 0.0


def test_zero_length_waits_and_the_threshold_itself_count_as_within_t():
    calls = [queued("zero", "billing", 0), queued("exact", "billing", 20), queued("over", "billing", 20.001),
             queued("abandon_at_t", "billing", 20, answered=False)]
    k = compute_kpis(calls, sl_seconds=20).overall
    assert k.answered_within_t == 2 and k.abandoned_within_t == 1
    assert k.service_level == pytest.approx(2 / 3) and k.service_level_strict == pytest.approx(2 / 4)
    assert k.asa == pytest.approx((0 + 20 + 20.001) / 3)
    assert compute_kpis([queued("zero", "billing", 0)]).overall.p90_wait == 0


def test_variants_differ_as_documented():
    # 10 offered: 6 answered within T, 1 answered late, 2 short abandons, 1 late abandon
    calls = ([queued(f"in{i}", "billing", 10) for i in range(6)] + [queued("late", "billing", 60)]
             + [queued(f"s{i}", "billing", 4, answered=False) for i in range(2)]
             + [queued("la", "billing", 90, answered=False)])
    k = compute_kpis(calls, sl_seconds=20).overall
    assert k.service_level == pytest.approx(6 / 8)  # (answered + abandoned after T) = 7 + 1
    assert k.service_level_strict == pytest.approx(6 / 10)


def test_threshold_comes_from_each_queue_and_defaults_to_20_seconds():
    queues = {"fast": QueueSpec(service_level=ServiceLevel(seconds=10, target=0.9)),
              "slow": QueueSpec(service_level=ServiceLevel(seconds=30, target=0.8))}
    calls = [queued("f", "fast", 15), queued("s", "slow", 15), queued("u1", "unknown", 20),
             queued("u2", "unknown", 21)]
    rep = compute_kpis(calls, queues=queues, by=("queue",))
    q = rep.groups["queue"]
    assert q["fast"].service_level == 0.0 and q["fast"].sl_seconds == 10 and q["fast"].sl_target == 0.9
    assert q["slow"].service_level == 1.0 and q["slow"].sl_seconds == 30 and q["slow"].sl_target == 0.8
    assert q["unknown"].service_level == 0.5 and q["unknown"].sl_seconds == 20 and q["unknown"].sl_target is None
    assert rep.overall.sl_seconds is None and rep.overall.answered_within_t == 2  # mixed T: per call
    # one T for all overrides the queues
    assert compute_kpis(calls, queues=queues, sl_seconds=20).overall.answered_within_t == 3


def test_a_single_threshold_is_reported_when_every_call_shares_it():
    assert compute_kpis([queued("u1", "x", 3), queued("u2", "y", 3)]).overall.sl_seconds == 20


def test_hours_by_local_start_time_for_calls_spanning_hours():
    # 09:59:50 New York; answered at 10:00:30: counted in the 09:00 hour, where it started
    span = call("span", 3590, "agent", queue="billing", queued=3595, answered=3630, agent_end=3700, agent="ana")
    ten = call("ten", 3600, "hangup", ended_by="engine")
    nextday = call("next", 86400 + 60, "hangup", ended_by="engine")
    rep = compute_kpis([span, ten, nextday], by=("hour", "hour_of_day"), tz="America/New_York")
    hours = rep.groups["hour"]
    assert list(hours) == ["2026-11-23 09:00", "2026-11-23 10:00", "2026-11-24 09:00"]
    assert hours["2026-11-23 09:00"].answered == 1 and hours["2026-11-23 09:00"].asa == 35
    assert hours["2026-11-23 10:00"].calls == 1 and hours["2026-11-23 10:00"].answered == 0
    assert {k: v.calls for k, v in rep.groups["hour_of_day"].items()} == {"09:00": 2, "10:00": 1}
    assert list(compute_kpis([span], by=("hour",), tz="UTC").groups["hour"]) == ["2026-11-23 14:00"]


def test_the_hour_a_dst_change_repeats_is_two_rows():
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, an hour later
    recs = [CallRecord(c, "t", "twilio", s, s + timedelta(seconds=5), "hangup", "n", "engine")
            for c, s in (("x", first), ("y", second))]
    assert list(compute_kpis(recs, by=("hour",), tz=NY).groups["hour"]) == [
        "2026-11-01 01:00", "2026-11-01 01:00 (repeated)"]


def test_window_includes_its_start_and_excludes_its_end():
    recs = [call("before", -1, "hangup"), call("first", 0, "hangup"), call("last", 3599, "hangup"),
            call("after", 3600, "hangup")]
    rep = compute_kpis(recs, start=at(0), end=at(3600))
    assert rep.overall.calls == 2
    with pytest.raises(ValueError, match="after its start"):
        compute_kpis(recs, start=at(10), end=at(10))
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_kpis(recs, start=datetime(2026, 11, 23, 9))


def test_skill_groups_come_from_the_queues_required_skills():
    queues = {"scheduling": QueueSpec(skills={"scheduling": 5}),
              "billing": QueueSpec(skills={"billing": 3, "insurance": 2})}
    calls = [queued("s", "scheduling", 5), queued("b", "billing", 50), call("ivr", 0, "record")]
    rep = compute_kpis(calls, queues=queues, by=("skill",))
    sk = rep.groups["skill"]
    assert set(sk) == {"scheduling", "billing", "insurance"}
    assert sk["billing"].offered == 1 and sk["insurance"].asa == 50 and sk["scheduling"].asa == 5
    skipped = compute_kpis(calls, by=("skill", "queue"))
    assert "skill" not in skipped.groups and "queue" in skipped.groups
    assert any("skill" in n for n in skipped.notes)
    with pytest.raises(ValueError, match="unknown grouping"):
        compute_kpis(calls, by=("weekday",))


def test_call_events_give_overflows_and_the_wait_of_other_exits():
    recs = [call("tmo", 0, "voicemail", queue="scheduling", queued=10, ended=400),
            queued("ov", "scheduling", 320), queued("plain", "scheduling", 5)]
    events = [CallEvent(1, "tmo", "scheduling", "queue_failed", "timeout", None, at(310)),
              CallEvent(2, "tmo", "scheduling", "left", "timeout", None, at(310)),
              CallEvent(3, "ov", "scheduling", "overflowed", "overflowed", "front_desk", at(305)),
              CallEvent(4, "ov", "front_desk", "left", "answered", None, at(325)),
              CallEvent(5, "elsewhere", "billing", "overflowed", "overflowed", "front_desk", at(1))]
    k = compute_kpis(recs, call_events=events).overall
    assert k.overflowed == 1 and k.other_exits == 1
    assert k.waits == 3 and k.max_wait == 320  # the timeout's wait: queued at 10, left at 310 -> 300
    assert k.avg_wait == pytest.approx((300 + 320 + 5) / 3)
    assert compute_kpis(recs).overall.waits == 2


# ====================================================================== agents: occupancy and wrap-up


class Ev(NamedTuple):  # any object with these attributes will do (the simulator's own events, say)
    agent_id: str
    from_status: Any
    to_status: Any
    call_id: str | None
    at: datetime


def ana_and_ben() -> list[Ev]:
    m = 60
    return [
        Ev("ana", "logged_out", "ready", None, at(-30 * m)),  # before the window: ready at 09:00
        Ev("ana", "ready", "reserved", "c1", at(30 * m)),
        Ev("ana", "reserved", "on_call", "c1", at(30 * m + 10)),
        Ev("ana", "on_call", "wrap_up", "c1", at(40 * m)),
        Ev("ana", Status.WRAP_UP, Status.READY, None, at(41 * m)),  # Status values work as well as strings
        Ev("ben", "not_ready", "ready", None, at(60 * m)),  # ben's first event: not ready until 10:00
        Ev("ana", "ready", "not_ready", None, at(60 * m)),
        Ev("ana", "not_ready", "ready", None, at(90 * m)),
        Ev("ana", "ready", "logged_out", None, at(110 * m)),
    ]


def test_occupancy_per_agent_from_state_changes_over_the_window():
    c1 = call("c1", 1790, "agent", queue="billing", queued=1795, answered=1810, agent_end=2400, agent="ana")
    rep = compute_kpis([c1], ana_and_ben(), start=at(0), end=at(7200), by=("hour",), tz=NY)
    ana, ben = rep.agents["ana"], rep.agents["ben"]
    # ana: ready 1800 + 1140 + 1200, reserved 10, on call 590, wrap-up 60, not ready 1800, logged out 600
    assert ana.staffed_seconds == pytest.approx(4800) and ana.busy_seconds == pytest.approx(650)
    assert ana.not_ready_seconds == pytest.approx(1800) and ana.logged_in_seconds == pytest.approx(6600)
    assert ana.occupancy == pytest.approx(650 / 4800)
    assert ana.answered == 1 and ana.avg_talk == 590 and ana.avg_wrap_up == 60 and ana.aht == 650
    # ben: not ready 09:00-10:00 (his first event's from_status), ready 10:00-11:00
    assert ben.staffed_seconds == 3600 and ben.not_ready_seconds == 3600 and ben.occupancy == 0.0
    assert ben.answered == 0 and ben.aht is None
    assert rep.overall.occupancy == pytest.approx(650 / (4800 + 3600))
    # AHT includes the wrap-up found in the agent's events
    assert rep.overall.aht == 650 and rep.overall.avg_wrap_up == 60 and rep.overall.aht_includes_wrap_up
    # by hour: time split at 10:00; an hour with agents but no calls still has a row
    h9, h10 = rep.groups["hour"]["2026-11-23 09:00"], rep.groups["hour"]["2026-11-23 10:00"]
    assert h9.staffed_seconds == pytest.approx(3600) and h9.occupancy == pytest.approx(650 / 3600)
    assert h10.calls == 0 and h10.staffed_seconds == pytest.approx(1200 + 3600) and h10.occupancy == 0.0


def test_occupancy_window_clips_and_an_unfinished_wrap_up_is_not_counted_in_aht():
    evs = [Ev("ana", "logged_out", "ready", None, at(0)), Ev("ana", "ready", "reserved", "c1", at(100)),
           Ev("ana", "reserved", "on_call", "c1", at(100)), Ev("ana", "on_call", "wrap_up", "c1", at(200))]
    c1 = call("c1", 90, "agent", queue="billing", queued=95, answered=100, agent_end=200, agent="ana")
    rep = compute_kpis([c1], evs, start=at(50), end=at(250))
    ana = rep.agents["ana"]
    assert ana.staffed_seconds == pytest.approx(200)  # ready 50-100, on call 100-200, wrap-up 200-250
    assert ana.busy_seconds == pytest.approx(150) and ana.occupancy == pytest.approx(0.75)
    assert rep.overall.avg_wrap_up is None and rep.overall.aht == 100  # wrap-up still running at the data's end
    # no window: the data's own span (first event to the last time seen)
    open_ended = compute_kpis([c1], evs).agents["ana"]
    assert open_ended.staffed_seconds == pytest.approx(201) and open_ended.busy_seconds == pytest.approx(101)


def test_agent_with_no_staffed_time_has_no_occupancy():
    evs = [Ev("zed", "logged_out", "not_ready", None, at(0)), Ev("zed", "not_ready", "logged_out", None, at(600))]
    rep = compute_kpis([], evs, start=at(0), end=at(1200))
    assert rep.agents["zed"].occupancy is None and rep.agents["zed"].not_ready_seconds == 600
    assert rep.overall.occupancy is None and rep.overall.staffed_seconds == 0


def test_agent_time_is_split_where_the_local_clock_shows_the_hour():
    ready = [Ev("ana", "logged_out", "ready", None, datetime(2026, 11, 1, 4, 30, tzinfo=UTC)),  # 00:30 EDT
             Ev("ana", "ready", "logged_out", None, datetime(2026, 11, 1, 7, 30, tzinfo=UTC))]  # 02:30 EST
    rep = compute_kpis([], ready, by=("hour", "hour_of_day"), tz=NY)
    assert {k: g.staffed_seconds for k, g in rep.groups["hour"].items()} == {
        "2026-11-01 00:00": 1800, "2026-11-01 01:00": 3600, "2026-11-01 01:00 (repeated)": 3600,
        "2026-11-01 02:00": 1800}
    assert {k: g.staffed_seconds for k, g in rep.groups["hour_of_day"].items()} == {
        "00:00": 1800, "01:00": 7200, "02:00": 1800}
    kathmandu = compute_kpis([], ready, by=("hour_of_day",), tz="Asia/Kathmandu")  # UTC+5:45: 10:15 to 13:15
    assert {k: g.staffed_seconds for k, g in kathmandu.groups["hour_of_day"].items()} == {
        "10:00": 2700, "11:00": 3600, "12:00": 3600, "13:00": 900}


_BUSY, _STAFFED = {"on_call", "wrap_up"}, {"ready", "reserved", "on_call", "wrap_up"}


def _name(status: Any) -> str:
    return str(getattr(status, "value", status))


def span_by_span(events: list[Ev], start: datetime | None, end: datetime | None, tz: ZoneInfo) -> dict[str, Any]:
    """Agent time the plain way, as KPIS.md defines it: one span at a time, cut to the window, and split at
    each local hour with a time-zone conversion per piece. compute_kpis must give the same floats to the
    last bit: it adds the same durations in the same order (agent by agent, oldest span first)."""
    evs = sorted(events, key=lambda e: e.at)
    horizon = end if end is not None else evs[-1].at
    by_agent: dict[str, list[Ev]] = {}
    for e in evs:
        by_agent.setdefault(e.agent_id, []).append(e)
    spans = []
    for agent, mine in by_agent.items():
        raw = [(_name(e.to_status), e.at, nxt.at) for e, nxt in itertools.pairwise(mine)]
        if start is not None and mine[0].at > start:
            raw.insert(0, (_name(mine[0].from_status), start, mine[0].at))
        if horizon > mine[-1].at:
            raw.append((_name(mine[-1].to_status), mine[-1].at, horizon))
        for status, a, b in raw:
            a, b = max(a, start) if start else a, min(b, end) if end else b
            if b > a:
                spans.append((agent, status, a, b))
    agents: dict[str, dict[str, float]] = {}
    hours: dict[str, list[float]] = {}  # label -> [busy, staffed]
    for agent, status, a, b in spans:
        mine_by_status = agents.setdefault(agent, {})
        mine_by_status[status] = mine_by_status.get(status, 0.0) + (b - a).total_seconds()
        while status in _STAFFED and a < b:
            local = a.astimezone(tz)
            nxt = min(b, a + timedelta(seconds=3600 - local.minute * 60 - local.second - local.microsecond / 1e6))
            hour = hours.setdefault(f"{local:%Y-%m-%d %H}:00" + (" (repeated)" if local.fold else ""), [0.0, 0.0])
            hour[0] += (nxt - a).total_seconds() if status in _BUSY else 0.0
            hour[1] += (nxt - a).total_seconds()
            a = nxt
    return {"busy": sum((b - a).total_seconds() for _, s, a, b in spans if s in _BUSY),
            "staffed": sum((b - a).total_seconds() for _, s, a, b in spans if s in _STAFFED),
            "agents": agents, "hours": hours}


def random_shifts(rng: random.Random, base: datetime, agents: int = 4, changes: int = 60) -> list[Ev]:
    """Agents changing status at random, to the microsecond, some at the same instant; shuffled."""
    statuses = ["ready", "reserved", "on_call", "wrap_up", "not_ready", "logged_out"]
    events = []
    for n in range(agents):
        t, status = base + timedelta(seconds=rng.uniform(-3600, 1800)), "logged_out"
        for _ in range(changes):
            t += timedelta(seconds=rng.choice([0.0, rng.expovariate(1 / 600)]))
            nxt = rng.choice(statuses)
            events.append(Ev(f"agent{n}", status, Status(nxt) if rng.random() < 0.5 else nxt, f"c{rng.randrange(9)}", t))
            status = nxt
    rng.shuffle(events)
    return events


@pytest.mark.parametrize("zone, base", [
    ("America/New_York", datetime(2026, 11, 1, 4, tzinfo=UTC)),  # the repeated hour
    ("America/New_York", datetime(2026, 3, 8, 5, tzinfo=UTC)),  # the skipped hour
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 13, tzinfo=UTC)),  # DST is half an hour
    ("Asia/Kathmandu", datetime(2026, 11, 23, 3, tzinfo=UTC)),  # UTC+5:45
])
def test_agent_time_equals_a_span_by_span_sum_to_the_last_bit(zone: str, base: datetime):
    tz = ZoneInfo(zone)
    for seed in range(4):
        rng = random.Random(seed)
        events = random_shifts(rng, base)
        windows = [(None, None), (base, base + timedelta(hours=5)),
                   (base + timedelta(seconds=rng.uniform(0, 3600)), None)]
        for start, end in windows:
            want = span_by_span(events, start, end, tz)
            rep = compute_kpis([], events, by=("hour",), tz=tz, start=start, end=end)
            assert (rep.overall.busy_seconds, rep.overall.staffed_seconds) == (want["busy"], want["staffed"])
            for agent, by_status in want["agents"].items():
                got = rep.agents[agent]
                assert got.busy_seconds == sum(v for s, v in by_status.items() if s in _BUSY)
                assert got.staffed_seconds == sum(v for s, v in by_status.items() if s in _STAFFED)
                assert got.not_ready_seconds == by_status.get("not_ready", 0.0)
            assert set(rep.agents) == set(want["agents"])
            assert {k: [g.busy_seconds, g.staffed_seconds] for k, g in rep.groups["hour"].items()} == want["hours"]


def test_agent_time_over_more_than_a_year_is_split_the_slow_way():
    events = [Ev("ana", "logged_out", "ready", None, datetime(2025, 1, 1, 10, 17, 3, 5, tzinfo=UTC)),
              Ev("ana", "ready", "on_call", "c1", datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC)),
              Ev("ana", "on_call", "logged_out", None, datetime(2026, 6, 1, 12, 30, tzinfo=UTC))]
    want = span_by_span(events, None, None, NY)
    rep = compute_kpis([], events, by=("hour",), tz=NY)
    assert len(rep.groups["hour"]) == len(want["hours"]) > 12_000
    assert {k: [g.busy_seconds, g.staffed_seconds] for k, g in rep.groups["hour"].items()} == want["hours"]


# ====================================================================== statistics


def test_percentile_is_nearest_rank():
    assert percentile(range(1, 11), 0.9) == 9
    assert percentile(range(1, 12), 0.9) == 10
    assert percentile([7.5], 0.9) == 7.5
    assert percentile([3, 1, 2], 1.0) == 3 and percentile([3, 1, 2], 0.5) == 2
    assert percentile([], 0.9) is None
    with pytest.raises(ValueError):
        percentile([1], 0)


@pytest.mark.parametrize(("p", "df", "expected"), [
    (0.975, 4, 2.776), (0.975, 30, 2.042), (0.975, 1, 12.706), (0.975, 2, 4.303), (0.95, 10, 1.812),
    (0.995, 9, 3.250), (0.9, 5, 1.476), (0.975, 120, 1.980), (0.999, 3, 10.215),
])
def test_t_quantile_matches_the_tables(p: float, df: float, expected: float):
    assert t_quantile(p, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=5e-4)


def test_t_quantile_inverts_the_cdf_and_tends_to_the_normal():
    for df in (1.5, 3, 7, 25, 500):
        for p in (0.55, 0.8, 0.99, 0.9999):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)
    assert t_quantile(0.5, 8) == 0.0
    assert t_quantile(0.975, 1e7) == pytest.approx(1.959964, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    for bad in ((0.0, 5), (1.0, 5), (0.9, 0)):
        with pytest.raises(ValueError):
            t_quantile(*bad)


def test_t_quantile_agrees_with_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    for df in (2.5, 4, 9, 30, 1000):
        for p in (0.6, 0.95, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)


def test_confidence_interval_over_replications():
    ci = confidence_interval([1, 2, 3, 4, 5])
    assert ci.mean == 3 and ci.n == 5 and ci.level == 0.95
    assert ci.half_width == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert ci.low == pytest.approx(3 - ci.half_width) and ci.high == pytest.approx(3 + ci.half_width)
    ci90 = confidence_interval([1, 2, 3, 4, 5], level=0.9)
    assert ci90.half_width < ci.half_width
    skipped = confidence_interval([0.8, None, 0.9, float("nan")])
    assert skipped.n == 2 and skipped.mean == pytest.approx(0.85)
    one = confidence_interval([0.7])
    assert one.mean == 0.7 and one.half_width is None and one.low is None
    assert confidence_interval([2, 2, 2]).half_width == 0.0
    with pytest.raises(ValueError):
        confidence_interval([None])
    with pytest.raises(ValueError):
        confidence_interval([1, 2], level=1.0)


def test_rows_for_csv_and_json():
    c1 = call("c1", 1790, "agent", queue="billing", queued=1795, answered=1810, agent_end=2400, agent="ana")
    rep = compute_kpis(sample() + [c1], ana_and_ben(), start=at(0), end=at(7200), by=("queue",))
    rows = rep.to_rows()
    assert rows[0]["group"] == "all" and rows[0]["calls"] == 14
    assert [(r["group"], r["key"]) for r in rows[1:]] == [
        ("queue", "billing"), ("queue", "scheduling"), ("queue", NO_QUEUE), ("agent", "ana"), ("agent", "ben")]
    assert rows[-1]["staffed_seconds"] == 3600
    json.dumps(rows)  # plain values only


# ====================================================================== `ivr report` on a real store


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("report")(report)

    @a.callback()
    def _root() -> None:
        pass

    return a


def write_store(db: Path, records: list[CallRecord], agents: list[tuple[AgentState, str]] = ()) -> None:
    async def go() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            for r in records:
                await store.record_call(r)
            for state, previous in agents:
                await store.apply([AgentChanged(state, previous, "test")])
        finally:
            await store.close()

    asyncio.run(go())


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./queues.yaml unless a test writes one
    for var in ("TZ", "DATABASE_URL", "IVR_DB_PATH"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def run(*args: str) -> Any:
    return CliRunner().invoke(app(), ["report", *args])


def test_report_end_to_end_from_a_sqlite_store(cli_env: Path):
    db = cli_env / "state.db"
    c1 = call("c1", 1790, "agent", queue="billing", queued=1795, answered=1810, agent_end=2400, agent="ana")
    ana = [(AgentState("ana", Status.READY, at(0)), "logged_out"),
           (AgentState("ana", Status.RESERVED, at(1800), call_id="c1"), "ready"),
           (AgentState("ana", Status.ON_CALL, at(1810), call_id="c1"), "reserved"),
           (AgentState("ana", Status.WRAP_UP, at(2400), call_id="c1"), "on_call"),
           (AgentState("ana", Status.READY, at(2460)), "wrap_up")]
    write_store(db, sample() + [c1, call("tomorrow", 86400, "hangup")], ana)
    (cli_env / "q.yaml").write_text("queues:\n  scheduling:\n    skills: {scheduling: 5}\n"
                                    "    service_level: {seconds: 20, target: 0.8}\n"
                                    "  billing:\n    skills: {billing: 3}\n"
                                    "    service_level: {seconds: 20, target: 0.9}\n")
    window = ["--from", "2026-11-23 09:00", "--to", "2026-11-23 11:00", "--tz", "America/New_York",
              "--db", str(db), "--queues", "q.yaml"]

    r = run(*window, "--format", "json", "--by", "queue", "--by", "agent")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["from"] == "2026-11-23T09:00:00-05:00" and doc["tz"] == "America/New_York"
    rows = {(x["group"], x["key"]): x for x in doc["rows"]}
    overall = rows[("all", "all")]
    assert overall["calls"] == 14 and overall["offered"] == 7 and overall["answered"] == 4  # "tomorrow" is outside
    assert overall["service_level"] == pytest.approx(3 / 6) and overall["service_level_strict"] == pytest.approx(3 / 7)
    assert overall["aht_includes_wrap_up"] and overall["avg_wrap_up"] == 60
    assert rows[("queue", "billing")]["sl_target"] == 0.9
    assert rows[("agent", "ana")]["busy_seconds"] == 650
    assert overall["occupancy"] == pytest.approx(650 / 7200)  # ana's 2 hours staffed (logged in from 09:00)

    r = run(*window, "--format", "csv", "--by", "hour")
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(t["group"], t["key"]) for t in table] == [("all", "all"), ("hour", "2026-11-23 09:00"),
                                                        ("hour", "2026-11-23 10:00")]
    assert table[1]["calls"] == "14" and table[2]["calls"] == "0" and float(table[2]["occupancy"]) == 0.0

    r = run(*window)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Calls started 2026-11-23 09:00 to 2026-11-23 11:00 (America/New_York)" in out
    line = next(ln for ln in out.splitlines() if "queue: billing" in ln)
    assert "66.7%" in line and "33.3%" in line  # billing: a3 and c1 within T, ab2 abandoned late: SL 2/3, aband. 1/3
    assert "abandons within T excluded" in out and "routing/KPIS.md" in out
    assert "ana" not in out  # agents only with --by agent


def test_report_on_an_empty_store_says_so_and_exits_0(cli_env: Path):
    db = cli_env / "empty.db"
    write_store(db, [])
    r = run("--db", str(db), "--from", "2026-11-23", "--to", "2026-11-24")
    assert r.exit_code == 0 and NO_CALLS in r.stdout and "2026-11-23T00:00:00+00:00" in r.stdout
    r = run("--db", str(db), "--from", "2026-11-23", "--format", "json", "--to", "2026-11-24")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == [] and NO_CALLS in r.stderr


def test_report_refuses_bad_usage_and_a_missing_database(cli_env: Path):
    db = cli_env / "state.db"
    write_store(db, [call("x", 0, "hangup")])
    assert run("--db", str(db), "--format", "xml").exit_code == 2
    assert run("--db", str(db), "--by", "weekday").exit_code == 2
    assert run("--db", str(db), "--tz", "Mars/Olympus").exit_code == 2
    bad = run("--db", str(db), "--from", "2026-11-24", "--to", "2026-11-23")
    assert bad.exit_code == 2 and "must be after" in bad.stderr
    missing = run("--db", str(cli_env / "nope.db"))
    assert missing.exit_code == 1 and "no routing database" in missing.stderr
    assert not (cli_env / "nope.db").exists()
    (cli_env / "broken.yaml").write_text("queues: {billing: {service_level: {seconds: -1}}}\n")
    assert run("--db", str(db), "--queues", "broken.yaml").exit_code == 1
