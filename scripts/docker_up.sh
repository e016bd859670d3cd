#!/usr/bin/env bash
# The container path (./setup.sh --docker execs this): real SingleStore runs the pipelines and
# the transforms, real Apache Kafka carries the topics. Needs Docker with Compose v2 and python3
# (>= 3.11, standard library only) on the host; see docs/containers.md.
#
#   scripts/docker_up.sh            bring the stack up, apply sql/, start the pipelines, run the demo
#   scripts/docker_up.sh --no-demo  the same without producing data
#   scripts/docker_up.sh --reset    remove the stack and its volumes first, then start over
#   scripts/docker_up.sh --down     stop the stack and remove its volumes (models, data, topics)
#   scripts/docker_up.sh --print-sql  print sql/*.sql as SingleStore will get it, and exit
#   scripts/docker_up.sh --print-script-sql  print every other SQL statement this script sends
#   scripts/docker_up.sh --client   the SingleStore client in the container (SQL from stdin, e.g.
#                                   scripts/docker_up.sh --client < sql/queries/06_pipeline_health.sql)
#
# Idempotent: a second run keeps the data, re-applies sql/ and produces nothing new if the topics
# already hold messages. Secrets: SINGLESTORE_ROOT_PASSWORD (and optionally SINGLESTORE_LICENSE)
# from the shell or docker/.env, which is created with a random password if missing; the password
# is never on a command line (the client reads it from MYSQL_PWD inside the container).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER_DIR="$ROOT/docker"
COMPOSE_FILE="$DOCKER_DIR/compose.yaml"
ENV_FILE="$DOCKER_DIR/.env"
VARS_FILE="$DOCKER_DIR/pipeline-vars.env"
# Overridable only so tests can render other SQL through this very script.
SQL_DIR="${MATCHSTREAM_SQL_DIR:-$ROOT/sql}"

# Fixed by issue 5: the database sql/00_schema.sql creates and the pipelines/topics.
DATABASE="speed_dating"
TOPICS=(training scoring outcomes alerts)
# The demo's pipelines of sql/10_pipelines.sql; each reads the topic its name starts with (a
# reject pipeline records the bad messages its demo pipeline skips, in rejected_rows).
PIPELINES=(training scoring outcomes training_rejects scoring_rejects outcomes_rejects)
# The last one of sql/10_pipelines.sql loads the alerts topic back into the table of its name:
# the record the alerts publisher reads (publish_alerts) to publish each alert exactly once.
ALERTS_PIPELINE=alerts_published
ALERTS_TOPIC=alerts
# Partitions per topic: the dev image caps a database at 2 partitions, so more buys nothing.
TOPIC_PARTITIONS=2
# The free licence allows 8 cores at most (docs/containers.md, "Limits").
MAX_CPUS=8
# How long to wait for the first model version before the scoring pipeline starts anyway.
MODEL_TIMEOUT="${MATCHSTREAM_DOCKER_MODEL_TIMEOUT:-900}"
# Seconds for `compose up --wait` (a first boot under emulation is slow) and for the pipelines
# to catch up with the topics (every batch starts a Python process; training imports TensorFlow).
UP_TIMEOUT="${MATCHSTREAM_DOCKER_UP_TIMEOUT:-900}"
CATCHUP_TIMEOUT="${MATCHSTREAM_DOCKER_CATCHUP_TIMEOUT:-1800}"
# Rows per second for the training file, so scoring visibly uses newer and newer model versions.
TRAIN_RATE="${MATCHSTREAM_TRAIN_RATE:-200}"
# Like the local demo, every n-th true outcome is never sent: those predictions stay awaiting.
WITHHOLD_EVERY=50
# Seconds between the alerts publisher's rounds (`matchstream alerts` waits 2 s too).
ALERTS_INTERVAL="${MATCHSTREAM_DOCKER_ALERTS_INTERVAL:-2}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

demo=1 reset=0 down=0 print_sql=0 print_script_sql=0 client=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --reset) reset=1 ;;
    --down) down=1 ;;
    --print-sql) print_sql=1 ;;
    --print-script-sql) print_script_sql=1 ;;
    --client) client=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$arg' (try --help)" ;;
  esac
