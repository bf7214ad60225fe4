# Two entry points for a fresh machine: `make demo` and `make test` (lint, types, then the default
# tests: what CI runs, with the slow wheel test after it, see .ci/run). Both create the virtual
# environment on first use; torch is pinned to 2.13.0 (the CPU wheel) through constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup demo test test-all test-wheel lint types bench clean

$(BIN)/metadl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/metadl

demo: setup
	$(BIN)/metadl demo

test: lint types
	$(BIN)/python -m pytest -q

# The wheel installed with its dependencies from constraints.txt into a fresh environment (about a minute).
test-wheel: setup
	$(BIN)/python -m pytest -q -m slow tests/integration/test_wheel.py

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

# The reproduction table at 5 iterations per cell (minutes); drop QUICK for the full budget (days).
DATA  ?= ../shared/data
QUICK ?= --quick
bench: setup
	$(BIN)/metadl bench $(QUICK) --data-root $(DATA)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

types: setup
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
