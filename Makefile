# cti-hub: `make run` starts a demo hub; `make test` runs the whole suite on SQLite and PostgreSQL.
VENV ?= .venv
PY := $(VENV)/bin/python
HUB := $(VENV)/bin/cti-hub
PYTEST_ARGS ?=
# pytest-xdist workers for every test target (one per core on the 2-core machines the suite is timed on)
PYTEST_JOBS ?= 2

.PHONY: help install lock lock-upgrade run test test-fast test-sqlite test-postgres lint bench bench-quick clean fuzz soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# uv.lock pins every package (with hashes) the hub, its [misp] extra and its test tools install; the
# virtualenv gets exactly those versions, then the hub itself (editable) without resolving anything again.
UV := $(VENV)/bin/uv
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)

$(VENV)/.installed: pyproject.toml uv.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'uv==$(UV_VERSION)'
	$(UV) export --locked --quiet --extra misp --extra test --no-emit-project --output-file $(VENV)/requirements.txt \
		|| { echo "uv.lock is out of step with pyproject.toml: run make lock" >&2; exit 1; }
	$(UV) pip install --quiet --python $(PY) --compile-bytecode --require-hashes -r $(VENV)/requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

install: $(VENV)/.installed ## Create the virtualenv and install the locked versions (uv.lock) of the hub, [misp] and the test tools

$(UV):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q 'uv==$(UV_VERSION)'

lock: $(UV) ## Refresh uv.lock after editing the dependencies in pyproject.toml (keeps the other pins)
	$(UV) lock

lock-upgrade: $(UV) ## Move every pin in uv.lock to the newest release pyproject.toml allows
	$(UV) lock --upgrade

run: install ## Install, set up the demo (SQLite under ./var) and serve on http://127.0.0.1:8000
	$(HUB) demo
	$(HUB) serve --host 127.0.0.1 --port 8000

test: install ## Run the whole suite on SQLite, then on PostgreSQL
	$(MAKE) test-sqlite test-postgres

test-fast: install ## Everything not marked slow, on SQLite (under 3 minutes); add PYTEST_ARGS=--db=postgres for PostgreSQL
	$(PY) -m pytest -q -n $(PYTEST_JOBS) -m "not slow" $(PYTEST_ARGS)

test-sqlite: install ## The suite on SQLite only
	$(PY) -m pytest -q -n $(PYTEST_JOBS) $(PYTEST_ARGS)

test-postgres: install ## The suite on PostgreSQL only (HUB_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/test)
	$(PY) -m pytest -q -n $(PYTEST_JOBS) --db=postgres $(PYTEST_ARGS)

lint: install ## ruff (lint and format) on the code and tests, mypy on hub/ and feeds/
	$(PY) -m ruff check hub feeds tests bench
	$(PY) -m ruff format --check hub feeds tests bench
	$(PY) -m mypy

BENCH_POSTGRES ?= postgresql://postgres@127.0.0.1:5432/bench

bench: install ## The goals at 10,000 and 1,000,000 versions on SQLite, then on PostgreSQL (BENCH_POSTGRES; its schema is replaced), with medallion and OpenTAXII beside, then the restriction-set flood and the panel's search
	$(PY) -m pip install -q matplotlib
	$(PY) bench/run.py
	$(PY) bench/run.py --db '$(BENCH_POSTGRES)' --peers ''
	$(PY) bench/ledger.py
	$(PY) bench/ledger.py --db '$(BENCH_POSTGRES)'
	$(PY) bench/restriction_sets.py
	$(PY) bench/restriction_sets.py --db '$(BENCH_POSTGRES)'
	$(PY) bench/panel_search.py
	$(PY) bench/panel_search.py --db '$(BENCH_POSTGRES)'

bench-quick: install ## A one-minute benchmark check
	$(PY) bench/run.py --quick

fuzz: install ## Long fuzzing runs: STIX validation (also against stix2-validator), patterns, next tokens (FUZZ_EXAMPLES), schemathesis on every operation (FUZZ_SECONDS) and on the feeds and probes (FUZZ_HTTP_EXAMPLES per operation)
	HUB_TEST_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),20000) $(PY) -m pytest -q tests/test_fuzz.py tests/test_stix_differential.py $(PYTEST_ARGS)
	HUB_TEST_SCHEMATHESIS_SECONDS=$(or $(FUZZ_SECONDS),600) HUB_TEST_SCHEMATHESIS_EXAMPLES=$(or $(FUZZ_HTTP_EXAMPLES),500) \
		$(PY) -m pytest -q tests/test_openapi.py tests/test_openapi_live.py -k schemathesis $(PYTEST_ARGS)

soak: install ## Soak test: 50 mixed clients against gunicorn for SOAK_SECONDS (300); SOAK_DATABASE_URL: an empty database
	HUB_TEST_SOAK_SECONDS=$(or $(SOAK_SECONDS),300) $(PY) -m tests.soak $(if $(SOAK_DATABASE_URL),--database-url '$(SOAK_DATABASE_URL)')

clean: ## Remove the virtualenv and the demo database
	rm -rf $(VENV) var
