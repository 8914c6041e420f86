# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_ENV := DJANGO_DEBUG=1
PORT ?= 8000

.PHONY: install system-deps run test matrix lint format bench serve clean docs docs-screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[drf,dashboards,opentelemetry]" --group dev
	touch $(STAMP)

install: $(STAMP) .env

# Development settings for `manage.py` run by hand (with the virtual environment active);
# config/settings.py reads them. Written once: an existing .env is never overwritten.
.env:
	printf '%s\n' \
		'# Development settings, written by `make install` and read by config/settings.py.' \
		'# Never committed. Variables set in the environment win; production sets its own.' \
		'DJANGO_DEBUG=1' > $@

# Debian packages the integration tests use: Prometheus and promtool, Chromium for
# the documentation pages, curl for the walkthrough (docs/example-project.md), a private Redis server for
# the RQ task workers; wrk drives the end-to-end benchmark; nginx fronts `make serve`;
# iproute2 (`ip netns`) builds the hosts of tests/multihost. Installed only when one is missing.
SYSTEM_PACKAGES := prometheus chromium wrk nginx curl redis-server iproute2
system-deps:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); }

# The task worker (after-commit steps: emails, analytics) and the relay run beside the
# server; Ctrl-C (or the server exiting) stops all three.
run: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --no-input
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	@$(DEV_ENV) sh -c '$(BIN)/python manage.py db_worker --interval 0.5 --no-reload & worker=$$!; \
	  $(BIN)/python manage.py relay_queued_steps --every 30 & relay=$$!; \
	  trap "kill $$worker $$relay 2>/dev/null; wait $$worker $$relay" EXIT INT TERM; \
	  $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)'

# Production-shaped: nginx on PORT (default 8000) buffering clients and serving the
# collected static files, in front of gunicorn with several workers (WEB_CONCURRENCY)
# on a unix socket; DEBUG off, so DJANGO_SECRET_KEY (and DJANGO_ALLOWED_HOSTS) must
# come from the environment, never from the development .env. See config/serve.py.
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus-multiproc
serve: export DJANGO_ENV_FILE :=
serve: install system-deps
	mkdir -p $(PROMETHEUS_MULTIPROC_DIR)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py collectstatic --no-input --verbosity 0
	PROMETHEUS_MULTIPROC_DIR=$(PROMETHEUS_MULTIPROC_DIR) $(BIN)/python -m config.serve

test: install
	$(BIN)/python -m pytest

# The documentation (docs/, mkdocs.yml) at http://127.0.0.1:$(DOCS_PORT), rebuilt on every edit.
# CI builds it with --strict: a broken link, anchor or image fails the build.
DOCS_PORT ?= 8001
docs: install
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# The documentation's screenshots (docs/images/*.png, 1400 px wide), retaken from the example
# project in headless Chromium: a temporary SQLite database with the demo data and a few runs
# (a declined card among them). tests/browser/screenshots.py --width 1000 --output DIR for others.
docs-screenshots: install system-deps
	$(BIN)/python -m tests.browser.screenshots

# The supported matrix, in environments of their own under .nox/ (noxfile.py; pyenv's Pythons
# are found too): Django 5.2 LTS on Python 3.11-3.13, Django 6.0 and 6.1 on 3.12-3.13.
# NOX_ARGS picks sessions: --tags django6, --tags ci, --python 3.13
matrix: install
	PYENV_VERSION="$$(pyenv versions --bare 2>/dev/null | tr '\n' ':')$${PYENV_VERSION:-}" \
		$(BIN)/nox $(NOX_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(DEV_ENV) $(BIN)/mypy

# Formats even when some lint errors cannot be fixed automatically, then fails on those.
format: install
	$(BIN)/ruff check --fix-only .
	$(BIN)/ruff format .
	$(BIN)/ruff check .

# Engine overhead and memory run on DATABASE_URL (SQLite by default); the
# end-to-end run needs the local PostgreSQL (BENCH_DATABASE_URL names a bench_* database).
# BENCH_E2E_REPETITIONS, _ROUNDS, _SECONDS and _EXTRAS shape it (README, "Benchmarks").
bench: install system-deps
	$(BIN)/python -m pip install --quiet -e ".[drf,dashboards,opentelemetry]" --group dev --group bench
	$(BIN)/python -m pytest tests/bench -m bench -s -p no:cacheprovider

clean:
	rm -rf $(VENV) .nox dist db.sqlite3 var .pytest_cache .ruff_cache
