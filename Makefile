# HeroCtl — `make dev` runs a single-node cluster, `make test` runs the suite.
# Everything the tests need is installed here when missing (fresh Debian/Ubuntu).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := iptables busybox-static docker.io nginx libnginx-mod-stream pebble docker-registry apache2-utils

.PHONY: install dev test test-fast bench lint fmt system-deps browser-deps ui clean

# The web panel (ui/): built with the npm packages of ui/package-lock.json into
# ui/dist/, which heroctld serves at /ui/ (api/ui.py). Rebuilt only when its
# sources or the lock file change; without npm the daemon runs and /ui/ answers 503.
UI_STAMP := ui/dist/.build-stamp
UI_SOURCES := ui/package.json ui/package-lock.json ui/index.html ui/vite.config.js $(shell find ui/src -type f 2>/dev/null)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || { apt-get update -q && apt-get install -y -q python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP) ui

ui: $(UI_STAMP)

$(UI_STAMP): $(UI_SOURCES)
	@if command -v npm >/dev/null; then \
	  cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build && touch .build-stamp-ok; \
	else echo "warning: no npm: the web panel is not built (/ui/ answers 503)"; fi
	@if [ -f ui/.build-stamp-ok ]; then rm -f ui/.build-stamp-ok; touch $(UI_STAMP); fi

# Debian's chromium for the panel's browser tests (Playwright drives it; it never
# downloads a browser of its own).
browser-deps:
	@command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q chromium; } || echo "warning: no chromium: the browser tests will be skipped"

# System packages the tests use (iptables for partitions; docker + busybox for workloads;
# nginx for the ingress data plane, its stream module for tls-alpn-01; pebble, a real ACME
# server, for certificates; docker-registry and htpasswd (apache2-utils) for image pulls:
# the tests start their own registries on 127.0.0.1, so the package's service is disabled).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q $$missing; \
	  case "$$missing" in *docker-registry*) systemctl disable --now docker-registry >/dev/null 2>&1 || true;; esac; \
	fi
	@if bash scripts/ensure-docker.sh; then bash scripts/build-test-image.sh; \
	 else echo "warning: no Docker engine; docker tests will be skipped"; fi

dev: install
	@echo "==> the web panel: http://127.0.0.1:7070/ui/ (sign in as admin with the password printed below)"
	$(BIN)/heroctld --dev

# The suite waits far more than it computes (clusters starting, long polls,
# containers): test files run in TEST_WORKERS processes, each file whole on one
# (its module-scoped clusters shared as written).
TEST_WORKERS ?= 3

test: install system-deps browser-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=15

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install system-deps browser-deps
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	$(BIN)/python -m bench.run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache bench/results
