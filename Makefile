# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: setup demo test lint format bench petals-env world

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first and pinned: the CPU wheel from pip's find-links; unpinned it pulls CUDA.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $@

# Petals needs transformers 4.34: its own environment, from the pins in src/mergenet/petals/side/.
petals-env: .venv-petals/.installed

.venv-petals/.installed: scripts/petals-env.sh src/mergenet/petals/side/requirements-petals.txt src/mergenet/petals/side/requirements-petals-nodeps.txt
	bash scripts/petals-env.sh
	touch $@

node_modules/.installed: package.json
	# `npm install`, not `npm ci`: npm 11 reports the lock file out of sync for the other
	# platforms' optional binaries of @foundry-rs/*; versions are pinned exactly in package.json.
	npm install --no-audit --no-fund
	touch $@

demo: setup
	$(VENV)/bin/mergenet demo

# The model world is built (or found in the cache) before the tests that use it.
world: setup
	$(VENV)/bin/mergenet world build

test: setup petals-env world
	$(VENV)/bin/pytest

# ruff (lint, format), the package DAG (import-linter contracts in pyproject.toml) and mypy.
# The package graph itself: $(PY) scripts/package_graph.py
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts
	$(VENV)/bin/ruff format src tests benchmarks scripts
