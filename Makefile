.PHONY: install run test bench
install:
	python3 -m pip install -e '.[test]'
run: install
	ivr simulate calltrees/clinic-main.yaml --at "2026-11-23 09:30" --keys "2 04121980#"
test: install
	python3 -m pytest
bench: install
	python3 -m benchmarks.bench_calls
	python3 -m benchmarks.bench_store
	python3 -m benchmarks.bench_routing
