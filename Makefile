# 逢办必查 check gateway. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv and install the package with its dev extra

.PHONY: run
run: venv ## Demo database (100,000 subjects) + demo key, print curl calls, serve on :8000
	$(PY) -m gateway demo --db var/demo.db --port $(PORT)

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: format
format: venv ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: tools
tools: ## Install what the tests run beside Python where missing (promtool, redis-server, PostgreSQL, chromium, chromedriver, wrk)
	@command -v promtool >/dev/null || { \
		echo "promtool is missing: installing Debian's package prometheus (apt-get)"; \
		apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus; }; \
		service prometheus stop >/dev/null 2>&1 || true; }
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
		echo "chromium is missing: installing Debian's chromium and chromium-driver (apt-get)"; \
		apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && \
		  apt-get install -y --no-install-recommends chromium chromium-driver; }; }
	@command -v redis-server >/dev/null || { \
		echo "redis-server is missing: installing Debian's package redis-server (apt-get)"; \
		apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends redis-server; }; \
		service redis-server stop >/dev/null 2>&1 || true; }
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || { \
		echo "PostgreSQL's server binaries are missing: installing Debian's postgresql (apt-get)"; \
		apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends postgresql; }; \
		service postgresql stop >/dev/null 2>&1 || true; }
	@command -v wrk >/dev/null || { \
		echo "wrk is missing: installing Debian's package wrk (apt-get)"; \
		apt-get install -y --no-install-recommends wrk >/dev/null 2>&1 || \
		{ apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk; }; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { \
		echo "no Chinese font for the console's screenshot: installing fonts-noto-cjk (apt-get)"; \
		apt-get install -y --no-install-recommends fonts-noto-cjk >/dev/null 2>&1 || true; }

.PHONY: test
test: venv tools lint ## Lint, then run the whole test suite
	$(PY) -m pytest

.PHONY: catalog-check
catalog-check: venv ## Validate the packaged measures catalog
	$(PY) -m gateway catalog check

.PHONY: bench-engine
bench-engine: venv ## Time decide() for subjects with 0, 1 and 5 hits
	$(PY) -m loadtest.bench_engine

.PHONY: bench
bench: venv ## Throughput as ratios to the floor and limit apps, paced p99, a batch, the scale profile (~5 min; ~20 the first time)
	$(PY) -m loadtest.bench $(BENCH_ARGS)

.PHONY: bench-pg
bench-pg: venv tools ## As bench, the gateway on a PostgreSQL server started for the run (durable)
	$(PY) -m loadtest.bench --store postgresql --no-scale $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: venv ## make bench's scale profile alone: 100,000 vs 10,000,000 entries (first run writes ~9 GB, ~15 min)
	$(PY) -m loadtest.bench_scale $(SCALE_ARGS)

.PHONY: bench-import
bench-import: venv ## Import 100,000 and 1,000,000 generated rows (default and bulk chunk): rows/s, RSS
	$(PY) -m loadtest.bench_import

.PHONY: bench-reports
bench-reports: venv ## Loop report over 10,000,000 generated checks: roll-up rate, report time (~5 min)
	$(PY) -m loadtest.bench_reports --checks 10000000 $(REPORTS_ARGS)

.PHONY: bench-redis
bench-redis: venv ## Cold start of a worker from Redis vs from the store, 1,000,000 entries (~3 min)
	$(PY) -m loadtest.bench_redis_start --entries $${ENTRIES:-1000000} --rounds 3

.PHONY: bench-checkpoint
bench-checkpoint: venv ## A log fsync's latency during SQLite's checkpoint vs the paced one (~1 min)
	$(PY) -m loadtest.bench_checkpoint --mib 256 --rounds 2

.PHONY: loadtest
loadtest: venv ## Locust: approval, procurement and ops callers against a fresh gateway (headless, ~40 s)
	$(PY) -m loadtest.run_locust $(LOADTEST_ARGS)

.PHONY: clean
clean: ## Remove the virtualenv, caches and var/
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info
