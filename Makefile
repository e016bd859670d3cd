# Local commands; CI runs ./scripts/test.sh (the same as `make test`).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: help setup test lint typecheck check bench up down status

help:            ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:           ## bring the local stack up (./setup.sh)
	./setup.sh

test:            ## the whole test suite (bootstraps .venv if missing)
	./scripts/test.sh

lint:            ## ruff
	./scripts/test.sh --version >/dev/null
	$(BIN)/ruff check matchstream transforms scripts tests

typecheck:       ## mypy on the package
	$(BIN)/mypy

check: lint typecheck test   ## lint + types + tests, as CI should

bench:           ## every benchmark; results go to docs/benchmarks*.md by hand
	@for b in scripts/bench*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

up down status:  ## matchstream up / down / status
	$(BIN)/matchstream $@
