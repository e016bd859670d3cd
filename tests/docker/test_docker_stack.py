"""The container demo on real SingleStore and Kafka, when a Docker daemon answers.

This is the only test of the suite allowed to skip, and only for that reason; set
REQUIRE_DOCKER=1 (e.g. in a CI job that has Docker) to turn the skip into a failure, so such a
job cannot pass by silently skipping. It runs scripts/docker_up.sh --reset exactly as
./setup.sh --docker does, under its own compose project name, then checks the result with SQL
and removes the stack and its volumes through testcontainers' DockerCompose.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.layout import DOCKER, DOCKER_UP, REPO

# A project of its own, so the developer's `matchstream` stack and volumes are left alone (the
# host ports are shared, so the script refuses to start while that stack runs).
PROJECT = "matchstream-test"
# Image build (TensorFlow wheels) + first boot + the pipelines working through both topics.
TIMEOUT_S = 3600


def docker_daemon() -> tuple[bool, str]:
    """Whether a Docker daemon answers, and if not why. `which docker` is not enough: the CLI
    exists on our machines while no daemon runs, and DOCKER_HOST may point anywhere."""
    try:
        import docker  # the Docker SDK, a dependency of testcontainers

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # ImportError, DockerException, ConnectionError, ...
        return False, f"no Docker daemon answers: {exc}"
    return True, ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    ok, reason = docker_daemon()
    if not ok:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(f"REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    from testcontainers.compose import DockerCompose

    password = os.urandom(12).hex()  # letters and digits only, as the image requires
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "SINGLESTORE_ROOT_PASSWORD": password,
    }
    with pytest.MonkeyPatch.context() as mp:
        # DockerCompose runs `docker compose` with this process's environment.
        mp.setenv("COMPOSE_PROJECT_NAME", PROJECT)
        mp.setenv("SINGLESTORE_ROOT_PASSWORD", password)
        compose = DockerCompose(context=str(DOCKER), compose_file_name="compose.yaml")
        try:
            subprocess.run(
                ["bash", str(DOCKER_UP), "--reset"], cwd=REPO, env=env, check=True,
                timeout=TIMEOUT_S,
            )
            yield compose
        finally:
            compose.stop(down=True)  # docker compose down --volumes


def query(compose, sql: str) -> list[list[str]]:
    # The password reaches the client through MYSQL_PWD, never its command line.
    script = 'MYSQL_PWD="$ROOT_PASSWORD" exec singlestore -h 127.0.0.1 -P 3306 -u root ' \
        '-D speed_dating --batch --skip-column-names -e "$1"'
    out, err, code = compose.exec_in_container(["sh", "-c", script, "sh", sql], "singlestore")
    assert code == 0, err
    return [line.split("\t") for line in out.splitlines() if line]


def data_rows(name: str) -> int:
    with (REPO / "data" / name).open(encoding="utf-8") as f:
        return sum(1 for _ in f) - 1  # minus the header


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 600)
def test_container_demo_scores_every_row_with_several_model_versions(stack) -> None:
    assert query(stack, "SELECT COUNT(*) FROM information_schema.PIPELINES_ERRORS") == [["0"]]
    states = dict(query(stack, "SELECT PIPELINE_NAME, STATE FROM information_schema.PIPELINES "
                               "WHERE DATABASE_NAME = 'speed_dating'"))
    assert states == {"training": "Running", "scoring": "Running", "outcomes": "Running",
                      "training_rejects": "Running", "scoring_rejects": "Running",
                      "outcomes_rejects": "Running", "alerts_published": "Running"}
    # The producer checks every row, so the demo sends no bad message.
    assert query(stack, "SELECT COUNT(*) FROM rejected_rows") == [["0"]]

    # Exactly one prediction per scoring row: nothing lost, nothing loaded twice.
    (n_predictions, n_ids), = query(stack, "SELECT COUNT(*), COUNT(DISTINCT id) FROM predictions")
    assert int(n_predictions) == int(n_ids) == data_rows("score.csv")
    # Every outcome sent (all but every 50th) is joined; the withheld ones are awaited.
    ((scored, awaiting),) = query(stack, "SELECT scored, awaiting_outcome FROM "
                                         "live_scoring_accuracy")
    withheld = data_rows("score_labels.csv") // 50
    assert (int(scored), int(awaiting)) == (data_rows("score.csv") - withheld, withheld)

    # Scoring ran while training published versions, so several versions were used.
    ((versions,),) = query(stack, "SELECT COUNT(DISTINCT model_version) FROM predictions")
    assert int(versions) > 1

    # train.py prints one metrics row per run, and SingleStore runs it once per batch
    # partition that has data: count those (PIPELINES_BATCHES has one row per batch partition;
    # the stack was not restarted, so its history is complete).
    ((metrics,),) = query(stack, "SELECT COUNT(*) FROM training_metrics")
    ((runs,),) = query(
        stack, "SELECT COUNT(*) FROM information_schema.PIPELINES_BATCHES "
               "WHERE DATABASE_NAME = 'speed_dating' AND PIPELINE_NAME = 'training' "
               "AND BATCH_STATE = 'Succeeded' AND BATCH_PARTITION_EXTRACTED_BYTES > 0")
    assert int(metrics) >= 1
    assert int(metrics) == int(runs)

    # The publisher's last round left nothing pending, and each alert is on the topic once:
    # as many messages as distinct ids loaded back (alerts_published skips duplicate ids).
    assert query(stack, "SELECT COUNT(*) FROM alerts_to_publish") == [["0"]]
    ((loaded,),) = query(stack, "SELECT COUNT(*) FROM alerts_published")
    out, err, code = stack.exec_in_container(
        ["/opt/kafka/bin/kafka-get-offsets.sh", "--bootstrap-server", "kafka:29092",
         "--topic", "alerts"], "kafka")
    assert code == 0, err
    on_topic = sum(int(line.rsplit(":", 1)[1]) for line in out.splitlines() if line.count(":") >= 2)
    assert int(loaded) > 0
    assert on_topic == int(loaded)


def test_daemon_probe_reports_a_reason_when_docker_is_unreachable(monkeypatch) -> None:
    # The skip reason must say why; point the SDK at a socket nothing listens on.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{Path('/nonexistent/docker.sock')}")
    ok, reason = docker_daemon()
    assert not ok and reason.startswith("no Docker daemon answers")
