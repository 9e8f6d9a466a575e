# tasklets-ops: `make help` lists the targets. `make test` is the single test command.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
TASKLETS_DB := $(VENV)/bin/tasklets-db
ARGS ?=

.PHONY: help venv test lint db-push db-status db-check

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV_PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(VENV_PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(VENV_STAMP) ## Create .venv and install the project with its test extras

test: $(VENV_STAMP) ## Run the whole test suite against a throwaway PostgreSQL (no setup needed)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP) ## ruff over the code
	$(VENV_PY) -m pip install -q ruff && $(VENV)/bin/ruff check ops migrations tests

db-push: $(VENV_STAMP) ## Apply pending migrations
	$(TASKLETS_DB) push $(ARGS)

db-status: $(VENV_STAMP) ## Show target, revision, row counts, latest backup
	$(TASKLETS_DB) status $(ARGS)

db-check: $(VENV_STAMP) ## Exit 1 when models and database have drifted
	$(TASKLETS_DB) check $(ARGS)
