# Two commands do everything on a fresh machine with Python 3.11:
#   make run    build the product on the committed sample and print a summary
#   make test   lint everything and run every test (what CI runs)
# Both create .venv and install the pinned dependencies first, and only reinstall
# when requirements.txt or pyproject.toml change.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DBT := $(BIN)/dbt
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

# dbt reads profiles.yml from the project directory; make that explicit.
export DBT_PROFILES_DIR := $(CURDIR)
# CI builds into its own database file so it never touches a developer's.
ifeq ($(CI),true)
export RETAIL_XSELL_TARGET ?= ci
endif

# The targets of run and test are steps in order (build, gate, publish, read), never
# independent jobs: `make -j2 run` must not publish what is still being built.
.NOTPARALLEL:

.PHONY: help venv run build summary clv test lint lint-python lint-types lint-sql dbt-test \
	pytest docs sample slo-schema clean clean-venv gate publish publications serve token \
	backtest daily

# The data contract tools (datacontract-cli, dataproduct-cli) in their own environment.
include make/contracts.mk

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PIP) install -r requirements.txt > $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@$(PIP) install --no-build-isolation --no-deps -e . >> $(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv with the pinned dependencies

build/:
	@mkdir -p build

# Consumers read the published copy, which only changes after a passing gate.
PUBLISHED := $(or $(RETAIL_XSELL_PUBLISHED_PATH),build/published/retail_xsell.duckdb)
WORKING := $(or $(RETAIL_XSELL_DUCKDB_PATH),$(if $(filter ci,$(RETAIL_XSELL_TARGET)),build/ci.duckdb,build/retail_xsell.duckdb))

# Your own data: make run VARS='{raw_input_format: parquet, raw_input_path: /data/raw}'
# (README, "Run on your own data"). A new data set at the same path: NEW_BASELINE="why".
VARS ?=
NEW_BASELINE ?=
DBT_VARS := $(if $(strip $(VARS)),--vars "$(VARS)",)
GATE_ARGS := $(if $(strip $(NEW_BASELINE)),--new-baseline "$(NEW_BASELINE)",)

run: build publish summary clv  ## build the sample (or VARS=...), gate and publish it, summarise it, answer a CLV query

# Into a fresh file swapped onto the working database, so it never grows (build.py).
build: $(STAMP) | build/  ## dbt build (seeds, models, tests) on the sample, or on VARS=...
	$(BIN)/retail-xsell build -- $(DBT_VARS)

# Only the purchase files that are new since the last build, when that gives what a full
# build would (as_of_date pinned in VARS); otherwise a full build, saying why
# (docs/daily_loads.md). Publish after it as after any build: make publish.
daily: $(STAMP) | build/  ## add the new purchase files of VARS=... (as_of_date pinned) to the last build
	$(BIN)/retail-xsell build --daily -- $(DBT_VARS)

backtest: $(STAMP)  ## the cross-sell backtest of the last build: a table, and JSON beside the database
	@$(BIN)/retail-xsell backtest --database $(WORKING)

summary: $(STAMP)  ## print what the publication holds (and the stewards' part from the working database)
	@$(BIN)/retail-xsell summary --database $(PUBLISHED) --working $(WORKING)

# Consumers' path: the `published` dbt target attaches the published file read-only.
clv: $(STAMP)  ## answer "what is a customer worth?" from the semantic layer on the published database
	@echo "Average customer lifetime value, overall and by region (mf query --metrics clv):"
	@RETAIL_XSELL_TARGET=published RETAIL_XSELL_PUBLISHED_PATH=$(PUBLISHED) \
		$(BIN)/mf query --metrics clv --decimals 2
	@RETAIL_XSELL_TARGET=published RETAIL_XSELL_PUBLISHED_PATH=$(PUBLISHED) $(BIN)/mf query \
		--metrics clv,historical_clv,predicted_clv --group-by customer__region \
		--order -clv --decimals 2

publications: $(STAMP)  ## list the kept publications (roll back: retail-xsell publications --rollback ID)
	@$(BIN)/retail-xsell publications --published $(PUBLISHED)

# The governed API over the current publication (docs/governance.md). Publish first
# (make run); a later publish is served without a restart. Tokens: make token WHO=erik.
PORT ?= 8000
WHO ?= maria
serve: $(STAMP)  ## run the governed REST + GraphQL API on 127.0.0.1:$$PORT (default 8000)
	@test -e $(PUBLISHED) || { echo "error: nothing published at $(PUBLISHED); run make run first" >&2; exit 1; }
	$(BIN)/retail-xsell serve --host 127.0.0.1 --port $(PORT) --published $(PUBLISHED)

token: $(STAMP)  ## print a development bearer token for WHO (a principal of policies.yml)
	@$(BIN)/retail-xsell token $(WHO)

test: lint dbt-test gate contracts-lint pytest  ## lint and run every test, the SLO gate and the contract lint on the sample (what CI runs)

lint: lint-python lint-types lint-sql  ## ruff, mypy and sqlfluff

lint-python: $(STAMP)
	$(BIN)/ruff check src scripts tests/python models
	$(BIN)/ruff format --check src scripts tests/python models

lint-types: $(STAMP)  ## mypy over the package and scripts ([tool.mypy] in pyproject.toml)
	$(BIN)/mypy

lint-sql: $(STAMP) | build/
	$(BIN)/sqlfluff lint models --disable-progress-bar --nocolor

dbt-test: $(STAMP) | build/  ## dbt build on the sample (models, data and unit tests), then MetricFlow's checks
	$(BIN)/retail-xsell build -- --fail-fast
	$(BIN)/mf validate-configs

# The gate measures freshness on the built data itself (on the committed sample, stale
# by design, it is a warning: docs/slos.md), with the vars the build had.
gate: $(STAMP) | build/  ## evaluate the SLOs in slos.yml on the last build; fails on a blocking breach
	$(BIN)/retail-xsell gate $(GATE_ARGS)

publish: gate  ## after a passing gate, atomically replace the published database
	$(BIN)/retail-xsell publish

pytest: $(STAMP) $(CONTRACTS_STAMP) | build/  ## Python tests (the contract tests use .venv-contracts)
	$(BIN)/pytest

docs: $(STAMP) | build/  ## generate the docs site and serve the catalogue on http://127.0.0.1:8080
	$(DBT) docs generate
	@# The data product manifest and contracts the overview page links to.
	@$(BIN)/retail-xsell contracts --out target/data-product --database $(PUBLISHED) \
		--parquet-dir $(dir $(PUBLISHED))current/parquet > /dev/null
	@# Serve a staged copy: the catalogue only, never target/compiled or run results.
	$(BIN)/python -m retail_xsell.docs_site --target target --out build/docs-site --port 8080

sample: $(STAMP)  ## regenerate the committed sample in seeds/ (byte for byte)
	$(BIN)/python scripts/generate_raw_data.py sample

slo-schema: $(STAMP)  ## regenerate docs/slos.schema.json from the SLO model (a test checks it)
	@$(BIN)/python -c "from retail_xsell.quality import write_json_schema; print(write_json_schema())"

clean:  ## remove build outputs (databases, publications, target/, logs/)
	rm -rf build/*.duckdb build/*.duckdb.wal build/slo build/published build/docs-site build/contracts target logs

clean-venv:  ## remove the virtual environments
	rm -rf $(VENV) $(CONTRACTS_VENV)
