"""The day simulator (``ivr simulate-day``): scenario validation, determinism, the behaviour of a day on
small hand-checkable scenarios (arrivals, containment, after hours, shifts and breaks, patience and
callbacks, wrap-up), the talk-time distributions, and the CLI end to end."""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import NY, ROOT
from typer.testing import CliRunner

from ivr.cli import app
from ivr.configfile import ConfigInvalid
from ivr.daysim.engine import DayModel, DayOutcome, DaySimulator
from ivr.daysim.runner import replicate, run_replications, summarize_day
from ivr.daysim.scenario import Dist, ScenarioInvalid, load_scenario

CLINIC_TREE = ROOT / "calltrees" / "clinic-main.yaml"
QUEUES = ROOT / "queues.yaml"
SAMPLE = ROOT / "scenarios" / "clinic-monday.yaml"
CALLER_NUMBER = "+15555550100"  # what the engine gives every simulated caller: must never reach an output
DAY = date(2026, 11, 23)  # a Monday: the clinic's office is open 08:00-17:00

# A tiny tree: a greeting, one queue (key 1 books a callback), a callback node, a transfer and a goodbye.
TINY_TREE = """\
name: Tiny desk line
medical: false
languages: [en]
timezone: America/New_York
start: hello
human: {target: desk}
nodes:
  hello:
    type: say
    text: {en: "Hello."}
    next: desk
  desk:
    type: queue
    queue: desk
    requirements: {skills: {desk: 1}}
    keys: {"1": cb}
    fallback: {default: line}
  cb:
    type: callback
    queue: desk
    prompt: {en: "We will call you back."}
    no_number: line
    next: bye
  line:
    type: transfer
    to: "+15550100200"
    label: Answering service
    on_failure: bye
  bye:
    type: hangup
    outcome: done
    prompt: {en: "Goodbye."}
"""
TINY_QUEUES = """\
queues:
  desk:
    skills: {desk: 1}
    wrap_up: 10
    when_nobody_logged_in: wait
"""


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding tiny.yaml (the tree) and q.yaml (its queue)."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.yaml").write_text(TINY_TREE)
    (d / "q.yaml").write_text(TINY_QUEUES)
    return d


def tiny_scenario(**changes: Any) -> dict[str, Any]:
    """A small scenario on the tiny tree: 2 desk agents 09:00-12:00, 20 calls from 09:00, 60 s talks."""
    spec: dict[str, Any] = {
        "name": "tiny", "tree": "tiny.yaml", "queues": "q.yaml", "date": DAY.isoformat(), "seed": 5,
        "replications": 2, "arrivals": {"09:00": 20},
        "mix": [{"name": "wait", "share": 1, "keys": ""}],
        "talk": {"default": {"dist": "fixed", "mean": 60}},
        "agents": [{"name": "a", "count": 2, "skills": {"desk": 1}, "shift": "09:00-12:00"}],
    }
    spec.update(changes)
    return spec


def clinic_scenario(**changes: Any) -> dict[str, Any]:
    """A small scenario on the clinic tree and the sample queues (absolute paths)."""
    spec: dict[str, Any] = {
        "name": "clinic small", "tree": str(CLINIC_TREE), "queues": str(QUEUES), "date": DAY.isoformat(),
        "seed": 11, "replications": 2, "arrivals": {"09:00": 40},
        "mix": [{"name": "book", "share": 1, "keys": "1 1"}],
        "hooks": {"find_appointment": {"date": "December 3", "id": "A-1"}, "cancel_appointment": {}},
        "agents": [{"name": "sched", "count": 2, "skills": {"scheduling": 7, "front_desk": 5},
                    "shift": "08:00-17:00"}],
    }
    spec.update(changes)
    return spec


def write(folder: Path, spec: dict[str, Any], name: str = "scenario.yaml") -> Path:
    p = folder / name
    p.write_text(yaml.safe_dump(spec, sort_keys=False))
    return p


def model_of(folder: Path, spec: dict[str, Any], name: str = "scenario.yaml") -> DayModel:
    return DayModel(load_scenario(write(folder, spec, name)))


def local(dt: datetime) -> datetime:
    return dt.astimezone(NY)


def at_local(hhmm: str) -> datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime.combine(DAY, time(h, m), tzinfo=NY)


def by_agent(out: DayOutcome) -> dict[str, list[Any]]:
    ev: dict[str, list[Any]] = defaultdict(list)
    for e in out.agent_events:
        ev[e.agent_id].append(e)
    return ev


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# ---------------------------------------------------------------------------------------------- 1. validation

VALID = """\
name: tiny
tree: {tree}
queues: {queues}
date: 2026-11-23
arrivals:
  "09:00": 10
mix:
  - {{name: wait, share: 1, keys: "1"}}
talk:
  desk: {{dist: fixed, mean: 60}}
agents:
  - {{name: a, count: 2, skills: {{desk: 1}}, shift: "09:00-12:00", breaks: [{{start: "10:00", minutes: 10}}]}}
"""


