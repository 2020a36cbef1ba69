# The two commands of the README:
#   make run    the demo city on embedded defaults (http://127.0.0.1:8050)
#   make test   the test suite, against real Mosquitto, Redis, PostgreSQL and chromium
# and: make bench [BENCH_ARGS=--full]   the benches of docs/benchmarks.md (bench/run_all.py)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: run test venv services bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) app.py

services:
	bash scripts/ensure-services.sh

# Two workers (pytest-xdist): a module runs whole in one, the app's own start-ups in
# one after another (tests/conftest.py). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2

test: $(STAMP) services
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=25 $(PYTEST_ARGS)

bench: $(STAMP) services
	$(PY) bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf var .pytest_cache
