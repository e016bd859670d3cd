"""scripts/docker_up.sh from pre-flight to summary against a fake ``docker`` that records every
call (its argv, and what it read on stdin) and answers like a healthy stack would.

No container runs, so this proves the script's own logic only: the order of its steps (the
scoring pipeline started only once the model volume has a ``LATEST``; an alert published only
once the pipeline alerts_published has loaded the alerts topic up to its end), that the SQL it
applies is exactly ``--print-sql``'s, and that the root password reaches no command line.

The fake's alerts topic starts with 3 + 2 messages (partitions 0 and 1). After every change of
its end (a publish adds one message to each partition) the cursor query answers twice with
partition 1 one message behind, then with the end: the script must wait through the lag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.layout import DOCKER_UP, REPO, read_vars, render_sql, render_sql_file

PUBLISH_SQL = REPO / "sql" / "alerts" / "publish.sql"

PASSWORD = "0123456789abcdef0123456789abcdef"

FAKE_DOCKER = r'''#!{python}
import fcntl, json, os, sys
argv = sys.argv[1:]
log = os.environ["FAKE_DOCKER_LOG"]
state = os.environ["FAKE_DOCKER_STATE"]
alerts_state = os.environ["FAKE_DOCKER_ALERTS"]
# The state of alerts_published: Running, or e.g. Error (then its cursor never catches up).
alerts_pipeline = os.environ.get("FAKE_ALERTS_PIPELINE_STATE", "Running")

def alerts(change=None):
    """The alerts topic's ends and the looks left until the cursor catches up (locked: the
    script's background publisher runs beside its main flow)."""
    with open(alerts_state, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        now = json.loads(text) if text else {"end": [3, 2], "lag_looks": 2}
        if change:
            change(now)
            f.seek(0); f.truncate(); f.write(json.dumps(now))
        return now

def record(**extra):
    with open(log, "a") as f:
        f.write(json.dumps({"argv": argv, **extra}) + "\n")

if argv[:1] == ["info"]:
    record()
    if "--format" in argv:
        print(4)
    sys.exit(0)
if argv[:2] == ["compose", "version"]:
    sys.exit(0)
rest = argv[1:]
while rest and rest[0] in ("--project-directory", "-f", "--env-file"):
    rest = rest[2:]
command = rest[0]
if command == "ps":
    record(); print("fake-container-id"); sys.exit(0)
if command == "up":
    record()
    if "--help" in rest:
        print("  --wait-timeout int")
    sys.exit(0)
if command != "exec":
    record(); sys.exit(0)
rest = [a for a in rest[1:] if a != "-T"]
service, cmd = rest[0], rest[1:]
stdin = sys.stdin.read() if not sys.stdin.isatty() else ""
if cmd[:2] == ["test", "-f"]:
    # LATEST appears on the third look: training "publishes" after two polls.
    looks = int(open(state).read() or 0) + 1 if os.path.exists(state) else 1
    open(state, "w").write(str(looks))
    record(stdin=stdin, ok=looks >= 3)
    sys.exit(0 if looks >= 3 else 1)
if cmd and cmd[0].endswith("kafka-get-offsets.sh"):
    topic = cmd[cmd.index("--topic") + 1]
    ends = alerts()["end"] if topic == "alerts" else [3, 2]
    record(stdin=stdin, ends=ends)
    print("\n".join(f"{topic}:{p}:{end}" for p, end in enumerate(ends)))
    sys.exit(0)
code = "\n".join(line for line in stdin.splitlines() if not line.lstrip().startswith("--"))
if code.lstrip().startswith("SELECT") and "INTO KAFKA" in code:
    # The publish: one more message on each partition, and the cursor lags again.
    def publish(now):
        now["end"] = [end + 1 for end in now["end"]]
        now["lag_looks"] = 2
    record(stdin=stdin, ends_before=alerts()["end"])
    alerts(publish)
    sys.exit(0)
if cmd[:2] == ["sh", "-c"] and "--skip-column-names" in cmd and "= 'alerts_published'" in stdin:
    if "`SOURCE_PARTITION_ID`" in stdin:
        def look(now):
            lagging = now["lag_looks"] > 0 or alerts_pipeline != "Running"
            now["lag_looks"] -= 1
            now["cursors"] = [now["end"][0], now["end"][1] - 1 if lagging else now["end"][1]]
        now = alerts(look)
        record(stdin=stdin, cursors=now["cursors"], caught_up=now["cursors"] == now["end"])
        print("\n".join(f"{p}\t{c}" for p, c in enumerate(now["cursors"])))
    else:
        record(stdin=stdin)
        if "`STATE`" in stdin:
            print(alerts_pipeline)
    sys.exit(0)
record(stdin=stdin)
if cmd[:2] == ["sh", "-c"] and "--skip-column-names" in cmd:
    if "SUM(" in stdin:
        print(5)
    elif "`STATE`" in stdin:
        print("Running")
sys.exit(0)
'''


def run_script(tmp_path: Path, *args: str, script: Path = DOCKER_UP,
               env_extra: dict[str, str] | None = None,
               ) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.replace("{python}", sys.executable))
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MATCHSTREAM_", "SINGLE"))},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DOCKER_LOG": str(log),
        "FAKE_DOCKER_STATE": str(tmp_path / "latest-looks"),
        "FAKE_DOCKER_ALERTS": str(tmp_path / "alerts.json"),
        "SINGLESTORE_ROOT_PASSWORD": PASSWORD,  # so no docker/.env is written
        "MATCHSTREAM_DOCKER_ALERTS_INTERVAL": "0.2",
        **(env_extra or {}),
    }
    proc = subprocess.run([shutil.which("bash") or "bash", str(script), *args], env=env,
                          capture_output=True, text=True, check=False, timeout=300)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def starts(calls: list[dict]) -> list[tuple[int, str]]:
    return [(i, c["stdin"].split("`")[1]) for i, c in enumerate(calls)
            if c.get("stdin", "").startswith("START PIPELINE")]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    return run_script(tmp_path_factory.mktemp("flow"))


def test_the_demo_runs_through(demo_run) -> None:
    proc, calls = demo_run
    assert proc.returncode == 0, proc.stderr
    assert "waiting for the first model version" in proc.stderr
    assert "==> summary" in proc.stderr


def test_the_password_is_on_no_command_line(demo_run) -> None:
    _, calls = demo_run
    assert calls
    for call in calls:
        assert PASSWORD not in " ".join(call["argv"])
    scripts = [c["argv"][c["argv"].index("-c") + 1] for c in calls if "-c" in c["argv"]]
    assert scripts and all('MYSQL_PWD="$ROOT_PASSWORD"' in s and " -p" not in s
                           for s in scripts)


def test_the_sql_applied_is_the_printed_sql(demo_run) -> None:
    _, calls = demo_run
    applied = [c["stdin"] for c in calls if "CREATE OR REPLACE PIPELINE" in c.get("stdin", "")]
    assert len(applied) == 1
    assert applied[0].rstrip("\n") == render_sql().rstrip("\n")


def test_scoring_starts_only_once_a_model_version_exists(demo_run) -> None:
    _, calls = demo_run
    started = starts(calls)
    names = [name for _, name in started]
    assert sorted(names) == sorted(["training", "scoring", "outcomes", "training_rejects",
                                    "scoring_rejects", "outcomes_rejects", "alerts_published"])
    assert names[-1] == "scoring"
    latest = f"{read_vars()['MODEL_DIR']}/LATEST"
    looks = [(i, c["ok"]) for i, c in enumerate(calls) if latest in c["argv"]]
    first_ok = next(i for i, ok in looks if ok)
    scoring_at = started[-1][0]
    assert [ok for _, ok in looks] == [False, False, True]
    assert first_ok < scoring_at
    assert all(i < looks[0][0] for i, _ in started[:-1])


def test_without_the_demo_scoring_starts_at_once_and_says_why(tmp_path: Path) -> None:
    proc, calls = run_script(tmp_path, "--no-demo")
    assert proc.returncode == 0, proc.stderr
    assert "no model version yet" in proc.stderr
    assert [name for _, name in starts(calls)][-1] == "scoring"


# --- the alerts publisher -------------------------------------------------------------------


def is_publish(call: dict) -> bool:
    """The publish statement, as the fake tells it (sql/ mentions INTO KAFKA in comments)."""
    return "ends_before" in call


def publishes_before_catching_up(calls: list[dict]) -> list[str]:
    """Each publish not preceded, since the previous one, by a read of the alerts topic's ends
    and then a cursor look that had reached them."""
    wrong, ends_read, caught_up = [], False, False
    for i, call in enumerate(calls):
        argv = call["argv"]
        if "--topic" in argv and argv[argv.index("--topic") + 1] == "alerts":
            ends_read, caught_up = True, False
        elif "caught_up" in call:
            caught_up = ends_read and call["caught_up"]
        elif is_publish(call):
            if not caught_up:
                wrong.append(f"call {i}: published with the topic at {call['ends_before']}")
            ends_read = caught_up = False
    return wrong


def test_alerts_published_is_started_after_the_tables_exist(demo_run) -> None:
    _, calls = demo_run
    applied = next(i for i, c in enumerate(calls)
                   if "CREATE OR REPLACE PIPELINE" in c.get("stdin", ""))
    (started,) = [i for i, name in starts(calls) if name == "alerts_published"]
    assert applied < started
    assert "CREATE TABLE IF NOT EXISTS alerts_published" in calls[applied]["stdin"]


def test_alerts_are_published_only_once_the_cursors_reach_the_topic_end(demo_run) -> None:
    proc, calls = demo_run
    published = [c for c in calls if is_publish(c)]
    looks = [c["caught_up"] for c in calls if "caught_up" in c]
    assert published, proc.stderr
    # The fake's cursor lagged and then caught up, and the script waited through the lag.
    assert False in looks and True in looks
    assert not looks[0], "the first look lags (the fake's topic has 5 messages not loaded)"
    assert publishes_before_catching_up(calls) == []
    # The statement is sql/alerts/publish.sql as rendered for the container, on speed_dating.
    assert published[0]["stdin"].rstrip("\n") == render_sql_file(PUBLISH_SQL).rstrip("\n")
    assert all(c["argv"][-2:] == ["-D", "speed_dating"] for c in published)
    # The last round waited for its own alerts to be loaded back before the summary.
    last = max(i for i, c in enumerate(calls) if is_publish(c))
    summary = next(i for i, c in enumerate(calls) if "`alerts_to_publish`" in c.get("stdin", ""))
    assert any(c.get("caught_up") for c in calls[last:summary])


def test_the_summary_reports_the_alerts(demo_run) -> None:
    proc, calls = demo_run
    (summary,) = [c["stdin"] for c in calls if "`alerts_to_publish`" in c.get("stdin", "")]
    assert "`match_alerts`" in summary and "`alerts_published`" in summary
    ends = [c["ends"] for c in calls if "ends" in c and "alerts" in c["argv"]][-1]
    assert f"topic alerts holds {sum(ends)} alerts" in proc.stderr


def test_the_publisher_is_stopped_before_the_script_ends(demo_run) -> None:
    proc, calls = demo_run
    # Nothing of the publisher is left: the fake docker was last called for the summary's
    # topic count, and no call came from a publisher round after the last round's.
    alerts_calls = [i for i, c in enumerate(calls) if "caught_up" in c or is_publish(c)]
    summary = next(i for i, c in enumerate(calls) if "`alerts_to_publish`" in c.get("stdin", ""))
    assert alerts_calls and max(alerts_calls) < summary


def test_the_check_catches_a_publisher_that_does_not_wait(tmp_path: Path) -> None:
    # The script with its catch-up check broken (a lag of any size counts as caught up), run in
    # a copy of the repository's layout: the ordering check above must fail on it.
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    for name in ("docker", "sql", "matchstream", "data"):
        (copy / name).symlink_to(REPO / name)
    text = DOCKER_UP.read_text(encoding="utf-8")
    broken = text.replace('[ "$ALERTS_LAG" -eq 0 ]', '[ "$ALERTS_LAG" -ge 0 ]')
    assert broken.count("-ge 0 ]") == 2
    (copy / "scripts" / "docker_up.sh").write_text(broken, encoding="utf-8")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc, calls = run_script(run_dir, script=copy / "scripts" / "docker_up.sh")
    assert proc.returncode == 0, proc.stderr
    assert publishes_before_catching_up(calls)


def test_a_failed_alerts_pipeline_stops_the_publisher_without_publishing(tmp_path: Path) -> None:
    proc, calls = run_script(tmp_path, env_extra={"FAKE_ALERTS_PIPELINE_STATE": "Error"})
    assert proc.returncode != 0
    assert "pipeline alerts_published is Error, 1 messages behind topic alerts" in proc.stderr
    assert not any(is_publish(c) for c in calls)
    # Its errors were shown, and the summary never ran.
    assert any("`PIPELINES_ERRORS`" in c.get("stdin", "") and "'alerts_published'" in c["stdin"]
               for c in calls)
    assert "==> summary" not in proc.stderr