done

compose() {
  local args=(--project-directory "$DOCKER_DIR" -f "$COMPOSE_FILE")
  if [ -f "$ENV_FILE" ]; then args+=(--env-file "$ENV_FILE"); fi
  docker compose "${args[@]}" "$@"
}

# --- 1. pre-flight -------------------------------------------------------------------------
preflight() {
  command -v docker >/dev/null 2>&1 \
    || die "docker not found: install Docker (Engine or Desktop) with Compose v2, or run ./setup.sh for the local stack"
  docker compose version >/dev/null 2>&1 \
    || die "'docker compose' (Compose v2) not found: install the Compose plugin (the old docker-compose v1 is not supported)"
  docker info >/dev/null 2>&1 \
    || die "no Docker daemon answers ('docker info' failed): start Docker, or check DOCKER_HOST and your permissions"
  command -v python3 >/dev/null 2>&1 \
    || die "python3 not found: it fills the \${NAME} placeholders of sql/*.sql"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 >= 3.11 needed on the host (found $(python3 -V 2>&1))"
  if [ "$(uname -m)" = arm64 ] || [ "$(uname -m)" = aarch64 ]; then
    say "warning: SingleStore's image is amd64-only and runs emulated here (slow; on macOS < 26 set S2_DEV_TAG=0.2.62 in docker/.env: AlmaLinux 8, the build installs python3.12; see docs/containers.md)"
  fi
}

ensure_env_file() {
  if [ -f "$ENV_FILE" ] || [ -n "${SINGLESTORE_ROOT_PASSWORD:-}" ]; then return 0; fi
  say "creating docker/.env with a random SingleStore root password (untracked; see docker/.env.example)"
  local password
  # Letters and digits only: the image's start script expands the password unquoted.
  password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  (umask 077 && printf 'SINGLESTORE_ROOT_PASSWORD=%s\n' "$password" > "$ENV_FILE")
}

