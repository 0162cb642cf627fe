.PHONY: install run test bench
install:
	python3 -m pip install -e '.[test]'
run: install
	ivr serve
test: install
	python3 -m pytest
bench: install
	python3 -m benchmarks.bench_calls
	python3 -m benchmarks.bench_store
	python3 -m benchmarks.bench_routing
	python3 -m benchmarks.bench_asterisk
	python3 -m benchmarks.bench_twilio
	python3 -m benchmarks.bench_daysim
