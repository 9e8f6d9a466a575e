# tasklets-ops: `make help` lists the targets. `make test` is the single test command.
#
# Every db-* target runs `tasklets-db ...` in a one-off `ops` container (compose `run --rm`)
# against the compose `db` service and the host's backups/ (mounted at /backups), in a compose
# project named per checkout (`make -s compose-env` shows it, for running compose by hand).
# RUN=local runs the same commands in .venv instead, against DATABASE_URL, or, when that is
# empty, a project-local PostgreSQL under .localpg/ started on demand (`tasklets-db local`).
# Extra CLI flags pass through ARGS:  make db-backup ARGS="--compress"
SHELL := /bin/bash
.DEFAULT_GOAL := help
.NOTPARALLEL:

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
# What running needs (RUN=local), and on top of it the test extras (test, lint, bench).
VENV_STAMP := $(VENV)/.installed
VENV_TEST_STAMP := $(VENV)/.installed-test
TASKLETS_DB := $(VENV)/bin/tasklets-db
ARGS ?=
BUILD_FLAGS ?=
RUN ?= docker
ifeq ($(filter $(RUN),docker local),)
$(error RUN=$(RUN) is not one of: docker (default), local)
endif

# `docker compose` (v2) when it answers, else `docker-compose` (1.29); override with COMPOSE=...
ifndef COMPOSE
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
endif
# Allocate a TTY for containers only when we have one (CI and tests have none).
TTY := $(shell [ -t 0 ] || echo -T)

# Settings file for compose and the CLI; created from .env.example when missing.
ENV_FILE ?= .env
DC = $(COMPOSE) --env-file $(ENV_FILE)

# A setting from the command line or environment, else from ENV_FILE, else the default. make
# does not include ENV_FILE itself: values there may hold characters make would expand.
setting = $(or $($(1)),$(shell sed -n 's/^$(1)=//p' $(ENV_FILE) 2>/dev/null | tail -n 1),$(2))

# Each checkout is its own compose project with its own ops image, named after the folder plus
# a checksum of its absolute path: compose would otherwise take the bare folder name, and two
# checkouts called tasklets-ops would share containers, data volume and image. A name set in
# the environment or ENV_FILE wins. `make compose-env` prints these for running compose by hand.
CHECKOUT := $(shell dir=$$(pwd -P); name=$$(basename "$$dir" | tr 'A-Z' 'a-z' | \
	tr -cs 'a-z0-9_-' '-' | sed 's/^[-_]*//; s/-$$//'); \
	echo "$${name:-tasklets}-$$(printf %s "$$dir" | cksum | cut -d' ' -f1)")
override COMPOSE_PROJECT_NAME := $(call setting,COMPOSE_PROJECT_NAME,$(CHECKOUT))
# The image tag follows the checkout, not the project: test stacks of one checkout reuse it.
override OPS_IMAGE := $(call setting,OPS_IMAGE,tasklets-ops:$(CHECKOUT))
export COMPOSE_PROJECT_NAME OPS_IMAGE