# min(8, CPUs of the Docker host): more fails the free licence, more than the host has fails Docker.
choose_cpus() {
  if [ -n "${SINGLESTORE_CPUS:-}" ]; then return 0; fi
  local ncpu
  ncpu="$(docker info --format '{{.NCPU}}' 2>/dev/null || echo "$MAX_CPUS")"
  [[ "$ncpu" =~ ^[0-9]+$ ]] || ncpu="$MAX_CPUS"
  if [ "$ncpu" -gt "$MAX_CPUS" ]; then ncpu="$MAX_CPUS"; fi
  export SINGLESTORE_CPUS="$ncpu"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Only when the stack is not already running (then the ports are ours): a clear message instead
# of Docker's "port is already allocated" halfway through the start.
check_ports() {
  if [ -n "$(compose ps -q --status running 2>/dev/null)" ]; then return 0; fi
  local port
  for port in 9092 "${SINGLESTORE_PORT:-3306}" "${SINGLESTORE_STUDIO_PORT:-8080}" "${SINGLESTORE_DATA_API_PORT:-9000}"; do
    if port_busy "$port"; then
      die "port $port on this host is in use. Kafka needs 9092 (the local stack uses it too: .venv/bin/matchstream down); set SINGLESTORE_PORT / SINGLESTORE_STUDIO_PORT / SINGLESTORE_DATA_API_PORT in docker/.env for the others"
    fi
  done
}

# --- 2. the stack --------------------------------------------------------------------------
stack_up() {
  say "docker compose up (build the SingleStore image, wait for both healthchecks; first time: many minutes)"
  local wait_args=(--wait)
  if docker compose up --help 2>/dev/null | grep -q -- '--wait-timeout'; then
    wait_args+=(--wait-timeout "$UP_TIMEOUT")
  fi
  compose up -d --build "${wait_args[@]}" \
    || die "the stack did not become healthy; see: docker compose -f docker/compose.yaml logs"
}

# SQL through the client in the SingleStore container. The password stays inside the container:
# its ROOT_PASSWORD becomes the client's MYSQL_PWD, so it is on no command line (not this host's,
# not the container's: `-p<password>` would show in ps there).
s2_sql() {
  # shellcheck disable=SC2016  # $ROOT_PASSWORD and $@ are expanded by the container's sh
  compose exec -T singlestore sh -c \
    'MYSQL_PWD="$ROOT_PASSWORD" exec singlestore -h 127.0.0.1 -P 3306 -u root "$@"' sh "$@"
}
s2_query() { s2_sql --batch --skip-column-names; }

# --client: stdin to the client (a table per result), or an interactive session on a terminal.
s2_client() {
  local tty=(-T)
  if [ -t 0 ] && [ -t 1 ]; then tty=(); fi
  # shellcheck disable=SC2016  # expanded by the container's sh
  compose exec "${tty[@]}" singlestore sh -c \
    'MYSQL_PWD="$ROOT_PASSWORD" exec singlestore -h 127.0.0.1 -P 3306 -u root --table'
}

var() {  # value of NAME in docker/pipeline-vars.env
  sed -n "s/^$1=//p" "$VARS_FILE" | tail -n 1
}

check_model_dir() {
  local model_dir
  model_dir="$(var MODEL_DIR)"
  [ -n "$model_dir" ] || die "MODEL_DIR missing from docker/pipeline-vars.env"
  compose exec -T singlestore test -w "$model_dir" \
    || die "$model_dir is not writable by the database user in the SingleStore container (volume 'models'); docker compose -f docker/compose.yaml down -v, then retry"
}

create_topics() {
  local topic
  for topic in "${TOPICS[@]}"; do
    say "topic $topic"
    compose exec -T kafka /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:29092 \
      --create --if-not-exists --topic "$topic" \
      --partitions "$TOPIC_PARTITIONS" --replication-factor 1 >/dev/null \
      || die "could not create topic $topic"
  done
}

# --- 3. sql/ -------------------------------------------------------------------------------
# Prints sql/*.sql in order with ${NAME} filled from docker/pipeline-vars.env. It uses the same
# substitution as `matchstream sql --var` (matchstream/ddl/script.py, standard library only, so
# no virtualenv is needed): an unknown placeholder fails with file:line:col. Each file is
# substituted whole, so line numbers in the client's errors still point into the files.
render_sql() {
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 - "$ROOT" "$VARS_FILE" "$@" <<'PY'
import os
import sys
from pathlib import Path

from matchstream.ddl.script import substitute
from matchstream.errors import MatchstreamError

variables = {}
for line in Path(sys.argv[2]).read_text(encoding="utf-8").splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        name, _, value = line.partition("=")
        variables[name.strip()] = value.strip()
try:
    for path in sys.argv[3:]:
        text = Path(path).read_text(encoding="utf-8")
        sys.stdout.write(substitute(text, variables, os.path.relpath(path, sys.argv[1])))
        if not text.endswith("\n"):
            sys.stdout.write("\n")
except MatchstreamError as exc:
    sys.exit(f"error: {exc}")
PY
}

# sql/*.sql in the order the glob sorts them (00_, 10_, 20_ ...); sql/queries/ is not applied.
SQL_FILES=()
find_sql() {
  local f
  for f in "$SQL_DIR"/*.sql; do [ -e "$f" ] && SQL_FILES+=("$f"); done
  [ "${#SQL_FILES[@]}" -gt 0 ] || die "no $SQL_DIR/*.sql files to apply"
}

apply_sql() {
  local line=1 f rendered
  find_sql
  rendered="$(render_sql "${SQL_FILES[@]}")" || die "could not fill the placeholders of sql/*.sql"
  say "applying ${SQL_FILES[*]##*/} (one session, in this order)"
  # One session, so a USE in an earlier file holds for the later ones, as in one `matchstream sql` run.
  if ! printf '%s\n' "$rendered" | s2_sql; then
    echo "the client's line numbers count through the files in order:" >&2
    for f in "${SQL_FILES[@]}"; do
      echo "  line $line: start of ${f#"$ROOT"/}" >&2
      line=$((line + $(wc -l < "$f")))
    done
    die "applying sql/ failed (see the SQL error above)"
  fi
}