def valid_text(tiny: Path) -> str:
    return VALID.format(tree=tiny / "tiny.yaml", queues=tiny / "q.yaml")


def test_the_valid_base_scenario_loads(tiny: Path, tmp_path: Path):
    p = tmp_path / "ok.yaml"
    p.write_text(valid_text(tiny))
    model = DayModel(load_scenario(p))
    assert [s.id for s in model.roster] == ["a-01", "a-02"] and set(model.queues) == {"desk"}


# (what to replace, with what, the line of the diagnostic, words the message must contain)
INVALID = {
    "lognormal without sd": ("desk: {dist: fixed, mean: 60}", "desk: {dist: lognormal, mean: 60}", 10,
                             ["lognormal", "`sd`"]),
    "bad key token": ('keys: "1"', 'keys: "1 x"', 8, ["'x'", "not valid"]),
    "overnight shift": ('"09:00-12:00"', '"17:00-08:00"', 12, ["17:00-08:00", "ends before it starts"]),
    "break outside the shift": ('start: "10:00"', 'start: "13:00"', 12, ["13:00", "outside the shift 09:00-12:00"]),
    "unknown break reason": ("minutes: 10}", "minutes: 10, reason: nap}", 12, ["'nap'", "lunch"]),
    "arrival hour not on the hour": ('"09:00": 10', '"09:30": 10', 5, ["'09:30'", "on the hour"]),
    "duplicate mix names": ('  - {name: wait, share: 1, keys: "1"}\n',
                            '  - {name: wait, share: 1, keys: "1"}\n  - {name: wait, share: 2, keys: ""}\n', 7,
                            ["unique", "wait"]),
    "duplicate agent ids": ('breaks: [{start: "10:00", minutes: 10}]}\n',
                            'breaks: [{start: "10:00", minutes: 10}]}\n  - {name: a, count: 2, skills: {desk: 1}}\n',
                            11, ["'a-01'", "two groups"]),
    "unknown field": ("date: 2026-11-23\n", "date: 2026-11-23\nreplicatons: 3\n", 5, ["unknown field", "replicatons"]),
}


def scenario_error(tiny: Path, tmp_path: Path, case: str) -> Any:
    """The one diagnostic of the base scenario broken as INVALID[case] says."""
    old, new, _, _ = INVALID[case]
    text = valid_text(tiny)
    assert old in text
    p = tmp_path / "bad.yaml"
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigInvalid) as exc:
        load_scenario(p)
    diags = exc.value.diagnostics
    assert len(diags) == 1, [d.render() for d in diags]
    assert diags[0].file.endswith("bad.yaml")
    return diags[0]


@pytest.mark.parametrize("case", list(INVALID))
def test_scenario_errors_say_what_is_wrong(case: str, tiny: Path, tmp_path: Path):
    d = scenario_error(tiny, tmp_path, case)
    for w in INVALID[case][3]:
        assert w in d.message, d.render()


@pytest.mark.parametrize("case", list(INVALID))
def test_scenario_errors_point_at_the_line(case: str, tiny: Path, tmp_path: Path):
    d = scenario_error(tiny, tmp_path, case)
    assert d.line == INVALID[case][2], d.render()


def test_a_typo_in_a_scenario_gets_a_suggestion_not_a_call_tree_hint(tiny: Path, tmp_path: Path):
    text = valid_text(tiny).replace("date: 2026-11-23\n", "date: 2026-11-23\nsead: 3\n").replace("share: 1", "shares: 1")
    p = tmp_path / "typo.yaml"
    p.write_text(text)
    with pytest.raises(ConfigInvalid) as exc:
        load_scenario(p)
    hints = {d.path[-1]: d.hint or "" for d in exc.value.diagnostics if d.id == "E-UNKNOWN-FIELD"}
    assert set(hints) == {"sead", "shares"}
    assert "did you mean 'seed'" in hints["sead"] and "calltrees/README.md" not in hints["sead"]
    assert "did you mean 'share'" in hints["shares"] and "failing_transfers" not in hints["shares"]


def test_missing_tree_file_is_scenario_invalid_naming_the_path(tiny: Path, tmp_path: Path):
    p = tmp_path / "s.yaml"
    p.write_text(valid_text(tiny).replace(str(tiny / "tiny.yaml"), "nowhere/tree.yaml"))
    with pytest.raises(ScenarioInvalid) as exc:
        load_scenario(p)
    msg = str(exc.value)
    assert str((tmp_path / "nowhere" / "tree.yaml").resolve()) in msg and "relative to the scenario file" in msg


