# datahub: `make demo` runs the whole platform on local defaults, `make test` runs the tests.
# Both install what is missing (venv, Mosquitto, a local TimescaleDB, PostgreSQL 15) and are
# idempotent. Set DATAHUB_DATABASE_URL / DATAHUB_BROKER_URL to use existing services instead.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DATAHUB_STATE_DIR ?= /var/lib/datahub-local
export DATAHUB_TSDB_PORT ?= 55432
export DATAHUB_PG_PORT ?= 55433
export DATAHUB_MQTT_PORT ?= 18830

# Local services, unless settings point at existing ones.
DB_SERVICES := $(if $(DATAHUB_DATABASE_URL),,timescaledb)
BROKER_SERVICES := $(if $(DATAHUB_BROKER_URL),,mosquitto)
TEST_SERVICES := $(DB_SERVICES) $(BROKER_SERVICES) $(if $(DATAHUB_TEST_PG_URL),,postgres)

export DATAHUB_TEST_TSDB_URL ?= $(or $(DATAHUB_DATABASE_URL),postgresql://datahub@127.0.0.1:$(DATAHUB_TSDB_PORT)/datahub)
export DATAHUB_TEST_PG_URL ?= postgresql://datahub@127.0.0.1:$(DATAHUB_PG_PORT)/datahub
export DATAHUB_TEST_BROKER_URL ?= $(or $(DATAHUB_BROKER_URL),mqtt://127.0.0.1:$(DATAHUB_MQTT_PORT))

.PHONY: help venv web services services-replica stop-services demo test test-unit check lint format types bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: $(VENV)/.installed web ## create the virtualenv, install datahub with its dev tools, build the dashboard

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The dashboard's front end (web/): npm installs the versions pinned in web/package-lock.json,
# esbuild bundles them into the package's static files. Each step runs only when its inputs
# changed; nothing is fetched at run time.
WEB_STATIC := src/datahub/api/static

web: $(WEB_STATIC)/.built ## bundle the dashboard (web/) into src/datahub/api/static

$(WEB_STATIC)/.built: web/node_modules/.package-lock.json web/build.mjs $(wildcard web/src/*)
	@cd web && node build.mjs
	@touch $@

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	@command -v npm >/dev/null || bash deploy/provision.sh nodejs
	@cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The deployment tests (tests/deploy) start private TimescaleDB servers in the trixie root
# and a PgBouncer of their own, and check deploy/systemd with systemd-analyze.
services: ## install and start the local services the tests need (and Chromium for the browser tests)
	@bash deploy/provision.sh $(TEST_SERVICES) replica chromium pgbouncer systemd
	@bash deploy/services.sh start $(TEST_SERVICES)

services-replica: ## start TimescaleDB with a streaming replica and PgBouncer (docs/deployment.md)
	@bash deploy/provision.sh timescaledb pgbouncer
	@bash deploy/services.sh start timescaledb replica pgbouncer

stop-services: ## stop the local services
	@bash deploy/services.sh stop

demo: venv ## run broker, database, ingest, API and simulator on local defaults (Ctrl-C stops)
	@bash deploy/demo.sh

test: venv services ## run the test suite against the real local services
	@$(BIN)/pytest

# The tests without the `services` marker (tests/conftest.py), in seconds and without any
# service. The service URLs point at a port nothing listens on, so a test that reaches a
# service without carrying the marker fails here instead of passing by luck.
CLOSED := 127.0.0.1:9
test-unit: venv ## run the tests that need no service (no database, broker or browser)
	@DATAHUB_TEST_TSDB_URL=postgresql://datahub@$(CLOSED)/datahub \
	 DATAHUB_TEST_PG_URL=postgresql://datahub@$(CLOSED)/datahub \
	 DATAHUB_TEST_BROKER_URL=mqtt://$(CLOSED) \
	 DATAHUB_DATABASE_URL=postgresql://datahub@$(CLOSED)/datahub \
	 DATAHUB_BROKER_URL=mqtt://$(CLOSED) \
	 $(BIN)/pytest -m "not services" -p no:cacheprovider

check: lint types test ## format check, lint, types and tests (what CI runs: .ci/run)

# web/ is linted and formatted by Biome (web/biome.json), installed from web/package-lock.json.
BIOME := node_modules/.bin/biome

lint: venv ## lint and format check: ruff for Python, Biome for web/
	@$(BIN)/ruff check src decoders simulators tests migrations
	@$(BIN)/ruff format --check src decoders simulators tests migrations
	@cd web && $(BIOME) ci --error-on-warnings --colors=off .

format: venv ## reformat the code: ruff for Python, Biome for web/
	@$(BIN)/ruff format src decoders simulators tests migrations
	@$(BIN)/ruff check --fix src decoders simulators tests migrations
	@cd web && $(BIOME) check --write .

types: venv ## mypy
	@$(BIN)/mypy src decoders simulators

BENCH_RESULTS := bench/results

bench: venv services $(VENV)/.bench-installed ## benchmark ingest and queries against ceilings (docs/performance.md)
	@mkdir -p $(BENCH_RESULTS)
	@$(BIN)/datahub bench ingest --json --out $(BENCH_RESULTS)/ingest.json
	@$(BIN)/datahub bench query --json --out $(BENCH_RESULTS)/query.json
	@$(BIN)/datahub bench api --json --out $(BENCH_RESULTS)/api.json
	@$(BIN)/datahub bench scale --json --out $(BENCH_RESULTS)/scale.json
	@$(BIN)/datahub bench plot --ingest $(BENCH_RESULTS)/ingest.json \
		--query $(BENCH_RESULTS)/query.json --out $(BENCH_RESULTS)/bench.png

$(VENV)/.bench-installed: $(VENV)/.installed
	@$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $@

clean: ## remove the virtualenv and caches (keeps the local databases)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache web/node_modules $(WEB_STATIC)
