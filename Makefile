# Every target sets up .venv first (Python 3.11+), so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: setup demo test test-fast bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## make demo: sandboxes + engine + a burst of 2,000 signed webhooks, then a summary (ARGS=--keep leaves it serving)
demo: $(STAMP)
	$(BIN)/ledgerlink demo $(ARGS)

## make test: lint, architecture contracts, then the whole suite (PostgreSQL tests skip with a reason if none answers)
test: lint
	$(BIN)/pytest -q $(ARGS)

## make bench: throughput and latency benchmarks (not tests; figures go in issue notes)
bench: $(STAMP)
	$(BIN)/python benchmarks/order_to_cash.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