def test_paths_are_relative_to_the_scenario_file(tiny: Path):
    spec = tiny_scenario()  # tree: tiny.yaml, queues: q.yaml, next to the scenario
    loaded = load_scenario(write(tiny, spec, "rel.yaml"))
    assert loaded.tree_path == (tiny / "tiny.yaml").resolve() and loaded.queues_path == (tiny / "q.yaml").resolve()


@pytest.mark.parametrize("field", ["talk", "wrap_up"])
def test_talk_or_wrap_up_naming_an_unknown_queue_fails_when_the_model_is_built(field: str, tiny: Path):
    value = {"dest": {"dist": "fixed", "mean": 30}} if field == "talk" else {"dest": 5}
    loaded = load_scenario(write(tiny, tiny_scenario(**{field: value}), f"unknown-{field}.yaml"))  # loads fine
    with pytest.raises(ScenarioInvalid) as exc:
        DayModel(loaded)
    assert "dest" in str(exc.value) and "known: desk" in str(exc.value)


def test_cli_reports_a_bad_scenario_with_file_and_line_and_exits_1(tiny: Path, tmp_path: Path):
    p = tmp_path / "bad.yaml"
    p.write_text(valid_text(tiny).replace('"09:00-12:00"', '"17:00-08:00"'))
    r = cli("simulate-day", str(p), "--no-progress", "--jobs", "1")
    assert r.exit_code == 1
    assert f"{p}:12:" in r.stderr and "ends before it starts" in r.stderr
    missing = cli("simulate-day", str(tmp_path / "nope.yaml"), "--no-progress", "--jobs", "1")
    assert missing.exit_code == 1 and "nope.yaml" in missing.stderr


# ---------------------------------------------------------------------------------------------- 2. determinism


def busy_tiny(**changes: Any) -> dict[str, Any]:
    """Enough randomness to tell replications apart: lognormal talk, exponential patience, callbacks."""
    return tiny_scenario(**{
        "arrivals": {"09:00": 40, "10:00": 30},
        "mix": [{"name": "wait", "share": 3, "keys": ""}, {"name": "gives_up", "share": 1, "keys": "h"}],
        "talk": {"default": {"dist": "lognormal", "mean": 200, "sd": 90}},
        "patience": {"dist": "exponential", "mean": 120}, "callback_share": 0.5, **changes})


def test_same_seed_and_replication_give_identical_days(tiny: Path):
    spec = busy_tiny()
    a = DaySimulator(model_of(tiny, spec, "det-a.yaml")).run(0)
    b = DaySimulator(model_of(tiny, spec, "det-b.yaml")).run(0)  # a fresh model from the same scenario
    assert a.arrivals > 20
    assert a.records == b.records and a.agent_events == b.agent_events and a.call_events == b.call_events
    other = DaySimulator(model_of(tiny, spec, "det-a.yaml")).run(1)
    assert [r.started_at for r in other.records] != [r.started_at for r in a.records]
    reseeded = DaySimulator(model_of(tiny, {**spec, "seed": 6}, "det-c.yaml")).run(0)
    assert [r.started_at for r in reseeded.records] != [r.started_at for r in a.records]


def test_replication_3_alone_equals_replication_3_in_a_series(tiny: Path):
    model = model_of(tiny, busy_tiny(), "series.yaml")
    series = run_replications(model, 4, jobs=1)
    assert [r.index for r in series] == [0, 1, 2, 3]
    alone = replicate(model, 3)
    assert alone.arrivals == series[3].arrivals and alone.events == series[3].events
    assert alone.answered_waits == series[3].answered_waits and alone.abandoned_waits == series[3].abandoned_waits
    assert alone.report.overall == series[3].report.overall
    assert series[2].report.overall != series[3].report.overall


def test_worker_processes_give_the_same_summary(tiny: Path):
    model = model_of(tiny, busy_tiny(), "jobs.yaml")
    one = summarize_day(model, run_replications(model, 3, jobs=1)).to_json()
    two = summarize_day(model, run_replications(model, 3, jobs=2)).to_json()
    assert one == two and one["replications"] == 3


# ---------------------------------------------------------------------------------------------- 3. the day


def test_the_tiny_tree_passes_ivr_validate(tiny: Path):
    r = cli("validate", str(tiny / "tiny.yaml"))
    assert r.exit_code == 0, r.output
    assert "OK" in r.stdout


@pytest.fixture(scope="module")
def clinic_day() -> tuple[DayModel, DayOutcome]:
    """One replication of the sample Monday (about 1,200 calls)."""
    model = DayModel(load_scenario(SAMPLE))
    return model, DaySimulator(model).run(0)


