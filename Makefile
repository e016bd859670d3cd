# Local commands. CI (.ci/run) runs lint, typecheck, then ./scripts/test.sh: `make check`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup venv test lint typecheck check bench up down status

help:            ## list the targets
	@grep -E '^[a-z ]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:           ## bring the local stack up and run the demo (./setup.sh)
	./setup.sh

venv:            ## install .venv with the pinned dependencies if missing or stale
	bash -c '. scripts/bootstrap.sh && bootstrap'

test:            ## the whole test suite (bootstraps .venv if missing)
	./scripts/test.sh

lint: venv       ## ruff
	$(BIN)/ruff check matchstream transforms scripts tests

typecheck: venv  ## mypy on the package
	$(BIN)/mypy

check: lint typecheck test   ## lint + types + tests, as CI does

bench: venv      ## every benchmark; copy the results into docs/benchmarks.md
	@for b in scripts/bench*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

up down status: venv  ## matchstream up / down / status
	$(BIN)/matchstream $@