# --- every other SQL statement the script sends ---------------------------------------------
# In one place, so --print-script-sql can show them and tests/docker/ can check them (quoted
# identifiers: SingleStore restricts far more words than MariaDB, e.g. ROW_COUNT, STATE, MINUTE).
# The arguments are this script's own constants (DATABASE, PIPELINES), never user input.
# shellcheck disable=SC2016  # the backquotes quote an identifier, nothing is expanded
sql_start() { printf 'START PIPELINE IF NOT RUNNING `%s`;\n' "$1"; }
sql_cursor_sum() {
  printf "SELECT COALESCE(SUM(\`SUCCESSFUL_CURSOR_OFFSET\`), 0) FROM \`information_schema\`.\`PIPELINES_CURSORS\` WHERE \`DATABASE_NAME\` = '%s' AND \`PIPELINE_NAME\` = '%s';\n" "$DATABASE" "$1"
}
sql_state() {
  printf "SELECT \`STATE\` FROM \`information_schema\`.\`PIPELINES\` WHERE \`DATABASE_NAME\` = '%s' AND \`PIPELINE_NAME\` = '%s';\n" "$DATABASE" "$1"
}
sql_errors() {
  printf "SELECT \`ERROR_TYPE\`, \`ERROR_MESSAGE\` FROM \`information_schema\`.\`PIPELINES_ERRORS\` WHERE \`DATABASE_NAME\` = '%s' AND \`PIPELINE_NAME\` = '%s' ORDER BY \`ERROR_UNIX_TIMESTAMP\` DESC LIMIT 5;\n" "$DATABASE" "$1"
}
# Per Kafka partition, the offset up to which the pipeline has loaded and committed (exclusive).
# SUCCESSFUL_CURSOR_OFFSET, not CURSOR_OFFSET: the docs define CURSOR_OFFSET as the next offset
# to load, which runs ahead of it while a batch is in flight or failed, and rows not committed
# yet are not in alerts_published for alerts_to_publish to leave out. NULL counts as nothing.
sql_partition_cursors() {
  printf "SELECT \`SOURCE_PARTITION_ID\`, COALESCE(\`SUCCESSFUL_CURSOR_OFFSET\`, 0) FROM \`information_schema\`.\`PIPELINES_CURSORS\` WHERE \`DATABASE_NAME\` = '%s' AND \`PIPELINE_NAME\` = '%s';\n" "$DATABASE" "$1"
}
sql_summary() {
  cat <<'SQL'
SELECT 'training_metrics' AS `table_name`, COUNT(*) AS `row_count` FROM `training_metrics`
UNION ALL SELECT 'predictions', COUNT(*) FROM `predictions`
UNION ALL SELECT 'outcomes', COUNT(*) FROM `outcomes`
UNION ALL SELECT 'rejected_rows', COUNT(*) FROM `rejected_rows`
UNION ALL SELECT 'match_alerts', COUNT(*) FROM `match_alerts`
UNION ALL SELECT 'alerts_published', COUNT(*) FROM `alerts_published`
UNION ALL SELECT 'alerts_to_publish', COUNT(*) FROM `alerts_to_publish`;
SELECT COUNT(DISTINCT `model_version`) AS `model_versions_used_for_scoring` FROM `predictions`;
SELECT `scored`, `awaiting_outcome`, ROUND(`auc`, 3) AS `auc`, ROUND(`accuracy`, 3) AS `accuracy`,
       ROUND(`accuracy_baseline`, 3) AS `always_no_match`, ROUND(`precision`, 3) AS `precision`,
       ROUND(`recall`, 3) AS `recall`
FROM `live_scoring_accuracy`;
SQL
}