def test_every_arrival_gives_exactly_one_finished_record(clinic_day: tuple[DayModel, DayOutcome]):
    _, out = clinic_day
    assert 900 < out.arrivals < 1600  # 1,210 expected
    assert len(out.records) == out.arrivals
    ids = [r.call_id for r in out.records]
    assert len(set(ids)) == len(ids) == out.arrivals
    assert out.unfinished == 0 and "engine" not in {r.ended_by for r in out.records if r.outcome == "abandoned"}
    for r in out.records:
        assert r.started_at <= r.ended_at
        if r.queued_at is not None:
            assert r.started_at <= r.queued_at <= r.ended_at
        if r.answered_at is not None:
            assert r.agent_id is not None and r.queued_at <= r.answered_at <= r.agent_ended_at <= r.ended_at
    assert CALLER_NUMBER not in repr(out.records) and "5555550100" not in repr(out.call_events)


def test_agent_event_chains_are_consistent_and_respect_shifts_and_breaks(clinic_day: tuple[DayModel, DayOutcome]):
    model, out = clinic_day
    shifts = {aid: (model.at(start), model.at(end), breaks) for aid, start, end, breaks in model.shifts}
    events = by_agent(out)
    assert set(events) == set(shifts)
    for aid, evs in events.items():
        start, end, breaks = shifts[aid]
        assert evs[0].at == start and evs[0].from_status == "logged_out"  # logs in at shift start, not before
        assert all(e.at >= start for e in evs)
        assert evs[-1].to_status == "logged_out" and evs[-1].at >= end
        assert [e.to_status for e in evs].count("logged_out") == 1
        for prev, e in pairwise(evs):
            assert e.from_status == prev.to_status, (aid, prev, e)  # one unbroken state chain
            assert e.at >= prev.at
            assert not (e.from_status == "not_ready" and e.to_status == "reserved")  # never offered on a break
        pauses = [(e, nxt) for e, nxt in pairwise(evs) if e.to_status == "not_ready"]
        assert len(pauses) == len(breaks)
        for (e, nxt), (bt, secs, _) in zip(pauses, breaks):
            assert e.at >= model.at(bt)  # never early
            assert (nxt.at - e.at).total_seconds() == pytest.approx(secs)  # the full length
            assert nxt.to_status == "ready"


def test_contained_callers_never_reach_a_queue(tiny: Path):
    spec = clinic_scenario(mix=[{"name": "refill", "share": 1, "keys": "2 04121980#"}], arrivals={"10:00": 30})
    model = model_of(tiny, spec, "refill.yaml")
    out = DaySimulator(model).run(0)
    assert out.arrivals > 10 and len(out.records) == out.arrivals and out.unfinished == 0
    assert {r.outcome for r in out.records} == {"record"}
    assert {r.node for r in out.records} == {"refill_done"}
    assert all(r.queue is None and r.queued_at is None and r.agent_id is None for r in out.records)
    assert not out.call_events
    assert all(e.to_status in ("ready", "logged_out") for e in out.agent_events)  # nobody was ever offered a call
    rep = replicate(model, 0)
    assert rep.report.overall.containment_rate == 1.0 and rep.report.overall.offered == 0


def test_calls_when_the_office_is_closed_go_to_the_nurse_line(tiny: Path):
    spec = clinic_scenario(arrivals={"19:00": 30}, mix=[{"name": "book", "share": 1, "keys": "1 1"},
                                                        {"name": "silent", "share": 1, "keys": ""}])
    out = DaySimulator(model_of(tiny, spec, "night.yaml")).run(0)
    assert out.arrivals > 10 and out.unfinished == 0
    for r in out.records:
        assert local(r.started_at).hour == 19
        assert r.queue is None and r.queued_at is None and r.agent_id is None
        assert (r.outcome, r.node, r.ended_by) == ("transfer", "nurse_line", "transfer")
    assert not out.call_events


def test_agent_on_a_call_at_shift_end_logs_out_after_the_call_and_wrap_up(tiny: Path):
    # One agent 09:00-09:10; the first caller is answered at once (answer_after 0) and talks 30 minutes;
    # everyone else gives up after 2 s, so nobody is waiting when the call ends.
    spec = tiny_scenario(arrivals={"09:00": 120}, answer_after=0, patience={"dist": "fixed", "mean": 2},
                         talk={"default": {"dist": "fixed", "mean": 1800}},
                         agents=[{"name": "solo", "skills": {"desk": 1}, "shift": "09:00-09:10"}])
    model = model_of(tiny, spec, "shift-end.yaml")
    out = DaySimulator(model).run(0)
    (answered,) = [r for r in out.records if r.answered_at is not None]
    assert answered.agent_id == "solo" and answered.answered_at < at_local("09:10") < answered.agent_ended_at
    evs = out.agent_events
    assert evs[0].at == at_local("09:00") and evs[0].to_status == "ready"
    logout = evs[-1]
    assert logout.to_status == "logged_out" and logout.from_status in ("wrap_up", "ready")
    assert logout.at == answered.agent_ended_at + timedelta(seconds=model.queues["desk"].wrap_up)
    assert [e.to_status for e in evs if e.at >= answered.agent_ended_at] in (["wrap_up", "ready", "logged_out"],
                                                                            ["wrap_up", "logged_out"])
    assert out.unfinished == 0 and {r.outcome for r in out.records} == {"agent", "abandoned"}


