# Litesubs: `make run` (development), `make serve PORT=8000` (production build), `make test`, `make bench`.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
PORT ?= 8000
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export REFLEX_USE_NPM := 1
export REFLEX_TELEMETRY_ENABLED := false

.PHONY: run dev serve test lint format bench migrate

$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip

# Reinstall only when requirements.txt changed.
.deps-installed: requirements.txt | $(PYTHON)
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $@

migrate: .deps-installed
	$(PYTHON) -m litesubs migrate

# The app on one port, as users run it: pages, websocket, /api/v1, webhook and exports together, and the
# background worker. Webhook endpoints on localhost (http://localhost:8080/...) are allowed for trying them out.
run: migrate
	@echo "Litesubs: http://localhost:3000  (fill it with demo data: $(PYTHON) -m litesubs demo)"
	LITESUBS_ALLOW_HTTP_WEBHOOKS=$${LITESUBS_ALLOW_HTTP_WEBHOOKS:-1} $(MAKE) --no-print-directory serve PORT=3000

# Hot reload while working on the UI: pages on :3000, the backend (and so /api/...) on :8000.
dev: migrate
	$(VENV)/bin/reflex run

# Each port builds its frontend in its own directory, so several `make serve` may run at once.
serve: migrate
	LITESUBS_BASE_URL=$${LITESUBS_BASE_URL:-http://localhost:$(PORT)} \
	REFLEX_WEB_WORKDIR=.web-$(PORT) REFLEX_STATES_WORKDIR=.states-$(PORT) \
		$(VENV)/bin/reflex run --env prod --single-port --frontend-port $(PORT)

lint: .deps-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: .deps-installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(VENV)/bin/pytest

# On PostgreSQL (BENCH_DATABASE_URL, default the local server) with Redis; needs wrk and pgbench.
bench: .deps-installed
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	$(PYTHON) -m bench