# The publisher's statement is sql/alerts/publish.sql (the one `matchstream alerts` runs), rendered
# like sql/; printed here too, since this script sends it.
print_script_sql() {
  local pipeline
  for pipeline in "${PIPELINES[@]}"; do
    sql_start "$pipeline"; sql_cursor_sum "$pipeline"; sql_state "$pipeline"; sql_errors "$pipeline"
  done
  sql_start "$ALERTS_PIPELINE"; sql_partition_cursors "$ALERTS_PIPELINE"
  sql_state "$ALERTS_PIPELINE"; sql_errors "$ALERTS_PIPELINE"
  load_publish_sql; printf '%s\n' "$PUBLISH_SQL"
  sql_summary
}

start_pipeline() {
  say "START PIPELINE $1"
  sql_start "$1" | s2_sql -D "$DATABASE" || die "could not start pipeline $1"
}

# Every pipeline but scoring, which starts once a model version exists (start_scoring); with
# alerts_published among them, which the alerts publisher needs running (publish_alerts). On 9.0 a
# failed batch is retried with exponential back-off (retry_options: first wait BATCH_INTERVAL, at
# most 10x that, pipelines_max_retries_per_batch_partition tries), and each try of score.py waits
# --wait-for-model 60 s for a model. Scoring rows that arrive first would put the pipeline in
# Error (and rows in PIPELINES_ERRORS) if training takes minutes, as it can under emulation.
start_pipelines() {
  local pipeline
  for pipeline in "${PIPELINES[@]}" "$ALERTS_PIPELINE"; do
    [ "$pipeline" = scoring ] || start_pipeline "$pipeline"
  done
}

model_published() { compose exec -T singlestore test -f "$(var MODEL_DIR)/LATEST"; }

# The demo's background producer, while it runs (run_demo); start_scoring reaps it if it ends
# first, so a failed producer stops the wait for a model at once.
PRODUCER_PID=""

# $1 = wait: wait up to MODEL_TIMEOUT for training to publish the first version first.
start_scoring() {
  local deadline=$((SECONDS + MODEL_TIMEOUT))
  if [ "${1:-}" = wait ]; then
    say "waiting for the first model version before starting the scoring pipeline"
    until model_published; do
      if [ -n "$PRODUCER_PID" ] && ! kill -0 "$PRODUCER_PID" 2>/dev/null; then
        wait "$PRODUCER_PID" || die "producing the demo data failed"
        PRODUCER_PID=""
      fi
      [ "$SECONDS" -lt "$deadline" ] \
        || die "no model version in $(var MODEL_DIR) after ${MODEL_TIMEOUT}s: is the training pipeline loading? (scripts/docker_up.sh --client <<< 'SELECT * FROM information_schema.PIPELINES_ERRORS')"
      sleep 2
    done
  elif ! model_published; then
    say "no model version yet: scoring batches wait for one (score.py --wait-for-model 60, then the batch is retried); produce training data first"
  fi
  start_pipeline scoring
}

# --- 4. the demo ---------------------------------------------------------------------------
# Sum of the end offsets of a topic's partitions (= messages ever produced to it).
topic_end() {
  compose exec -T kafka /opt/kafka/bin/kafka-get-offsets.sh --bootstrap-server kafka:29092 \
    --topic "$1" | awk -F: '{ s += $NF } END { print s + 0 }'
}

# One topic's CSV without its header, as "key<TAB>row" lines keyed by the spec's id column,
# through the console producer on the broker's host listener (localhost:9092 is that listener
# inside the Kafka container too): the fallback when .venv/bin/matchstream has no produce command.
console_produce() {
  local topic="$1" file="$2" id_column
  id_column="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$ROOT/data/features.json")"
  awk -F, -v OFS='\t' -v col="$id_column" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) k = i; if (!k) exit 2; next }
    { sub(/\r$/, ""); print $k, $0 }' "$file" \
  | compose exec -T kafka /opt/kafka/bin/kafka-console-producer.sh \
      --bootstrap-server localhost:9092 --topic "$topic" \
      --property parse.key=true --property "key.separator=$(printf '\t')"
}