def test_a_busy_agent_takes_the_break_and_logs_out_right_after_the_current_call(tiny: Path):
    # Overloaded: a call a minute for two agents on 10-minute calls; callers wait up to 90 minutes.
    spec = tiny_scenario(arrivals={"09:00": 60}, patience={"dist": "fixed", "mean": 5400},
                         talk={"default": {"dist": "fixed", "mean": 600}},
                         agents=[{"name": "a", "count": 2, "skills": {"desk": 1}, "shift": "09:00-10:00",
                                  "breaks": [{"start": "09:30", "minutes": 10}]}])
    model = model_of(tiny, spec, "busy-break.yaml")
    out = DaySimulator(model).run(0)
    longest_call = timedelta(seconds=model.spec.answer_after + 600 + model.queues["desk"].wrap_up)
    for aid, evs in by_agent(out).items():
        for due in (at_local("09:30"), at_local("10:00")):
            after = [e for e in evs if e.at >= due]
            stop = next(e for e in after if e.to_status in ("not_ready", "logged_out"))
            assert stop.at <= due + longest_call, (aid, due, stop)
            assert not [e for e in after if e.at < stop.at and e.to_status == "reserved"], (aid, due)
        assert evs[-1].to_status == "logged_out" and evs[-1].at <= at_local("10:00") + longest_call


def test_two_breaks_due_during_one_long_call_are_both_taken_back_to_back_after_it(tiny: Path):
    spec = tiny_scenario(arrivals={"09:00": 120}, answer_after=0, patience={"dist": "fixed", "mean": 2},
                         talk={"default": {"dist": "fixed", "mean": 2400}}, wrap_up={"default": 0},
                         agents=[{"name": "solo", "skills": {"desk": 1}, "shift": "09:00-12:00",
                                  "breaks": [{"start": "09:20", "minutes": 10},
                                             {"start": "09:30", "minutes": 30, "reason": "lunch"}]}])
    out = DaySimulator(model_of(tiny, spec, "two-breaks.yaml")).run(0)
    first = min((r for r in out.records if r.answered_at is not None), key=lambda r: r.answered_at)
    end = first.agent_ended_at
    assert first.answered_at < at_local("09:20") and end > at_local("09:30")
    after = [(e.from_status, e.to_status, e.at - end) for e in out.agent_events if end <= e.at < at_local("11:59")]
    assert after[:4] == [("on_call", "wrap_up", timedelta(0)), ("wrap_up", "not_ready", timedelta(0)),
                         ("not_ready", "not_ready", timedelta(minutes=10)),
                         ("not_ready", "ready", timedelta(minutes=40))]


@pytest.mark.parametrize("second, ends", [
    ("10:10", ["10:00 ready>not_ready", "10:10 not_ready>not_ready", "10:40 not_ready>ready"]),  # back to back
    ("10:05", ["10:00 ready>not_ready", "10:10 not_ready>not_ready", "10:40 not_ready>ready"]),  # overlapping
])
def test_a_break_due_during_another_starts_when_it_ends_and_keeps_its_length(tiny: Path, second: str, ends: list[str]):
    spec = tiny_scenario(arrivals={"11:00": 1}, patience={"dist": "fixed", "mean": 1},  # calls don't matter here
                         agents=[{"name": "solo", "skills": {"desk": 1}, "shift": "09:00-12:00",
                                  "breaks": [{"start": "10:00", "minutes": 10},
                                             {"start": second, "minutes": 30, "reason": "lunch"}]}])
    out = DaySimulator(model_of(tiny, spec, f"breaks-{second[-2:]}.yaml")).run(0)
    seen = [f"{local(e.at):%H:%M} {e.from_status}>{e.to_status}" for e in out.agent_events
            if at_local("09:30") < e.at < at_local("10:59")]
    assert seen == ends


def test_calls_still_waiting_when_the_day_is_cut_off_are_ended_by_the_engine_and_noted(tiny: Path):
    # Infinitely patient callers, agents gone after one minute, a queue that waits for someone to log in:
    # the callers are still on hold when the day is cut off 6 h after the last hour.
    spec = tiny_scenario(agents=[{"name": "a", "count": 1, "skills": {"desk": 1}, "shift": "09:00-09:01"}])
    model = model_of(tiny, spec, "cut-off.yaml")
    out = DaySimulator(model).run(0)
    assert out.unfinished > 5 and len(out.records) == out.arrivals
    cut = [r for r in out.records if r.ended_by == "engine" and r.answered_at is None]
    assert len(cut) == out.unfinished
    assert all(r.queued_at is not None and r.ended_at <= model.at(model.horizon) for r in cut)
    rep = replicate(model, 0)
    assert rep.unfinished == out.unfinished
    res = cli("simulate-day", str(tiny / "cut-off.yaml"), "--no-progress", "-n", "1", "-j", "1")
    assert res.exit_code == 0 and "still in progress 6 h after" in res.output