# The ops/api containers run as the host user, so backup files are yours to read and delete.
export UID := $(shell id -u)
export GID := $(shell id -g)
# $(call absolute,PATH): PATH from the checkout, as one word even with spaces (unlike abspath).
# Compose would take a relative name without ./ for a named volume.
absolute = $(if $(filter /%,$(1)),$(1),$(CURDIR)/$(patsubst ./%,%,$(1)))
# Where backups go: a host directory, mounted at /backups (created here so Docker does not
# create it as root), or a bucket URL (s3://, gs://, az://), which the containers use as it is
# (./backups is still mounted, for host files). BACKUP_LOCATION is what the container sees.
BACKUP_SETTING := $(call setting,BACKUP_DIR,./backups)
ifneq ($(findstring ://,$(BACKUP_SETTING)),)
override BACKUP_DIR := $(BACKUP_SETTING)
BACKUP_HOST_DIR := $(CURDIR)/backups
BACKUP_LOCATION := $(BACKUP_SETTING)
else
override BACKUP_DIR := $(call absolute,$(BACKUP_SETTING))
BACKUP_HOST_DIR := $(BACKUP_DIR)
BACKUP_LOCATION := /backups
endif
export BACKUP_DIR BACKUP_HOST_DIR BACKUP_LOCATION
# Key files the containers need (the identity that decrypts backups, a GCS service-account
# key): mounted read-only when set, their in-container paths passed on.
SECRET_FILES := BACKUP_IDENTITY_FILE GOOGLE_APPLICATION_CREDENTIALS
$(foreach name,$(SECRET_FILES),$(eval $(name)_SETTING := $(call setting,$(name),)))
$(foreach name,$(SECRET_FILES),$(eval export $(name)_HOST := $(if $($(name)_SETTING),$(call absolute,$($(name)_SETTING)),/dev/null)))
$(foreach name,$(SECRET_FILES),$(eval export $(name)_IN_CONTAINER := $(if $($(name)_SETTING),/run/secrets/$(name),)))
# The beads export; compose mounts /dev/null instead when the file does not exist (Docker
# would otherwise create a root-owned directory in its place).
BEADS_PATH := $(call setting,BEADS_FILE,.beads/issues.jsonl)
override BEADS_FILE := $(if $(wildcard $(BEADS_PATH)),$(abspath $(BEADS_PATH)),/dev/null)
export BEADS_FILE
# The custom seeds folder; the ops container mounts it read-only at /app/seeds.
SEEDS_SETTING := $(call setting,SEEDS_DIR,./seeds)
override SEEDS_DIR := $(call absolute,$(SEEDS_SETTING))
export SEEDS_DIR
# A DATABASE_URL replaces the compose db, which one-off runs then leave stopped (--no-deps).
DATABASE_URL_SETTING := $(call setting,DATABASE_URL,)
DATABASE_URL_SET := $(findstring =,$(DATABASE_URL_SETTING))$(findstring ://,$(DATABASE_URL_SETTING))
API_PORT := $(call setting,API_PORT,8000)
METRICS_PORT := $(call setting,METRICS_PORT,9187)
CAPTURE_METRICS_PORT := $(call setting,CAPTURE_METRICS_PORT,9188)
PROMETHEUS_PORT := $(call setting,PROMETHEUS_PORT,9090)
# The configuration the compose Prometheus mounts (monitoring-up checks that it is a file:
# Docker would create a root-owned directory in place of a missing one).
override PROMETHEUS_CONFIG := $(call absolute,$(call setting,PROMETHEUS_CONFIG,deploy/prometheus/prometheus.yml))
export PROMETHEUS_CONFIG
TESTDB_PORT := $(call setting,TESTDB_PORT,5010)
ADMINER_PORT := $(call setting,ADMINER_PORT,8080)

# The ops image is rebuilt when anything that goes into it changes (one stamp per image name).
OPS_STAMP := build/.ops-image-$(subst /,_,$(subst :,_,$(OPS_IMAGE)))
OPS_INPUTS := $(shell find ops api migrations seeds -type f -not -path '*/__pycache__/*' \
	2>/dev/null) pyproject.toml alembic.ini .dockerignore docker/ops/Dockerfile \
	docker/ops/requirements.py

# $(call tasklets,EXTRA RUN FLAGS): the command line that runs `tasklets-db` in this mode. The
# CLI is told the make target and mode so that its hints name what the user typed
# (`make db-reset CONFIRM=yes`, not `tasklets-db reset --confirm`).
CLI_CONTEXT = TASKLETS_MAKE_TARGET=$@ TASKLETS_RUN=$(RUN)
# In a container, messages show the host paths the user gave instead of the mount points
# (CONTAINER=HOST pairs joined by ":"; the CLI's one mapping, ops.core.output.host_paths).
host_path_of = $(if $(2),:$(1)=$(2))
HOST_PATHS = /backups=$(if $(filter /backups,$(BACKUP_LOCATION)),$(BACKUP_SETTING),backups)$\
	$(call host_path_of,/app/migrations,migrations)$(call host_path_of,/app/seeds,$(SEEDS_SETTING))$\
	$(call host_path_of,/beads/issues.jsonl,$(BEADS_PATH))$\
	$(call host_path_of,/run/secrets/BACKUP_IDENTITY_FILE,$(BACKUP_IDENTITY_FILE_SETTING))$\
	$(call host_path_of,/run/secrets/GOOGLE_APPLICATION_CREDENTIALS,$(GOOGLE_APPLICATION_CREDENTIALS_SETTING))$\
	$(if $(HOST_BACKUP),$(call host_path_of,/restore/$(notdir $(BACKUP)),$(BACKUP)))$\
	$(if $(HOST_FROM),$(call host_path_of,/restore/$(notdir $(FROM)),$(FROM)))
ifeq ($(RUN),local)
CLI_DEPS := $(VENV_STAMP) $(ENV_FILE)
tasklets = url=$$($(TASKLETS_DB) --env-file $(ENV_FILE) local url) && \
	DATABASE_URL="$$url" $(CLI_CONTEXT) $(TASKLETS_DB) --env-file $(ENV_FILE)
else
CLI_DEPS := docker-ready docker-settings $(ENV_FILE) $(OPS_STAMP)
# Through docker/compose-quiet: the exit status stays, compose's noise on stderr goes.
tasklets = $(QUIET) $(DC) run --rm $(TTY) $(if $(DATABASE_URL_SET),--no-deps) \
	$(addprefix -e ,$(CLI_CONTEXT)) -e $(call quote,TASKLETS_HOST_PATHS=$(HOST_PATHS)) \
	$(1) ops tasklets-db
endif
QUIET := docker/compose-quiet

# $(call wait_healthy,SERVICE[,COMPOSE OPTIONS]): wait for the service's healthcheck (compose
# 1.x has no --wait); a service under a profile needs that --profile to be found.
define wait_healthy
@for _ in $$(seq 1 90); do \
	state=$$(docker inspect -f '{{.State.Health.Status}}' $$($(DC) $(2) ps -q $(1)) 2>/dev/null); \
	[ "$$state" = healthy ] && exit 0; sleep 1; done; \
	echo "❌ $(1) is not healthy after 90 s ($${state:-not running}). 💡 See: make logs ARGS=$(1)" >&2; \
	exit 1
endef

# $(call port_taken,PORT,VARIABLE,TARGET): stop with one line when something on this machine already
# listens on the port a service is about to publish (Docker's own error names neither).
port_taken = if (exec 3<>/dev/tcp/127.0.0.1/$(1)) 2>/dev/null; then echo "❌ Port $(1) on 127.0.0.1 is taken by another program, so make $(3) cannot serve there. 💡 Use another one: make $(3) $(2)=$$(($(1) + 1)) (or set $(2) in $(ENV_FILE))" >&2; exit 1; fi

# Quote a make value for the shell.
quote = '$(subst ','\'',$(1))'

# $(call need,VAR,example): stop with one line when a required make variable is empty.
need = @[ -n $(call quote,$($(1))) ] || { echo "❌ make $@ needs $(1)=... 💡 e.g. make $@ $(1)=$(2)" >&2; exit 2; }

.PHONY: api-port help compose-env venv test lint bench docs docs-serve docs-deps build up down logs dev docker-ready \
	scheduler-up db-schedule testdb-up testdb-settings \
	docker-settings db-push db-generate \
	db-check db-status db-backup db-backups db-backups-check db-verify db-prune db-reset \
	db-restore db-compare db-anonymize-check db-copy db-seed-list \
	db-seed-lookups db-seed-sample db-seed-demo db-seed db-seed-custom db-import-beads \
	db-import-beads-api db-fresh db-studio db-shell db-upgrade-postgres db-upgrade-postgres-finish \
	upgrade-settings

help: ## List every target with one line each
	@echo "Usage: make TARGET [RUN=local] [ARGS=\"--flag ...\"]   (now: RUN=$(RUN), compose: $(or $(COMPOSE),none))"
	@if [ -t 1 ] && [ -z "$${NO_COLOR-}" ]; then on='\033[36m' off='\033[0m'; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v on="$$on" -v off="$$off" \
		'BEGIN {FS = ":.*?## "}; {printf "  %s%-26s%s %s\n", on, $$1, off, $$2}'

compose-env: ## Print the exports that make a plain `docker compose` use this checkout's stack
	@printf 'export %s=%q\n' COMPOSE_PROJECT_NAME $(call quote,$(COMPOSE_PROJECT_NAME)) \
		OPS_IMAGE $(call quote,$(OPS_IMAGE)) BACKUP_DIR $(call quote,$(BACKUP_DIR)) \
		BACKUP_HOST_DIR $(call quote,$(BACKUP_HOST_DIR)) \
		BACKUP_LOCATION $(call quote,$(BACKUP_LOCATION)) \
		BEADS_FILE $(call quote,$(BEADS_FILE)) SEEDS_DIR $(call quote,$(SEEDS_DIR))
	@echo 'export UID GID=$(GID)'

# --- Local virtualenv and tests ----------------------------------------------------------------

# pip shows each package as it goes (a first install takes a minute or two): never silent.
PIP_INSTALL = $(VENV_PY) -m pip install --disable-pip-version-check --progress-bar off
PIP_LINES = awk '/^(Collecting|Installing collected|Successfully installed) / { print "   " $$0; fflush() }'
$(VENV_STAMP): pyproject.toml
	@test -x $(VENV_PY) || { echo "🐍 Creating $(VENV) (first run): the project and what running it needs..." >&2; \
		$(PYTHON) -m venv $(VENV); }
	@echo "📦 Installing into $(VENV) (pyproject.toml changed or first run)..." >&2
	@$(PIP_INSTALL) -q --upgrade pip
	@set -o pipefail; $(PIP_INSTALL) -e '.[all]' | $(PIP_LINES) >&2
	@touch $@

$(VENV_TEST_STAMP): $(VENV_STAMP)
	@echo "📦 Installing the test extras into $(VENV) (pytest, the storage servers, ...)..." >&2
	@set -o pipefail; $(PIP_INSTALL) -e '.[test]' | $(PIP_LINES) >&2
	@touch $@

venv: $(VENV_TEST_STAMP) ## Create .venv and install the project with its test extras

test: $(VENV_TEST_STAMP) ## Run the whole test suite (throwaway PostgreSQL; container tests when Docker answers)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV_TEST_STAMP) ## ruff, no private-name imports, the dependency rule (import-linter), and mypy (strict on ops and api)
	$(VENV_PY) -m pip install -q ruff && $(VENV)/bin/ruff check ops api bench migrations tests
	$(VENV)/bin/ruff check --preview --select PLC2701 ops api bench migrations tests
	$(VENV)/bin/lint-imports
	$(VENV_PY) -m mypy

bench: $(VENV_TEST_STAMP) ## Run the benchmarks (python -m bench ARGS...)
	$(VENV_PY) -m bench $(ARGS)

# The site's reference pages are generated from the CLI and .env.example at build time.
DOCS_PORT := $(call setting,DOCS_PORT,8001)
MKDOCS = $(VENV_PY) -m mkdocs
docs-deps: $(VENV_STAMP)
	@$(MKDOCS) --version >/dev/null 2>&1 || $(VENV_PY) -m pip install -q \
		--disable-pip-version-check -e '.[docs]'

docs: docs-deps ## Build the documentation site into build/site (strict: a broken link fails)
	@NO_MKDOCS_2_WARNING=1 $(MKDOCS) build --strict
	@echo "📖 Documentation site: build/site/index.html (make docs-serve to browse it)"

docs-serve: docs-deps ## Serve the documentation site on http://127.0.0.1:8001 (DOCS_PORT), rebuilt on change
	@NO_MKDOCS_2_WARNING=1 $(MKDOCS) serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# Both modes read their settings from ENV_FILE (RUN=local too: the API's SECRET_KEY is there).
# Private (0600), with an ANONYMIZE_SALT of its own: a published default would let anyone test
# whether an email is in an anonymized snapshot.
$(ENV_FILE):
	@umask 077 && salt=$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') && \
		sed "s/^ANONYMIZE_SALT=$$/ANONYMIZE_SALT=$$salt/" .env.example > $@.partial && mv $@.partial $@
	@echo "📝 Created $@ from .env.example (development defaults, a generated ANONYMIZE_SALT; edit $@ to change them)" >&2

# --- Docker plumbing ---------------------------------------------------------------------------

# Docker targets without an engine: one line pointing at RUN=local, not a daemon error.
DOCKER_GOALS := $(filter build up down logs dev scheduler-up monitoring-up testdb-up capture-up capture-down db-%,$(MAKECMDGOALS))
ifneq ($(and $(filter docker,$(RUN)),$(DOCKER_GOALS)),)
ifeq ($(shell [ -n "$(COMPOSE)" ] && docker info >/dev/null 2>&1 && echo yes),)
$(error ❌ No Docker engine answers$(if $(COMPOSE),, (no docker compose either)), so make $(DOCKER_GOALS) cannot run. 💡 Start Docker, or run without it: make $(MAKECMDGOALS) RUN=local)
endif
endif

docker-ready:
	@mkdir -p "$(BACKUP_HOST_DIR)"

# Settings the containers cannot use, caught before compose: a missing SEEDS_DIR (Docker would
# create it, owned by root) and a DATABASE_URL on this machine's loopback or a local socket
# (in a container that is the container itself). The URL is read in the shell, never put on a
# command line, as it may hold a password.
LOOPBACK_URL := ^postgres(ql)?(\+[a-z0-9]+)?://([^@/?\#]*@)?(localhost|127\.[0-9.]+|\[::1\])?([:/?,]|$$)
LOOPBACK_URL := $(LOOPBACK_URL)|(^|[[:space:]])host[[:space:]]*=[[:space:]]*(localhost|127\.|::1|/)
docker-settings:
	@[ -d "$(SEEDS_DIR)" ] || { echo "❌ SEEDS_DIR $(SEEDS_DIR) is not a directory. 💡 Create it, or set SEEDS_DIR to your seeds folder (default ./seeds)" >&2; exit 1; }
	@url=$${DATABASE_URL-$$(sed -n 's/^DATABASE_URL=//p' $(ENV_FILE) 2>/dev/null | tail -n 1)}; \
	url=$${url#[\"\']}; re='$(LOOPBACK_URL)'; shopt -s nocasematch; \
	if [[ $$url =~ $$re ]]; then echo "❌ DATABASE_URL points at this machine (localhost or a local socket), which the containers cannot reach: there, localhost is the container. 💡 Leave DATABASE_URL empty to use the compose db, or run on this machine: make $(MAKECMDGOALS) RUN=local" >&2; exit 1; fi

$(OPS_STAMP): $(OPS_INPUTS) | docker-ready $(ENV_FILE)
	@echo "🔨 Building the ops image (first run, or the code changed; a first build installs the dependencies, a minute or two)..." >&2
	@docker/build-progress $(DC) build $(BUILD_FLAGS) ops
	@mkdir -p $(@D) && touch $@

ifeq ($(RUN),local)
build: $(VENV_STAMP)
up: $(CLI_DEPS)
	@$(TASKLETS_DB) --env-file $(ENV_FILE) local up
down: $(VENV_STAMP)
	@$(TASKLETS_DB) local stop
logs:
	tail -n 100 -f .localpg/server.log
dev: api-port $(CLI_DEPS)
	@$(call tasklets) serve --port $(API_PORT) $(ARGS)
db-studio:
	@echo "❌ db-studio runs adminer in Docker. 💡 Use make db-shell RUN=local for psql" >&2; exit 1
db-shell: $(CLI_DEPS)
	@$(TASKLETS_DB) --env-file $(ENV_FILE) local psql
scheduler-up:
	@echo "❌ scheduler-up runs the scheduler container. 💡 In the foreground here: make db-schedule RUN=local" >&2; exit 1
capture-up: $(CLI_DEPS)
	@$(call tasklets) capture $(ARGS)
capture-down:
	@echo "❌ capture-down stops the capture container; RUN=local capture-up runs in the foreground (Ctrl-C stops it). 💡 make db-capture-stop RUN=local drops its slot" >&2; exit 1
testdb-up: $(CLI_DEPS)
	@$(call tasklets) testdb serve --port $(TESTDB_PORT) $(ARGS)
else
build: docker-ready $(ENV_FILE) ## Build the ops image, a line per step (BUILD_FLAGS=--no-cache: from scratch; RUN=local: set up .venv)
	@echo "🔨 Building the ops image..." >&2
	@docker/build-progress $(DC) build $(BUILD_FLAGS) ops
	@mkdir -p $(dir $(OPS_STAMP)) && touch $(OPS_STAMP)
up: $(CLI_DEPS) ## Start db and api in the background (RUN=local: the project-local PostgreSQL)
	@$(QUIET) $(DC) up -d db api
	$(call wait_healthy,api)
	@echo "✅ API on http://127.0.0.1:$(API_PORT) (docs at /docs); database published on 127.0.0.1"
down: docker-ready $(ENV_FILE) ## Stop the stack; ARGS=-v also drops its data (RUN=local: stop .localpg)
	@$(QUIET) $(DC) --profile studio --profile scheduled --profile monitoring --profile testdb --profile capture down $(ARGS)
logs: docker-ready $(ENV_FILE) ## Follow the services' logs; ARGS=SERVICE for one (RUN=local: .localpg/server.log)
	$(DC) logs -f --tail=100 $(ARGS)
dev: api-port $(CLI_DEPS) ## Run the API in the foreground on 127.0.0.1:API_PORT (RUN=local: tasklets-db serve)
	@$(DC) up api
db-studio: docker-ready $(ENV_FILE) ## Open adminer (the studio profile) on 127.0.0.1:ADMINER_PORT
	$(DC) --profile studio up -d adminer
	@echo "✅ Adminer on http://127.0.0.1:$(ADMINER_PORT) (server: db; user, password, database: see $(ENV_FILE))"
scheduler-up: $(CLI_DEPS) ## Start the backup scheduler (profile scheduled) and wait until it is healthy
	$(DC) --profile scheduled up -d $(if $(DATABASE_URL_SET),--no-deps) scheduler
	$(call wait_healthy,scheduler,--profile scheduled)
	@echo "✅ Scheduler up: metrics on http://127.0.0.1:$(METRICS_PORT)/metrics; logs: make logs ARGS=scheduler"
capture-up: $(CLI_DEPS) ## Start change capture (profile capture; RUN=local: in the foreground): changes into segments beside the backups, metrics on 127.0.0.1:CAPTURE_METRICS_PORT
	$(DC) --profile capture up -d $(if $(DATABASE_URL_SET),--no-deps) capture
	$(call wait_healthy,capture,--profile capture)
	@echo "✅ Capture up: metrics on http://127.0.0.1:$(CAPTURE_METRICS_PORT)/metrics; make db-capture-status shows lag and retained WAL"
capture-down: docker-ready $(ENV_FILE) ## Stop change capture (its slot stays and keeps WAL: make db-capture-stop drops it)
	$(QUIET) $(DC) --profile capture rm -sf capture
testdb-up: testdb-settings $(CLI_DEPS) ## Serve fresh test databases on 127.0.0.1:TESTDB_PORT (profile testdb; RUN=local: in the foreground)
	$(DC) --profile testdb up -d $(if $(DATABASE_URL_SET),--no-deps) testdb
	$(call wait_healthy,testdb,--profile testdb)
	@echo "✅ Test databases on http://127.0.0.1:$(TESTDB_PORT) (send Authorization: Bearer \$$TESTDB_TOKEN); status: TESTDB_SERVER=http://127.0.0.1:$(TESTDB_PORT) .venv/bin/tasklets-db testdb status"
# Before the image is built: the container listens beyond its own loopback, so it needs a token.
testdb-settings: $(ENV_FILE)
	@[ -n "$(call setting,TESTDB_TOKEN,)" ] || { echo "❌ TESTDB_TOKEN is empty, and the testdb service hands out database URLs with passwords to whoever asks. 💡 Add TESTDB_TOKEN=... to $(ENV_FILE) (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')" >&2; exit 1; }
db-shell: docker-ready $(ENV_FILE) ## psql in the db container (RUN=local: psql against the local database)
	@$(QUIET) $(DC) up -d db
	$(call wait_healthy,db)
	@$(DC) exec $(TTY) db sh -c 'exec psql -U "$$POSTGRES_USER" -d "$$POSTGRES_DB"'
endif

# Before anything is built: API_PORT must be free, or already this stack's api (docker).
api-port: $(ENV_FILE)
	@$(if $(filter docker,$(RUN)),[ -n "$$($(DC) ps -q api 2>/dev/null)" ] ||) \
		{ $(call port_taken,$(API_PORT),API_PORT,dev); }

# --- Monitoring: Prometheus with the alert rules of deploy/prometheus -------------------------

.PHONY: monitoring-up
ifeq ($(RUN),local)
monitoring-up:
	@echo "❌ monitoring-up runs Prometheus in Docker. 💡 Point your own Prometheus at the scheduler's --metrics-port, with the rules of deploy/prometheus/alerts.yml" >&2; exit 1
else
monitoring-up: docker-ready $(ENV_FILE) ## Start Prometheus (profile monitoring) on 127.0.0.1:PROMETHEUS_PORT: scrapes the scheduler, evaluates deploy/prometheus/alerts.yml
	@[ -f "$(PROMETHEUS_CONFIG)" ] || { echo "❌ PROMETHEUS_CONFIG $(PROMETHEUS_CONFIG) is not a file. 💡 Leave it empty for deploy/prometheus/prometheus.yml, or name your Prometheus configuration" >&2; exit 1; }
	$(DC) --profile monitoring up -d prometheus
	$(call wait_healthy,prometheus,--profile monitoring)
	@echo "✅ Prometheus on http://127.0.0.1:$(PROMETHEUS_PORT) (alerts at /alerts); it scrapes the scheduler: make scheduler-up"
endif

# --- Database lifecycle (tasklets-db) ----------------------------------------------------------

db-push: $(CLI_DEPS) ## Apply pending migrations (push)
	@$(call tasklets) push $(ARGS)

db-generate: $(CLI_DEPS) ## Autogenerate a migration: m="what changed" (writes migrations/versions)
	$(call need,m,\"add task color\")
	@$(call tasklets,$(if $(filter docker,$(RUN)),-v "$(CURDIR)/migrations:/app/migrations")) generate -m $(call quote,$(m)) $(ARGS)

db-check: $(CLI_DEPS) ## Exit 1 when models and database have drifted (check)
	@$(call tasklets) check $(ARGS)

db-status: $(CLI_DEPS) ## Target, revision, row counts, latest backup (status; ARGS=--json)
	@$(call tasklets) status $(ARGS)

db-backup: $(CLI_DEPS) ## Write a backup to backups/ (backup; ARGS="--compress")
	@$(call tasklets) backup $(ARGS)

db-backups: $(CLI_DEPS) ## List the backups (backups)
	@$(call tasklets) backups $(ARGS)

db-verify: $(CLI_DEPS) ## Check BACKUP=file (default: the latest) against its checksums (verify)
	@$(call tasklets,$(BACKUP_MOUNT)) verify $(BACKUP_ARG) $(ARGS)

db-backups-check: $(CLI_DEPS) ## Exit 1 when the newest good backup is older than BACKUP_MAX_AGE (backups check; for cron and CI)
	@$(call tasklets) backups check $(ARGS)

db-prune: $(CLI_DEPS) ## Delete old backups: ARGS="--keep 5 --yes" (prune; shows the plan without --yes)
	@$(call tasklets) prune $(ARGS)

db-capture-status: $(CLI_DEPS) ## Capture slot, lag and retained WAL (capture status; ARGS=--json)
	@$(call tasklets) capture status $(ARGS)

db-capture-stop: $(CLI_DEPS) ## Drop capture's replication slot and publication (capture stop --drop-slot)
	@$(call tasklets) capture stop --drop-slot $(ARGS)

db-schedule: $(CLI_DEPS) ## Run the backup scheduler in the foreground; ARGS="--once" for one cycle (schedule)
	@$(call tasklets) schedule $(ARGS)

db-reset: $(CLI_DEPS) ## Empty every table; CONFIRM=yes passes --confirm (reset)
	@$(call tasklets) reset $(if $(filter yes,$(CONFIRM)),--confirm) $(ARGS)

# BACKUP=file for db-restore and db-verify: a file on the host is mounted into the container
# read-only; anything else (a name in the backups directory, latest) is passed on unchanged.
HOST_BACKUP = $(if $(filter docker,$(RUN)),$(wildcard $(BACKUP)))
BACKUP_ARG = $(call quote,$(if $(HOST_BACKUP),/restore/$(notdir $(BACKUP)),$(or $(BACKUP),latest)))
BACKUP_MOUNT = $(if $(HOST_BACKUP),-v "$(abspath $(BACKUP)):/restore/$(notdir $(BACKUP)):ro")

db-restore: $(CLI_DEPS) ## Restore BACKUP=file (default: the latest backup), or AT=time (-15m, ISO, latest) (restore)
	@$(call tasklets,$(BACKUP_MOUNT)) restore $(BACKUP_ARG) $(if $(AT),--at $(call quote,$(AT))) $(ARGS)

db-compare: $(CLI_DEPS) ## Check that the database holds exactly BACKUP=file's data (default: the latest) (compare)
	@$(call tasklets,$(BACKUP_MOUNT)) compare $(BACKUP_ARG) $(ARGS)

db-anonymize-check: $(CLI_DEPS) ## Exit 1 naming any column anonymize.toml does not classify (anonymize check)
	@$(call tasklets) anonymize check $(ARGS)

db-copy: $(CLI_DEPS) ## Copy one tenant into another database: ARGS="--tenant NAME --to URL" (copy)
	@$(call tasklets) copy $(ARGS)

db-seed-lookups: $(CLI_DEPS) ## Seed the SysTech tenant and the 18 reference tags (seed lookups)
	@$(call tasklets) seed lookups $(ARGS)

db-seed-sample: $(CLI_DEPS) ## Seed the sample users, teams and work items (seed sample)
	@$(call tasklets) seed sample $(ARGS)

db-seed-demo: $(CLI_DEPS) ## Legacy alias of db-seed-sample (seed demo)
	@$(call tasklets) seed demo $(ARGS)

db-seed: $(CLI_DEPS) ## Seed the default set (seed)
	@$(call tasklets) seed $(ARGS)

db-seed-list: $(CLI_DEPS) ## List the seeds db-seed-custom can run (seed list)
	@$(call tasklets) seed list $(ARGS)

db-seed-custom: $(CLI_DEPS) ## Run one named seed: NAME=... (seed run NAME; seed list shows them)
	$(call need,NAME,sample)
	@$(call tasklets) seed run $(call quote,$(NAME)) $(ARGS)

BEADS_IN_CONTAINER := $(if $(filter docker,$(RUN)),/beads/issues.jsonl,$(BEADS_PATH))
define need_beads_file
@test -f "$(BEADS_PATH)" || { echo "❌ beads file $(BEADS_PATH) not found. 💡 Export it with \`bd export\`, or point to it: make $@ BEADS_FILE=path/to/issues.jsonl" >&2; exit 1; }
endef

db-import-beads: $(CLI_DEPS) ## Import the beads export BEADS_FILE (default .beads/issues.jsonl) (import beads)
	$(need_beads_file)
	@$(call tasklets) import beads --file $(call quote,$(BEADS_IN_CONTAINER)) $(ARGS)

ifeq ($(RUN),local)
API_URL ?= http://127.0.0.1:$(API_PORT)
else
API_URL ?= http://api:8000
endif
db-import-beads-api: $(CLI_DEPS) ## Import BEADS_FILE through the REST API (starts api; import beads --via api)
	$(need_beads_file)
ifneq ($(RUN),local)
	$(DC) up -d api
	$(call wait_healthy,api)
endif
	@$(call tasklets) import beads --via api --api-url $(API_URL) --file $(call quote,$(BEADS_IN_CONTAINER)) $(ARGS)

# FROM=snapshot for db-fresh: as with BACKUP, a file on the host is mounted read-only.
HOST_FROM = $(if $(filter docker,$(RUN)),$(wildcard $(FROM)))
FROM_ARG = $(if $(FROM),--from $(call quote,$(if $(HOST_FROM),/restore/$(notdir $(FROM)),$(FROM))))
FROM_MOUNT = $(if $(HOST_FROM),-v "$(abspath $(FROM)):/restore/$(notdir $(FROM)):ro")

db-fresh: $(CLI_DEPS) ## Start the db, create the schema, seed lookups + sample data (fresh); FROM=snapshot restores an anonymized snapshot instead
	@$(call tasklets,$(FROM_MOUNT)) fresh $(FROM_ARG) $(ARGS)

# --- Moving the compose database to another PostgreSQL image ----------------------------------

# docker/upgrade-postgres does the steps (its header explains them); it gets the compose
# command and the stack's current settings from here.
UPGRADE_ENV = DC='$(DC)' QUIET=$(QUIET) ENV_FILE=$(call quote,$(ENV_FILE)) TARGET=$@ \
	CURRENT_IMAGE=$(call quote,$(call setting,POSTGRES_IMAGE,postgres:16-alpine)) \
	CURRENT_VOLUME=$(call quote,$(call setting,POSTGRES_VOLUME,pgdata)) \
	PREVIOUS_VOLUME=$(call quote,$(call setting,POSTGRES_PREVIOUS_VOLUME,))

ifeq ($(RUN),local)
db-upgrade-postgres db-upgrade-postgres-finish:
	@echo "❌ make $@ moves the compose database to another image (Docker). 💡 With RUN=local, back up, point DATABASE_URL at the new server, then push and restore there" >&2; exit 1
else
db-upgrade-postgres: upgrade-settings docker-ready docker-settings $(ENV_FILE) $(OPS_STAMP) ## Move the compose db to IMAGE=postgres:17-alpine: backup, new volume, restore, compare, switch
	@$(UPGRADE_ENV) docker/upgrade-postgres start $(call quote,$(IMAGE))

# What would make the upgrade pointless or undone, caught before anything is built or started.
upgrade-settings:
	@[ -n $(call quote,$(IMAGE)) ] || { echo "❌ make db-upgrade-postgres needs IMAGE=... 💡 e.g. make db-upgrade-postgres IMAGE=postgres:17-alpine" >&2; exit 2; }
	@[ -z "$(DATABASE_URL_SET)" ] || { echo "❌ DATABASE_URL is set, so the stack does not use the compose db that make db-upgrade-postgres moves. 💡 Upgrade that server with its own tools, or leave DATABASE_URL empty" >&2; exit 1; }
	@[ "$(origin POSTGRES_IMAGE)" != environment ] || [ "$$POSTGRES_IMAGE" = $(call quote,$(IMAGE)) ] || { echo "❌ POSTGRES_IMAGE=$$POSTGRES_IMAGE is set in your environment and would keep the stack on it after the upgrade. 💡 Unset it (the upgrade records the image in $(ENV_FILE)), or set it to $(IMAGE)" >&2; exit 1; }

db-upgrade-postgres-finish: docker-ready $(ENV_FILE) ## Delete the old database volume db-upgrade-postgres kept
	@$(UPGRADE_ENV) docker/upgrade-postgres finish
endif
