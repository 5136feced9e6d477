# Petri Board Arena — every command a developer needs. `make help` lists them.
#
# `make run` and `make test` each do their own set-up: a .venv, the local services (PostgreSQL,
# Redis, Kafka on 127.0.0.1, installed on first use), and the database migrations.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Exact pins with hashes; the ranges stay in pyproject.toml. dev.lock is every package .venv gets
# (the project's, its test and run extras, the build backend); runtime.lock is the part the image
# needs, at the same versions (compiled with dev.lock as its constraint).
LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
COMPILE := uv pip compile --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	--custom-compile-command 'make lock'
# `make audit AUDIT_ARGS=` lists the pins it could not check instead of failing on them.
AUDIT_ARGS ?= --strict

# Optional local overrides (see .env.example); exported to every command below.
-include .env
export
export FLASK_APP := app.py
export PATH := $(BIN):$(PATH)

.PHONY: help setup lock audit services services-down services-status cluster-kafka \
        cluster-kafka-down migrate run api worker beat \
        consumer flower test test-unit browser bench bench-relay bench-simulation bench-ticking chaos \
        chaos-cluster up down lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv from requirements/dev.lock: the project, its test and run extras

# The lock is complete (uv resolved it), so pip installs exactly its lines and resolves nothing
# (--no-deps): whichever pip the new venv brings, no dependency's newest release on the index can
# enter (an old pip would otherwise ask for a pinned package's extra by its range). `pip check`
# then proves the set consistent. The project goes in last with the lock's setuptools, not a build
# environment's newest one.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Python >= 3.11 is required ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps --require-hashes --requirement $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .
	$(BIN)/pip check
	@touch $@

# uv keeps every pin already in the lock that still fits pyproject.toml's ranges; add
# LOCK_ARGS=--upgrade (or --upgrade-package NAME) to move pins to the newest versions in range.
lock: setup ## Re-pin requirements/*.lock (hashes, Python 3.11 on Linux) from pyproject.toml
	$(COMPILE) pyproject.toml requirements/build.in --extra test --extra run \
	  --output-file $(LOCK) $(LOCK_ARGS)
	$(COMPILE) pyproject.toml --constraint $(LOCK) --output-file $(RUNTIME_LOCK)

# Exactly the pinned set (--disable-pip: nothing is installed or resolved), each against PyPI's
# vulnerability data; --strict fails on a pin whose data could not be had, rather than skip it.
audit: setup ## pip-audit every package pinned in requirements/dev.lock against PyPI's advisories
	pip-audit --requirement $(LOCK) --require-hashes --disable-pip --progress-spinner off $(AUDIT_ARGS)

services: ## Install (first time) and start PostgreSQL, RabbitMQ, Redis and Kafka on 127.0.0.1
	@bash scripts/services.sh up

services-down: ## Stop the local services
	@bash scripts/services.sh down

services-status: ## Report each local service
	@bash scripts/services.sh status

# The replicated topology on loopback (stack/topology.py), beside the single-node services; not
# yet part of `make run` or `make test`'s services. stack needs only the standard library.
cluster-kafka: ## Three Kafka nodes (KRaft) on 127.0.0.1:19092-19094, beside the services
	@$(PYTHON) -m stack kafka up --topology cluster
	@$(PYTHON) -m stack kafka status --topology cluster

cluster-kafka-down: ## Stop the three Kafka nodes
	@$(PYTHON) -m stack kafka down --topology cluster

migrate: setup services ## Apply database migrations (flask db upgrade)
	flask db upgrade

# scripts/supervise.py starts each Procfile line with honcho's prefixed output, and starts again
# (with a backoff) any process that dies; Ctrl-C or SIGTERM stops them all.
run: setup services migrate ## The whole system: API :5000, worker, beat, consumer, Flower :5555
	@mkdir -p var/run
	@# Every process writes its Prometheus samples here and /metrics adds them up; a new run
	@# starts from zero, or the last run's counters would add up with this one's.
	export PROMETHEUS_MULTIPROC_DIR="$${PROMETHEUS_MULTIPROC_DIR:-$(CURDIR)/var/metrics}" && \
	  rm -rf "$$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && \
	  python scripts/supervise.py Procfile

api: setup ## The API alone, with Flask's development server on 127.0.0.1:5000
	flask run --host 127.0.0.1 --port 5000

worker: setup ## A Celery worker (relay and projection tasks)
	celery -A tasks worker --loglevel=INFO

beat: setup ## Celery beat (schedules the outbox relay)
	@mkdir -p var/run
	celery -A tasks beat --loglevel=INFO --schedule var/run/celerybeat-schedule

consumer: setup ## The Kafka consumer that dispatches events to projection tasks
	flask consume

flower: setup ## Flower on 127.0.0.1:5555, behind basic auth (FLOWER_BASIC_AUTH)
	celery -A tasks flower --conf=arena/flowerconfig.py --address=127.0.0.1 --port=5555

test: setup services browser ## Every test: unit, integration, end-to-end and in a browser, on the real services
	pytest

browser: ## Install Debian's Chromium for the browser tests (first time)
	scripts/services.sh browser

test-unit: setup ## Only the fast unit tests (no services needed)
	pytest tests/unit

bench: setup services ## Pipeline benchmark: CPU per event per process, capacity, latency, drains
	python -m bench pipeline

bench-relay: setup services ## Outbox relay benchmark: throughput and commit → Kafka latency
	python -m bench relay

bench-simulation: setup ## Simulation step benchmark: CPU ms per step for 64², 256², 512² boards
	python -m bench simulation

bench-ticking: setup services ## 100 arenas ticking on the whole pipeline: drift, tick → visible, CPU
	python -m bench ticking

chaos: setup services ## One fault at a time under load: lost, applied twice, converge (docs/reliability.md)
	python -m bench chaos

chaos-cluster: setup services cluster-kafka ## The chaos matrix on the Kafka cluster: its busiest leader and controller leader SIGKILLed
	python -m bench chaos --cluster

up: ## The whole stack in Docker (needs a Docker engine with Compose v2)
	docker compose up --build --detach
	@echo "API http://127.0.0.1:5000  Flower http://127.0.0.1:5555  (make down to stop)"

down: ## Stop the Docker stack
	docker compose down

lint: setup ## ruff (lint and format) and mypy (strict on arena/, tasks/, harness/ and bench/)
	ruff check .
	ruff format --check .
	mypy

clean: services-down cluster-kafka-down ## Stop services and delete .venv and var/ (all local data)
	rm -rf $(VENV) var
