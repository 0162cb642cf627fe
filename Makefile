.PHONY: install run test bench
install:
	python3 -m pip install -e '.[test]'
run: install
	ivr simulate calltrees/clinic-main.yaml --agents agents.yaml --at "2026-11-23 09:30" --keys "1 1 5"
test: install
	python3 -m pytest
bench: install
	python3 -m benchmarks.bench_calls
	python3 -m benchmarks.bench_store
	python3 -m benchmarks.bench_routing
