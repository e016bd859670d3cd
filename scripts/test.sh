#!/usr/bin/env bash
# The README's test command: bootstraps .venv if needed, then runs the whole test suite.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/unit -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
bootstrap
bootstrap_test_tools
cd "$ROOT"
# The test session starts its own private stack on free ports: a developer's MATCHSTREAM_*
# settings must not leak into it.
unset MATCHSTREAM_STATE_DIR MATCHSTREAM_KAFKA_PORT MATCHSTREAM_DB_PORT MATCHSTREAM_HOST
exec "$VENV/bin/python" -m pytest "$@"
