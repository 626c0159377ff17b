# The two commands a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

# Django 6 needs Python 3.12 or newer: take the first one this machine has.
BOOTSTRAP_PYTHON ?= $(shell for p in python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3) $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)

.PHONY: install demo test lint bench serve worker beat clean screenshots

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
	$(PY) manage.py demo --patients 20
	$(PY) manage.py demo_exports
	@echo "Serving the demo on http://127.0.0.1:8000 (Ctrl-C stops it)"
	$(PY) manage.py runserver 127.0.0.1:8000

# Tests run against whatever DATABASE_URL / REDIS_URL say (none: embedded SQLite, inline
# Celery). The defaults below only make a PostgreSQL run possible without a real secret.
test: install $(AXE) lint
	SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key} SECURE_SSL_REDIRECT=$${SECURE_SSL_REDIRECT:-false} \
		$(PY) -m pytest $(PYTEST_ARGS)

# The browser tests write their screenshots to var/screenshots/ (ignored); this refreshes the
# README's images in docs/screenshots/ on purpose.
screenshots: install $(AXE)
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots SECRET_KEY=$${SECRET_KEY:-insecure-test-only-key} \
		SECURE_SSL_REDIRECT=$${SECURE_SSL_REDIRECT:-false} $(PY) -m pytest -q tests/e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

bench: install
	$(PY) -m benchmarks

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=info --prefetch-multiplier=1

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=info

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
