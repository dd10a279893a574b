# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create the virtualenv on first use. torch is pinned to the CPU build this kind of machine
# carries on disk (`pip install torch==2.13.0`); the package metadata itself accepts torch>=2.4.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.symflow-installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist): one per core by default; TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= auto

.PHONY: install test test-all lint demo demo-quick bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-all: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "" $(PYTEST_ARGS)

demo: install
	$(BIN)/symflow demo

demo-quick: install
	$(BIN)/symflow demo --quick -o demo-output-quick

bench: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache demo-output demo-output-quick build *.egg-info
