"""scripts/docker_up.sh from pre-flight to summary against a fake ``docker`` that records every
call (its argv, and what it read on stdin) and answers like a healthy stack would.

No container runs, so this proves the script's own logic only: the order of its steps (the
scoring pipeline started only once the model volume has a ``LATEST``), that the SQL it applies
is exactly ``--print-sql``'s, and that the root password reaches no command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.layout import DOCKER_UP, read_vars, render_sql

PASSWORD = "0123456789abcdef0123456789abcdef"

FAKE_DOCKER = r'''#!{python}
import json, os, sys
argv = sys.argv[1:]
log = os.environ["FAKE_DOCKER_LOG"]
state = os.environ["FAKE_DOCKER_STATE"]

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
record(stdin=stdin)
if cmd and cmd[0].endswith("kafka-get-offsets.sh"):
    topic = cmd[cmd.index("--topic") + 1]
    print(f"{topic}:0:3\n{topic}:1:2")
elif cmd[:2] == ["sh", "-c"] and "--skip-column-names" in cmd:
    if "SUM(" in stdin:
        print(5)
    elif "`STATE`" in stdin:
        print("Running")
sys.exit(0)
'''


def run_script(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
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
        "SINGLESTORE_ROOT_PASSWORD": PASSWORD,  # so no docker/.env is written
    }
    proc = subprocess.run([shutil.which("bash") or "bash", str(DOCKER_UP), *args], env=env,
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
                                    "scoring_rejects", "outcomes_rejects"])
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