def test_impatient_callers_abandon_when_nobody_answers_in_time(tiny: Path):
    # Patience 1 s, and an agent's phone rings 3 s before they pick up: nobody is ever answered.
    spec = tiny_scenario(patience={"dist": "fixed", "mean": 1})
    out = DaySimulator(model_of(tiny, spec, "impatient.yaml")).run(0)
    assert out.arrivals > 5 and out.unfinished == 0 and out.callbacks_served == 0
    assert {r.outcome for r in out.records} == {"abandoned"}
    for r in out.records:
        assert r.answered_at is None and r.queue == "desk" and r.ended_by == "caller"
        assert (r.ended_at - r.queued_at).total_seconds() == pytest.approx(1.0)
    assert "on_call" not in {e.to_status for e in out.agent_events}


def test_impatient_callers_book_callbacks_that_agents_then_serve(tiny: Path):
    spec = tiny_scenario(patience={"dist": "fixed", "mean": 1}, callback_share=1.0)
    model = model_of(tiny, spec, "callbacks.yaml")
    out = DaySimulator(model).run(0)
    assert out.arrivals > 5 and out.unfinished == 0
    assert {(r.outcome, r.node) for r in out.records} == {("callback", "bye")}
    assert all(r.answered_at is None for r in out.records)
    assert out.callbacks_served == out.arrivals  # 2 agents, 3 hours, 1-minute calls: every callback is made
    on_call = [e for e in out.agent_events if e.to_status == "on_call"]
    assert len(on_call) == out.arrivals and all(e.call_id.endswith("-callback") for e in on_call)
    rep = replicate(model, 0)
    assert rep.report.overall.callbacks == out.arrivals and rep.callbacks_served == out.arrivals


def test_callback_share_only_applies_where_the_queue_has_a_callback_key(tiny: Path):
    # The clinic's records queue has no callback key: impatient callers hang up whatever the share.
    spec = clinic_scenario(mix=[{"name": "records", "share": 1, "keys": "5"}], patience={"dist": "fixed", "mean": 1},
                           callback_share=1.0,
                           agents=[{"name": "rec", "skills": {"records": 9}, "shift": "08:00-17:00"}])
    out = DaySimulator(model_of(tiny, spec, "records.yaml")).run(0)
    assert out.arrivals > 10 and {r.outcome for r in out.records} == {"abandoned"} and out.callbacks_served == 0


def test_wrap_up_override_is_applied(tiny: Path):
    model = model_of(tiny, tiny_scenario(wrap_up={"default": 0}), "wrap0.yaml")
    assert model.queues["desk"].wrap_up == 0  # q.yaml says 10
    out = DaySimulator(model).run(0)
    spans = []
    for evs in by_agent(out).values():
        for e, nxt in pairwise(evs):
            if e.to_status == "wrap_up":
                spans.append((nxt.at - e.at).total_seconds())
    assert spans and set(spans) == {0.0}
    per_queue = model_of(tiny, tiny_scenario(wrap_up={"default": 0, "desk": 25}), "wrap25.yaml")
    assert per_queue.queues["desk"].wrap_up == 25
    assert model_of(tiny, tiny_scenario(), "wrapq.yaml").queues["desk"].wrap_up == 10  # no override: queues.yaml


def test_mix_talk_time_overrides_the_queue_talk_time(tiny: Path):
    spec = tiny_scenario(mix=[{"name": "long", "share": 1, "keys": "", "talk": {"dist": "fixed", "mean": 300}}],
                         talk={"default": {"dist": "fixed", "mean": 60}}, arrivals={"09:00": 6})
    out = DaySimulator(model_of(tiny, spec, "mixtalk.yaml")).run(0)
    talks = {(r.agent_ended_at - r.answered_at).total_seconds() for r in out.records if r.answered_at is not None}
    assert talks == {300.0}