produce_data() {
  local matchstream="$ROOT/.venv/bin/matchstream" pids=() pid failed=0 outcomes
  # The true outcomes, sent once scoring is sent (they come in after their predictions), without
  # every WITHHOLD_EVERY-th data row.
  outcomes="$(mktemp)"
  # shellcheck disable=SC2064  # expand now: the path is fixed
  trap "rm -f '$outcomes'" EXIT
  awk -v n="$WITHHOLD_EVERY" 'NR == 1 || (NR - 1) % n != 0' "$ROOT/data/score_labels.csv" > "$outcomes"
  if [ -x "$matchstream" ] && "$matchstream" produce --help >/dev/null 2>&1; then
    # .venv is created by ./setup.sh; the producer checks every row against the feature spec.
    say "producing data/train.csv (at $TRAIN_RATE rows/s) and data/score.csv, then the outcomes, with matchstream produce to localhost:9092"
    MATCHSTREAM_HOST=localhost MATCHSTREAM_KAFKA_PORT=9092 \
      "$matchstream" produce training "$ROOT/data/train.csv" --rate "$TRAIN_RATE" & pids+=($!)
    { MATCHSTREAM_HOST=localhost MATCHSTREAM_KAFKA_PORT=9092 \
        "$matchstream" produce scoring "$ROOT/data/score.csv" \
      && MATCHSTREAM_HOST=localhost MATCHSTREAM_KAFKA_PORT=9092 \
        "$matchstream" produce outcomes "$outcomes"; } & pids+=($!)
  else
    say "producing with Kafka's console producer (no .venv/bin/matchstream produce; ./setup.sh creates .venv)"
    console_produce training "$ROOT/data/train.csv" & pids+=($!)
    { console_produce scoring "$ROOT/data/score.csv" && console_produce outcomes "$outcomes"; } & pids+=($!)
  fi
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || die "producing the demo data failed"
}

# Waits until every pipeline has committed up to its topic's end offsets (the cursors, not a
# sleep), failing early with PIPELINES_ERRORS when a pipeline is in state Error.
wait_for_pipelines() {
  local deadline=$((SECONDS + CATCHUP_TIMEOUT)) pipeline topic end done_offset state
  for pipeline in "${PIPELINES[@]}"; do
    topic="${pipeline%_rejects}"
    end="$(topic_end "$topic")"
    say "waiting for pipeline $pipeline to load $end messages"
    while :; do
      done_offset="$(sql_cursor_sum "$pipeline" | s2_query)"
      [ "${done_offset:-0}" -ge "$end" ] && break
      state="$(sql_state "$pipeline" | s2_query)"
      if [ "$state" = Error ]; then
        sql_errors "$pipeline" | s2_sql >&2 || true
        die "pipeline $pipeline is in state Error (errors above; README: troubleshooting)"
      fi
      [ "$SECONDS" -lt "$deadline" ] || die "pipeline $pipeline loaded ${done_offset:-0} of $end messages in ${CATCHUP_TIMEOUT}s"
      sleep 2
    done
  done
}

# --- 5. the alerts publisher ---------------------------------------------------------------
# What `matchstream alerts` (matchstream/alerts.py) does on the local stack, for SingleStore. The
# alerts topic is the record of what was published: alerts_published loads it back into the
# table of that name (primary key the id). A round publishes (sql/alerts/publish.sql, SELECT ...
# INTO KAFKA of alerts_to_publish: match_alerts without the ids in alerts_published) only when
# every partition's cursor has reached the topic's end offset, so the table then holds every id
# on the topic and nothing is sent twice, also not after a round that died half way. It relies
# on one publisher at a time: one docker_up.sh per stack (the demo's producer assumes it too).
PUBLISH_SQL=""  # sql/alerts/publish.sql, rendered by load_publish_sql
ALERTS_LAG=""   # messages of the topic alerts_published has not loaded, set by alerts_lag
ALERTS_PID=""   # the background publisher of the demo (start_alerts_publisher)
ALERTS_RUN_DIR=""

load_publish_sql() {
  PUBLISH_SQL="$(render_sql "$SQL_DIR/alerts/publish.sql")" \
    || die "could not fill the placeholders of sql/alerts/publish.sql"
}

