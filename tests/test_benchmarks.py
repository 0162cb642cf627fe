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
