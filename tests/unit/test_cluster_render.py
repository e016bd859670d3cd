"""sql/ as ``matchstream cluster apply`` renders it, checked without a cluster: every pipeline
statement parsed with matchstream's own parser, each transform the archive form of SingleStore's
WITH TRANSFORM naming a program the packed archive holds, and secrets only where they belong."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from matchstream.cluster.archive import pack
from matchstream.cluster.config import load_config
from matchstream.cluster.errors import ClusterRenderError
from matchstream.cluster.render import HIDDEN, render_cluster_sql
from matchstream.ddl import ScriptError, ast, parse_statement
from matchstream.stack.ports import free_port
from tests.unit.cluster_files import (
    ARCHIVE_URI,
    BASE,
    KAFKA_SECRET,
    PASSWORD,
    WITH_KAFKA_AUTH,
    write,
)

REPO = Path(__file__).resolve().parents[2]
SQL = REPO / "sql"
# The pipelines of sql/10_pipelines.sql and the transform each runs.
PROGRAMS = {"training": "train.py", "scoring": "score.py", "outcomes": "outcomes.py",
            "training_rejects": "rejects.py", "scoring_rejects": "rejects.py",
            "outcomes_rejects": "rejects.py"}


def pipelines(statements) -> dict[str, ast.CreatePipeline]:
    result = {}
    for stmt in statements:
        if stmt.pipeline is not None:
            node = parse_statement(stmt.text)
            assert isinstance(node, ast.CreatePipeline)
            result[node.name] = node
    return result


def test_every_pipeline_runs_a_program_of_the_archive(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    nodes = pipelines(render_cluster_sql(config, SQL))
    assert {name: n.transform.program for name, n in nodes.items() if n.transform} == PROGRAMS
    with tarfile.open(pack(tmp_path / "a.tar.gz")) as archive:
        names = set(archive.getnames())
    # alerts_published loads what SELECT ... INTO KAFKA wrote: plain tab-separated lines.
    assert [name for name, n in nodes.items() if n.transform is None] == ["alerts_published"]
    for name, node in nodes.items():
        if node.transform is None:
            continue
        assert node.transform.uri == ARCHIVE_URI and ARCHIVE_URI.endswith(".tar.gz")
        assert node.transform.program in names, (name, node.transform.program)
        assert node.source.brokers == ("kafka-1.example.com:9092", "kafka-2.example.com:9093")
        assert node.source.topic == name.removesuffix("_rejects")
        args = node.transform.argv_tail()
        if "--model-dir" in args:
            assert args[args.index("--model-dir") + 1] == "/mnt/matchstream/models"
        if "--spec" in args:
            assert args[args.index("--spec") + 1] == "/mnt/matchstream/features.json"
    assert "--model-dir" in nodes["training"].transform.argv_tail()  # type: ignore[union-attr]


def test_nothing_of_the_local_paths_is_left(tmp_path: Path) -> None:
    statements = render_cluster_sql(load_config(write(tmp_path)), SQL)
    text = "\n".join(s.text for s in statements)
    assert "${" not in text and "file://" not in text and "@matchstream" not in text
    assert all(":" in s.location and s.location.startswith("sql/") for s in statements)


def test_kafka_config_and_credentials_become_clauses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WITH_KAFKA_AUTH))
    shown = render_cluster_sql(config, SQL)
    sent = render_cluster_sql(config, SQL, reveal=True)
    assert KAFKA_SECRET not in "\n".join(s.text for s in shown)
    created = [s for s in shown if s.pipeline is not None]
    assert len(created) == len(PROGRAMS) + 1  # alerts_published has no transform
    # Shown as a marker, not JSON: pasting the printed SQL cannot create a working pipeline.
    assert all(f"\nCREDENTIALS '{HIDDEN}'\n" in s.text for s in created)
    for node in pipelines(sent).values():
        assert node.config is not None and json.loads(node.config) == config.kafka_config
        assert node.credentials is not None
        assert json.loads(node.credentials)["sasl.password"] == KAFKA_SECRET


def one_file_sql_dir(tmp_path: Path, text: str) -> Path:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "10_p.sql").write_text(text, encoding="utf-8")
    return sql_dir


@pytest.mark.parametrize("text, message", [
    ("SELECT 1;\nCREATE PIPELINE p AS LOAD DATA KAFKA '${KAFKA}/t'\n"
     "WITH TRANSFORM ('${TRANSFORMS}/train.py', '', '') INTO TABLE t;\n",
     "only that form is shipped"),
    ("SELECT 1;\nSELECT '${TRANSFORMS}/x';\n", "outside a pipeline"),
])
def test_a_transform_the_archive_cannot_ship_is_refused(tmp_path: Path, text: str,
                                                        message: str) -> None:
    sql_dir = one_file_sql_dir(tmp_path, text)
    with pytest.raises(ClusterRenderError, match=message) as info:
        render_cluster_sql(load_config(write(tmp_path)), sql_dir)
    assert info.value.location == "sql/10_p.sql:2:1"


def test_an_unknown_placeholder_names_its_position(tmp_path: Path) -> None:
    sql_dir = one_file_sql_dir(tmp_path, "SELECT 1;\nSELECT * FROM ${CATALOG}.PIPELINES;\n")
    with pytest.raises(ScriptError, match=r"sql/10_p.sql:2:15: unknown placeholder \$\{CATALOG\}"):
        render_cluster_sql(load_config(write(tmp_path)), sql_dir)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matchstream.cli", "cluster", *args],
                          capture_output=True, text=True, check=False, timeout=120, cwd=REPO)


def test_print_sql_shows_the_sql_and_no_secret(tmp_path: Path) -> None:
    result = cli("apply", "--config", str(write(tmp_path, WITH_KAFKA_AUTH)), "--print-sql")
    assert result.returncode == 0, result.stderr
    assert f"WITH TRANSFORM ('{ARCHIVE_URI}', 'train.py', '--model-dir" in result.stdout
    assert "-- sql/10_pipelines.sql:" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert KAFKA_SECRET not in result.stdout + result.stderr


def test_apply_to_an_address_nothing_answers_on_says_so(tmp_path: Path) -> None:
    text = BASE.replace('host = "agg-1.example.com"', 'host = "127.0.0.1"').replace(
        "port = 3307", f"port = {free_port()}")
    result = cli("apply", "--config", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert "cannot connect to 127.0.0.1:" in result.stderr and "nothing answers" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_options_are_whole_words_only(tmp_path: Path) -> None:
    result = cli("apply", "--conf", str(write(tmp_path)), "--print-sql")
    assert result.returncode == 2 and "--conf" in result.stderr


def test_the_cluster_gets_no_mariadb_only_construct(tmp_path: Path) -> None:
    from tests.docker.guards import mariadb_only_constructs

    findings = [f"{stmt.location}: {finding.what}"
                for stmt in render_cluster_sql(load_config(write(tmp_path)), SQL)
                for finding in mariadb_only_constructs(stmt.text + ";\n", "statement")]
    assert not findings, "\n".join(findings)



def test_a_parse_error_on_the_clauses_line_never_shows_a_credential(tmp_path: Path) -> None:
    # The inserted CREDENTIALS clause shares the source line of the error: the error quotes it.
    sql_dir = one_file_sql_dir(tmp_path, "CREATE PIPELINE p AS LOAD DATA KAFKA '${KAFKA}/t' "
                               "BATCH_INTERVAL 5 CREDENTIALS '{}' INTO TABLE t;\n")
    config = load_config(write(tmp_path, WITH_KAFKA_AUTH))
    for reveal in (False, True):
        with pytest.raises(ClusterRenderError) as info:
            render_cluster_sql(config, sql_dir, reveal=reveal)
        assert KAFKA_SECRET not in str(info.value)


def test_a_secret_in_kafka_config_is_refused(tmp_path: Path) -> None:
    from matchstream.cluster.errors import ClusterConfigError

    text = WITH_KAFKA_AUTH.replace('"sasl.mechanism" = "PLAIN" }',
                                   '"sasl.mechanism" = "PLAIN", "sasl.password" = "x" }', 1)
    assert text != WITH_KAFKA_AUTH
    with pytest.raises(ClusterConfigError, match="put it in \\[kafka\\] credentials"):
        load_config(write(tmp_path, text))


def test_redact_hides_the_password_and_every_credential(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WITH_KAFKA_AUTH))
    text = config.redact(f"near '{KAFKA_SECRET}' and {config.password}")
    assert KAFKA_SECRET not in text and config.password not in text and "<hidden>" in text
