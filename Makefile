# The commands a newcomer needs. Each installs what it needs first (scripts/bootstrap.sh).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup up down test check format

setup:
	@bash scripts/bootstrap.sh

## Main job (for now): start OpenSearch, Elasticsearch, Redis and a Celery worker; print their URLs.
up: setup
	$(BIN)/rerank-sidecar testbed up

down: setup
	$(BIN)/rerank-sidecar testbed down

## The whole test suite, after the quality gates.
test: setup check
	$(BIN)/python -m pytest

## Lint, format check and types.
check: setup
	$(BIN)/ruff check sidecar workers plugins tests bench
	$(BIN)/ruff format --check sidecar workers plugins tests bench
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix sidecar workers plugins tests bench
	$(BIN)/ruff format sidecar workers plugins tests bench
