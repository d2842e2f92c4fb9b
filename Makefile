# Two commands set everything up on a new machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: run test test-fast lint validate list bench clean

# Re-install whenever the package metadata changes.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/scheduler run

validate: $(STAMP)
	$(BIN)/scheduler validate

list: $(STAMP)
	$(BIN)/scheduler list

test: $(STAMP)
	$(BIN)/python -m pytest

# The quick loop: unit tests only, no processes, no waiting on real time.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration" -q

lint: $(STAMP)
	$(BIN)/ruff check tickless scheduler catalog tests bench
	$(BIN)/mypy

# Benchmarks (not run by CI): prints tables, writes bench/results/*.json. aiohttp is the
# asyncio limit line's client, installed here for the bench only (never a product dependency).
bench: $(STAMP)
	$(BIN)/python -c "import aiohttp" 2>/dev/null || $(BIN)/python -m pip install --quiet aiohttp
	$(BIN)/python -m bench.run_all

# Every harness at tiny sizes (under a minute, writes nothing) with its self-checks;
# `make test` runs the same through tests/bench, so a broken harness fails CI.
.PHONY: bench-smoke
bench-smoke: $(STAMP)
	$(BIN)/python -m bench.run_all --smoke

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
