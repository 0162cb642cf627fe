"""The benchmarks still run (tiny sizes; no timing is asserted: these machines are too noisy for that)."""

from benchmarks.bench_calls import JOURNEYS, main, record_events
from ivr.tree import load_tree
from tests.conftest import ROOT


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
