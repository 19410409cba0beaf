# Tapestry. Quick start: `make demo` (generate a demo population, run the pipeline) and `make test`.
SHELL := /bin/bash
UV_VERSION := 0.13.8
PERSONS ?= 2000
SEED ?= 42
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export DAGSTER_DISABLE_TELEMETRY := 1

# uv from PATH, else the pip-installed module (installed on first use).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help install demo test test-all ui bench clean-home

help:
	@echo "make demo      generate $(PERSONS) synthetic persons and run the whole pipeline (embedded lakehouse)"
	@echo "make test      run the test suite (fast; slow tests: make test-all)"
	@echo "make ui        start the Dagster UI on http://127.0.0.1:3000"
	@echo "make bench     run the benchmarks (writes bench/results/)"

install:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet --compile-bytecode  # .pyc once: where PYTHONDONTWRITEBYTECODE is set, every process would compile its imports
	@$(UV) run python -m orchestration.dbt_project prepare >/dev/null  # dbt manifest for Dagster (dbt parse)

demo: install
	$(UV) run tapestry synth --persons $(PERSONS) --seed $(SEED) --force
	$(UV) run tapestry run

test: install
	$(UV) run pytest

test-all: install
	$(UV) run pytest -m "slow or not slow"

ui: install
	$(UV) run tapestry ui

bench: install
	$(UV) run python bench/bench_synth.py --persons 100000

clean-home:
	rm -rf .tapestry
