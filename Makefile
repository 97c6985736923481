# The commands a newcomer needs. Each installs what it needs first (scripts/bootstrap.sh).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup up down test check format gpu-wheels

setup:
	@bash scripts/bootstrap.sh

## Main job: OpenSearch + Redis + a scoring worker (tiny model, or MODEL=<hub id or path>) + the
## sidecar; a sample catalog; baseline vs reranked searches side by side. The sidecar keeps running.
up: setup
	$(BIN)/rerank-sidecar demo $(if $(MODEL),--model $(MODEL))

down: setup
	$(BIN)/rerank-sidecar testbed down

## The whole test suite, after the quality gates.
test: setup check
	$(BIN)/python -m pytest

## Lint, format check and types.
check: setup
	$(BIN)/ruff check sidecar workers plugins tests bench deploy
	$(BIN)/ruff format --check sidecar workers plugins tests bench deploy
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix sidecar workers plugins tests bench deploy
	$(BIN)/ruff format sidecar workers plugins tests bench deploy

## Wheels the GPU bench needs on a bare GPU image (bench/scoring_gpu.py; docs/benchmarks.md).
gpu-wheels: setup
	@bash scripts/gpu_wheels.sh