# Prints how many messages of the alerts topic the pipeline has not loaded yet, per partition:
# end offset (kafka-get-offsets.sh: topic:partition:offset) minus the cursor (partition<TAB>
# offset; a partition without a cursor row has loaded nothing). Fails on a topic without
# partitions or a look that failed.
alerts_behind() {
  local ends cursors
  ends="$(compose exec -T kafka /opt/kafka/bin/kafka-get-offsets.sh --bootstrap-server kafka:29092 \
    --topic "$ALERTS_TOPIC")" \
    || { say "could not read the end offsets of topic $ALERTS_TOPIC"; return 1; }
  cursors="$(sql_partition_cursors "$ALERTS_PIPELINE" | s2_query)" \
    || { say "could not read the cursors of pipeline $ALERTS_PIPELINE"; return 1; }
  { printf '%s\n' "$ends" | awk -F: 'NF >= 3 && $(NF-1) ~ /^[0-9]+$/ && $NF ~ /^[0-9]+$/ {
      print "end", $(NF-1), $NF }'
    printf '%s\n' "$cursors" | awk -F'\t' 'NF == 2 { print "cursor", $1, $2 }'
  } | awk -v topic="$ALERTS_TOPIC" '
    $1 == "end" { end[$2] = $3; n++ }
    $1 == "cursor" { cursor[$2] = $3 }
    END {
      if (!n) { print "error: topic " topic " has no partitions" > "/dev/stderr"; exit 1 }
      for (p in end) { d = end[p] - ((p in cursor) ? cursor[p] : 0); if (d > 0) behind += d }
      print behind + 0
    }'
}

# Sets ALERTS_LAG (0: caught up). A pipeline that is behind and not Running cannot catch up by
# itself, and publishing then could send again what it has not loaded: that ends the publisher
# (die; in the background publisher, its subshell) with PIPELINES_ERRORS. A failed look returns 1.
alerts_lag() {
  local state
  ALERTS_LAG="$(alerts_behind)" && [[ "$ALERTS_LAG" =~ ^[0-9]+$ ]] || { ALERTS_LAG=""; return 1; }
  [ "$ALERTS_LAG" -gt 0 ] || return 0
  state="$(sql_state "$ALERTS_PIPELINE" | s2_query)" || return 1
  if [ "$state" != Running ]; then
    sql_errors "$ALERTS_PIPELINE" | s2_sql >&2 || true
    die "pipeline $ALERTS_PIPELINE is ${state:-missing}, $ALERTS_LAG messages behind topic $ALERTS_TOPIC: not publishing alerts, that could publish again what it has not loaded (errors above; then START PIPELINE IF NOT RUNNING $ALERTS_PIPELINE)"
  fi
}

publish_alerts() {
  printf '%s\n' "$PUBLISH_SQL" | s2_sql -D "$DATABASE"
}

# The demo's background publisher: a round every ALERTS_INTERVAL seconds, publishing only when
# caught up, until the stop file appears or this script is gone. It stops only between rounds,
# never during a publish, so the last round of the demo is the only publisher when it runs.
alerts_publisher() {
  while [ ! -e "$ALERTS_RUN_DIR/stop" ] && kill -0 "$$" 2>/dev/null; do
    if alerts_lag && [ "$ALERTS_LAG" -eq 0 ]; then
      publish_alerts || say "publishing alerts failed; the next round loads back what reached the topic, then publishes the rest"
    fi
    sleep "$ALERTS_INTERVAL"
  done
}

start_alerts_publisher() {
  say "publishing alerts to topic $ALERTS_TOPIC every ${ALERTS_INTERVAL}s, each once the pipeline $ALERTS_PIPELINE has loaded the topic back"
  ALERTS_RUN_DIR="$(mktemp -d)"
  # Ctrl-C or a kill stops the script through its EXIT trap, which stops the publisher too (a
  # background job ignores Ctrl-C).
  trap 'stop_alerts_publisher || true' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  alerts_publisher & ALERTS_PID=$!
}

# Waits for the publisher's round in progress to finish; fails if it ended on an error.
stop_alerts_publisher() {
  local pid="$ALERTS_PID" status=0
  [ -n "$pid" ] || return 0
  ALERTS_PID=""
  : > "$ALERTS_RUN_DIR/stop"
  wait "$pid" || status=$?
  rm -rf "$ALERTS_RUN_DIR"
  return "$status"
}

