"""The benchmarks still run (tiny sizes; no timing is asserted: these machines are too noisy for that)."""

from benchmarks.bench_calls import JOURNEYS, main, record_events
from ivr.tree import load_tree
from conftest import ROOT


def test_call_benchmark_runs_and_every_journey_ends(capsys):
    results = main(["--calls", "20", "--rounds", "1"])
    assert set(results) >= {"baseline", "interpreter", "simulator"} and all(v > 0 for v in results.values())
    assert "pure interpreter" in capsys.readouterr().out
    streams = record_events(load_tree(ROOT / "calltrees" / "clinic-main.yaml"))
    assert len(streams) == len(JOURNEYS) and all(evs for _, evs in streams)


def test_routing_benchmark_runs_and_prints_both_matchers(capsys):
    from benchmarks.bench_routing import main as routing_main

    res = routing_main(["--agents", "60", "--waiting", "40", "--decisions", "200", "--queues", "10"])
    assert res["router_per_s"] > 0 and res["naive_per_s"] > 0 and res["router_p99_us"] >= res["router_p50_us"]
    assert "indexed router" in capsys.readouterr().out


def test_asterisk_benchmark_runs_with_no_event_lost(capsys):
    from benchmarks.bench_asterisk import main as asterisk_main

    res = asterisk_main(["--calls", "12"])
    assert res["lost"] == 0 and res["records"] == 12 and res["waiting_left"] == 0
    assert res["p99_ms"] >= res["p50_ms"] > 0 and res["base_p50_ms"] > 0
    assert "event -> commands done" in capsys.readouterr().out


def test_twilio_benchmark_runs_every_call_to_its_end(capsys):
    from benchmarks.bench_twilio import main as twilio_main

    res = twilio_main(["--calls", "5"])
    assert res["records"] == 5 and res["errors"] == 0 and res["webhooks"] >= 5 * 5
    assert res["p99_ms"] >= res["p50_ms"] > 0 and "engine webhook handling" in capsys.readouterr().out


def test_day_simulator_benchmark_runs_both_measurements(capsys):
    from benchmarks.bench_daysim import main as daysim_main

    res = daysim_main(["--quick", "--runs", "1"])
    assert res["calls"] > 500 and res["day_seconds"] >= res["simulate_seconds"] > 0
    assert all(res[f"{n}_calls_per_s"] > 0 for n in ("day_simulator", "simpy", "ciw"))
    out = capsys.readouterr().out
    assert "x SimPy" in out and "target < 10 s" in out