def test_warm_up_leaves_the_first_calls_out_of_the_kpis(tiny: Path):
    spec = tiny_scenario(arrivals={"09:00": 30, "10:00": 30})
    cold = model_of(tiny, spec, "cold.yaml")
    warm = model_of(tiny, {**spec, "warmup_minutes": 60}, "warm.yaml")
    out = DaySimulator(cold).run(0)
    ten = sum(1 for r in out.records if local(r.started_at).hour == 10)
    assert 0 < ten < out.arrivals
    assert replicate(cold, 0).report.overall.calls == out.arrivals
    warm_rep = replicate(warm, 0)
    assert warm_rep.arrivals == out.arrivals and warm_rep.report.overall.calls == ten
    assert "09:00" not in warm_rep.report.groups["hour_of_day"]
    assert any("warm-up" in n for n in summarize_day(warm, [warm_rep]).notes)


def test_hanging_up_during_a_recording_as_ivr_simulate_does(tiny: Path):
    spec = clinic_scenario(arrivals={"09:00": 20}, mix=[{"name": "refill_hangs_up", "share": 1,
                                                          "keys": "2 04121980# h"}])
    out = DaySimulator(model_of(tiny, spec, "record-h.yaml")).run(0)
    assert out.arrivals > 5
    assert {(r.outcome, r.node, r.ended_by) for r in out.records} == {("record", "refill_record", "caller")}


# ---------------------------------------------------------------------------------------------- distributions


def test_lognormal_has_the_given_mean_and_sd():
    draw = Dist(dist="lognormal", mean=240, sd=120).sampler()
    rng = random.Random(20240)
    xs = [draw(rng) for _ in range(20_000)]
    assert statistics.fmean(xs) == pytest.approx(240, rel=0.03)
    assert statistics.stdev(xs) == pytest.approx(120, rel=0.05)
    assert min(xs) > 0


def test_exponential_has_the_given_mean_and_fixed_is_the_mean():
    draw = Dist(dist="exponential", mean=180).sampler()
    rng = random.Random(7)
    xs = [draw(rng) for _ in range(20_000)]
    assert statistics.fmean(xs) == pytest.approx(180, rel=0.03)
    assert statistics.stdev(xs) == pytest.approx(180, rel=0.05)  # an exponential's sd is its mean
    fixed = Dist(dist="fixed", mean=42.5).sampler()
    assert {fixed(rng) for _ in range(10)} == {42.5}


def test_distribution_parameters_are_checked():
    with pytest.raises(ValueError, match="needs `sd`"):
        Dist(dist="lognormal", mean=10)
    with pytest.raises(ValueError, match="only applies to lognormal"):
        Dist(dist="exponential", mean=10, sd=3)
    with pytest.raises(ValueError):
        Dist(dist="fixed", mean=0)


# ---------------------------------------------------------------------------------------------- arrivals


def test_arrivals_are_poisson_within_their_hour(tiny: Path):
    # Callers who hang up at once (patience 0.5 s, nobody answers that fast): cheap calls.
    spec = tiny_scenario(arrivals={"09:00": 600, "10:00": 0, "11:00": 60},
                         patience={"dist": "fixed", "mean": 0.5})
    model = model_of(tiny, spec, "poisson.yaml")
    sim = DaySimulator(model)
    nine: list[int] = []
    eleven: list[int] = []
    for i in range(20):
        out = sim.run(i)
        hours = Counter(local(r.started_at).hour for r in out.records)
        assert set(hours) <= {9, 11} and sum(hours.values()) == out.arrivals
        nine.append(hours[9])
        eleven.append(hours[11])
    mean, var = statistics.fmean(nine), statistics.variance(nine)
    assert abs(mean - 600) < 3 * (600 / 20) ** 0.5
    assert 0.3 < var / 600 < 2.5  # Poisson: variance = mean (regular spacing would give 0)
    assert abs(statistics.fmean(eleven) - 60) < 3 * (60 / 20) ** 0.5
    assert len(set(nine)) > 5  # replications differ


# ---------------------------------------------------------------------------------------------- 4. the CLI


def test_cli_on_the_sample_scenario_writes_csv_json_and_html(tmp_path: Path):
    c, j, h = tmp_path / "out.csv", tmp_path / "out.json", tmp_path / "out.html"
    r = cli("simulate-day", str(SAMPLE), "-n", "2", "--jobs", "1", "--no-progress",
            "--csv", str(c), "--json", str(j), "--html", str(h))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Queues" in out and "scheduling" in out and "By hour" in out and "2 replication(s), seed 7" in out
    rows = list(csv.DictReader(io.StringIO(c.read_text())))
    assert rows and list(rows[0]) == ["group", "key", "metric", "mean", "low", "high", "n"]
    assert {"all", "queue", "hour_of_day", "agent"} <= {row["group"] for row in rows}
    assert any(row["group"] == "queue" and row["key"] == "scheduling" and row["metric"] == "service_level"
               for row in rows)
    data = json.loads(j.read_text())
    sl = data["overall"]["service_level"]
    assert 0 < sl["mean"] < 1 and sl["n"] == 2 and sl["low"] <= sl["mean"] <= sl["high"]
    assert data["replications"] == 2 and data["seed"] == 7
    html = h.read_text()
    assert "chart-sl-by-hour" in html
    for text in (out, c.read_text(), j.read_text(), html):
        assert CALLER_NUMBER not in text and "5555550100" not in text


