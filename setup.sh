#!/usr/bin/env bash
# One command from a fresh clone to a running local stack and the main job.
#   ./setup.sh            local stack (Tansu broker, private MariaDB, pipeline engine)
#   ./setup.sh --docker   the container path: SingleStore + Kafka in Docker (docs/containers.md)
# Idempotent: a second run changes nothing and is fast.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "${1:-}" in
  "") ;;
  --docker)
    shift
    # The container path needs only Docker with Compose, bash and python3 on the host.
    exec "$ROOT/scripts/docker_up.sh" "$@" ;;
  -h|--help)
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
  *)
    echo "error: unknown option '$1' (try --help)" >&2
    exit 2 ;;
esac

# shellcheck source=scripts/bootstrap.sh
. "$ROOT/scripts/bootstrap.sh"
trap 'echo "setup.sh failed (see the message above); fix it and run ./setup.sh again" >&2' ERR
bootstrap

say "matchstream up"
"$VENV/bin/matchstream" up
echo
"$VENV/bin/matchstream" status
echo
say "matchstream demo (the main job; a second run prints the summary only)"
"$VENV/bin/matchstream" demo
echo
echo "Next: . .venv/bin/activate, then e.g. matchstream sql sql/queries/*.sql (README: Querying)."
echo "Dashboard: .venv/bin/matchstream dashboard, then open http://127.0.0.1:${MATCHSTREAM_DASHBOARD_PORT:-8765}/ (README: Dashboard)."
