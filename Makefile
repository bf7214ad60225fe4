# Two entry points for a fresh machine: `make demo` and `make test`. Both create the virtual
# environment on first use; torch is pinned to 2.13.0 (the CPU wheel) through constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# glibc malloc otherwise releases and re-faults large buffers every iteration (see docs/benchmarks.md).
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 17179869184
export MALLOC_TOP_PAD_ ?= 1073741824

.PHONY: setup demo test test-all lint bench clean

$(BIN)/metadl: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(BIN)/metadl

demo: setup
	$(BIN)/metadl demo

test: setup
	$(BIN)/python -m pytest -q

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

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