def test_cli_format_json_and_seed(tiny: Path):
    scen = write(tiny, busy_tiny(), "cli.yaml")
    r = cli("simulate-day", str(scen), "-n", "2", "--jobs", "1", "--no-progress", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["seed"] == 5 and data["replications"] == 2 and data["overall"]["calls"]["mean"] > 0
    again = json.loads(cli("simulate-day", str(scen), "-n", "2", "--jobs", "1", "--no-progress",
                           "--format", "json").stdout)
    assert again["overall"] == data["overall"]
    other = cli("simulate-day", str(scen), "-n", "2", "--jobs", "1", "--no-progress", "--format", "json",
                "--seed", "99")
    assert other.exit_code == 0
    od = json.loads(other.stdout)
    assert od["seed"] == 99 and od["overall"]["calls"] != data["overall"]["calls"]


def test_cli_format_csv_prints_the_rows(tiny: Path):
    scen = write(tiny, busy_tiny(), "cli-csv.yaml")
    r = cli("simulate-day", str(scen), "-n", "1", "--jobs", "1", "--no-progress", "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows[0]["group"] == "all" and {row["metric"] for row in rows} >= {"service_level", "asa", "occupancy"}


def test_cli_unknown_format_exits_2(tiny: Path):
    scen = write(tiny, busy_tiny(), "cli-xml.yaml")
    r = cli("simulate-day", str(scen), "-n", "1", "--jobs", "1", "--no-progress", "--format", "xml")
    assert r.exit_code == 2 and "xml" in r.stderr


def test_daylight_saving_days_say_what_happened_to_the_missing_or_doubled_hour(tmp_path: Path):
    """2026-03-08 has no 02:00 in New York, 2026-11-01 has two 01:00s: the calls are skipped or spread, with a note."""
    spring = model_of(tmp_path, clinic_scenario(date="2026-03-08", arrivals={"02:00": 60, "09:00": 10}), "spring.yaml")
    assert any("02:00 does not exist" in n and "60 calls are not simulated" in n for n in spring.notes)
    out = DaySimulator(spring).run(0)
    assert all(local(r.started_at).hour >= 9 for r in out.records)
    autumn = model_of(tmp_path, clinic_scenario(date="2026-11-01", arrivals={"01:00": 60}), "autumn.yaml")
    assert any("01:00 lasts 2 h" in n for n in autumn.notes)
    starts = [r.started_at for r in DaySimulator(autumn).run(0).records]
    assert max(starts) - min(starts) > timedelta(minutes=75)  # spread over both 01:00 hours
    summary = summarize_day(autumn, run_replications(autumn, 1))
    assert any("lasts 2 h" in n for n in summary.notes)


def test_a_simulated_day_stored_like_live_traffic_gives_the_same_kpis_from_ivr_report(
        clinic_day: tuple[DayModel, DayOutcome], tmp_path: Path):
    """Simulated and live numbers are comparable: the day's call records and agent state changes, written
    to a real SQLite store as the live adapters write them, read back by `ivr report` over the day, give
    the KPIs simulate-day computed for that replication. (The router's queue events are not written:
    they only refine the wait of calls that left a queue other than by answer or hang-up.)"""
    import asyncio

    from agents.state import AgentState, Status
    from routing.model import AgentChanged
    from routing.store import Store

    model, out = clinic_day
    db = tmp_path / "day.db"

    async def store_day() -> None:
        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            for r in out.records:
                await store.record_call(r)
            await store.apply([AgentChanged(AgentState(e.agent_id, Status(e.to_status), e.at,
                                                       "other" if e.to_status == "not_ready" else None, e.call_id),
                                            e.from_status, "simulated") for e in out.agent_events])
        finally:
            await store.close()

    asyncio.run(store_day())
    r = cli("report", "--db", str(db), "--from", "2026-11-23", "--to", "2026-11-24", "--tz", "America/New_York",
            "--queues", str(QUEUES), "--format", "json")
    assert r.exit_code == 0, r.output
    live = next(row for row in json.loads(r.stdout)["rows"] if row["group"] == "all")
    sim = replicate(model, 0).report.overall
    for kpi in ("calls", "offered", "answered", "abandoned", "service_level", "service_level_strict", "asa",
                "abandonment_rate", "aht", "avg_wrap_up", "containment_rate", "transfers", "callbacks", "time_to_person_avg",
                "busy_seconds", "staffed_seconds", "occupancy"):
        assert live[kpi] == pytest.approx(getattr(sim, kpi)), kpi
    assert live["calls"] > 1000 and 0 < live["occupancy"] < 1
