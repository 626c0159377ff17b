# The two commands a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# Django 6 needs Python 3.12 or newer: take the first one this machine has.
BOOTSTRAP_PYTHON ?= $(shell for p in python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)

.PHONY: install demo test test-suite lint coverage mutation bench serve worker beat clean screenshots

$(STAMP): pyproject.toml
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "Python 3.12 or newer is needed (Django 6)." >&2; exit 1; }
	@test -x $(PY) || $(BOOTSTRAP_PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# axe-core for the browser tests' accessibility checks, pinned by tests/e2e/package-lock.json.
AXE := tests/e2e/node_modules/axe-core/axe.min.js
$(AXE): tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --no-audit --no-fund
	@touch $(AXE)

demo: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@# 60 patients (about 150 studies): enough for the export's progress to be seen, still a
	@# start-up well under a minute.
	$(PY) manage.py demo --patients 60
	$(PY) manage.py demo_exports
	@echo "Serving the demo on http://127.0.0.1:8000 (Ctrl-C stops it)"
	@# Long jobs (the export) go to a worker beside the web process, so their pages show
	@# progress while they run; the worker stops with the server.
	CONSENTRY_TASKS_INLINE=false $(PY) manage.py embedded_worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	CONSENTRY_TASKS_INLINE=false $(PY) manage.py runserver 127.0.0.1:8000

# Identifier keys for a PostgreSQL test run only (production mode refuses to start without
# them); never use these anywhere else.
TEST_IDENTIFIER_KEY := Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE=
TEST_BLIND_INDEX_KEY := consentry-test-only-blind-index-key-not-for-production

# Tests run against whatever DATABASE_URL / REDIS_URL say (none: embedded SQLite, inline
# Celery). The defaults below only make a PostgreSQL run possible without a real secret.
# Branch coverage is measured on every run into var/coverage/$(COVERAGE_RUN).*; `make
# coverage` combines whatever runs are there, prints them and enforces the floors.
COVERAGE_RUN ?= local
test: install $(AXE) lint
	@$(MAKE) --no-print-directory test-suite

# The suite alone, without test's prerequisites: .ci/run makes those once, then runs the
# suite on both backends side by side.
test-suite:
	@mkdir -p var/coverage && rm -f var/coverage/$(COVERAGE_RUN).*
	SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key} SECURE_SSL_REDIRECT=$${SECURE_SSL_REDIRECT:-false} \
		CONSENTRY_IDENTIFIER_KEYS=$${CONSENTRY_IDENTIFIER_KEYS:-$(TEST_IDENTIFIER_KEY)} \
		CONSENTRY_BLIND_INDEX_KEY=$${CONSENTRY_BLIND_INDEX_KEY:-$(TEST_BLIND_INDEX_KEY)} \
		COVERAGE_FILE=var/coverage/$(COVERAGE_RUN) $(PY) -m coverage run -m pytest $(PYTEST_ARGS)

coverage: install
	$(PY) .ci/coverage_floors.py

# Mutation testing of the core (mutmut; docs/mutation.md): slow, never part of `make test`.
mutation: install
	$(PY) .ci/mutation.py $(MUTATION_ARGS)

# The browser tests write their screenshots to var/screenshots/ (ignored); this refreshes the
# README's images in docs/screenshots/ on purpose.
screenshots: install $(AXE)
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key} \
		SECURE_SSL_REDIRECT=$${SECURE_SSL_REDIRECT:-false} $(PY) -m pytest -q tests/e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The benchmarks need the bench extra (gunicorn); BENCH_ARGS picks some, e.g. "gate --scale 0.1".
bench: install
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m benchmarks $(BENCH_ARGS)

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=info --prefetch-multiplier=1

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=info

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache mutants
