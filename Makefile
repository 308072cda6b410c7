# Frontdesk: `make run` to try it, `make test` to check it, `make bench` to measure it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint unit integration e2e bench chaos system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

# Debian packages the tests use: docker-compose (to check docker-compose.yml) and chromium (browser tests).
system-deps:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  command -v docker-compose >/dev/null || (command -v docker >/dev/null && docker compose version >/dev/null 2>&1) || missing="$$missing docker-compose"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root or no apt-get: install docker-compose and chromium yourself (compose check, browser tests)"; fi

run: $(STAMP)
	$(BIN)/frontdesk run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP) system-deps
	$(BIN)/pytest tests/e2e -q

test: $(STAMP) system-deps lint
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m bench

# The fault suite at full length (workers killed, Redis and PostgreSQL restarted, provider timeouts and a 429 flood,
# a 1,000-request booking race) on a PostgreSQL and Redis of its own; ends with the table of figures.
# `make test` runs the same scenarios briefly (FRONTDESK_CHAOS=short, the default).
chaos: $(STAMP)
	FRONTDESK_CHAOS=full $(BIN)/pytest tests/chaos -q -p no:cacheprovider -o timeout=3600

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