# Until alerts_published has loaded the whole topic, at most CATCHUP_TIMEOUT seconds.
wait_for_alerts_loaded() {
  local deadline=$((SECONDS + CATCHUP_TIMEOUT))
  until alerts_lag && [ "$ALERTS_LAG" -eq 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] \
      || die "pipeline $ALERTS_PIPELINE is still ${ALERTS_LAG:-an unknown number of} messages behind topic $ALERTS_TOPIC after ${CATCHUP_TIMEOUT}s"
    sleep "$ALERTS_INTERVAL"
  done
}

# The demo's last round, in the foreground once scoring is done: catch up, publish what is left,
# then wait until that is loaded back too, so the summary's pending count is final.
final_alerts_round() {
  say "last alerts round: waiting for pipeline $ALERTS_PIPELINE to load topic $ALERTS_TOPIC, then publishing what is left"
  wait_for_alerts_loaded
  publish_alerts || die "publishing alerts failed (SQL error above)"
  wait_for_alerts_loaded
}

summary() {
  say "summary"
  sql_summary | s2_sql -D "$DATABASE" --table
  say "topic $ALERTS_TOPIC holds $(topic_end "$ALERTS_TOPIC") alerts (alerts_to_publish above: those not on it yet)"
}

run_demo() {
  local end_training end_scoring
  load_publish_sql
  start_alerts_publisher
  end_training="$(topic_end training)"
  end_scoring="$(topic_end scoring)"
  if [ "$end_training" -gt 0 ] || [ "$end_scoring" -gt 0 ]; then
    say "the topics already hold messages ($end_training training, $end_scoring scoring): not producing again (--reset starts over)"
    start_scoring wait
  else
    # Produce in the background so scoring can start as soon as training has published v1.
    produce_data & PRODUCER_PID=$!
    start_scoring wait
    if [ -n "$PRODUCER_PID" ]; then
      wait "$PRODUCER_PID" || die "producing the demo data failed"
      PRODUCER_PID=""
    fi
  fi
  wait_for_pipelines
  stop_alerts_publisher \
    || say "warning: the background alerts publisher stopped on an error (above); the last round tries again"
  final_alerts_round
  summary
}

main() {
  if [ "$print_sql" -eq 1 ]; then find_sql; render_sql "${SQL_FILES[@]}"; return; fi
  if [ "$print_script_sql" -eq 1 ]; then print_script_sql; return; fi
  preflight
  if [ "$client" -eq 1 ]; then s2_client; return; fi
  if [ "$down" -eq 1 ] || [ "$reset" -eq 1 ]; then
    say "docker compose down -v (stack, models, data and topics)"
    # Compose checks the required password variable on every command, even `down`, which never
    # uses it: a placeholder keeps --down working without docker/.env.
    SINGLESTORE_ROOT_PASSWORD="${SINGLESTORE_ROOT_PASSWORD:-unused0by0down}" \
      compose down -v --remove-orphans
    [ "$down" -eq 1 ] && return 0
  fi
  ensure_env_file
  choose_cpus
  check_ports
  stack_up
  check_model_dir
  create_topics
  apply_sql
  start_pipelines
  if [ "$demo" -eq 1 ]; then run_demo; else start_scoring; fi
  cat >&2 <<EOF

SingleStore: scripts/docker_up.sh --client   (or: mysql -h 127.0.0.1 -P ${SINGLESTORE_PORT:-3306} -u root -p, which prompts;
             the password is SINGLESTORE_ROOT_PASSWORD in docker/.env)
Queries:     scripts/docker_up.sh --client < sql/queries/01_latest_model.sql   (any sql/queries/ file)
Studio:      http://localhost:${SINGLESTORE_STUDIO_PORT:-8080}
Kafka:       localhost:9092 from this host, kafka:29092 from containers
Stop:        scripts/docker_up.sh --down   (removes the volumes too)
EOF
}

main
