"""``matchstream cluster apply`` against a real server: the session's private MariaDB stands in
for the aggregator (the same MySQL protocol), with SQL that both accept. What is checked is the
command's own part: credentials from the cluster file, one session in file order, placeholders
filled, the first refused statement named by file:line:col, nothing after it run, and no
password on any output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from matchstream.config import Config
from tests.unit.cluster_files import BASE, PASSWORD, write

REPO = Path(__file__).resolve().parents[2]
DATABASE = "cluster_apply_test"


def cluster_file(tmp_path: Path, stack: Config, password: str | None = None) -> Path:
    text = (BASE.replace('host = "agg-1.example.com"', f'host = "{stack.host}"')
            .replace("port = 3307", f"port = {stack.db_port}")
            .replace('user = "matchstream"', f'user = "{stack.db_user}"')
            .replace(f'password = "{PASSWORD}"', f'password = "{password or stack.db_password()}"'))
    return write(tmp_path, text)


def sql_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "sql"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def apply(config: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matchstream.cli", "cluster", "apply", "--config", str(config),
         "--sql-dir", str(directory)], capture_output=True, text=True, check=False,
        timeout=120, cwd=REPO)


def rows(stack: Config, sql: str) -> list[tuple]:
    conn = pymysql.connect(host=stack.host, port=stack.db_port, user=stack.db_user,
                           password=stack.db_password(), database=DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def clean(stack: Config):
    conn = pymysql.connect(host=stack.host, port=stack.db_port, user=stack.db_user,
                           password=stack.db_password(), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        yield
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    finally:
        conn.close()


def test_apply_runs_the_files_in_order_on_one_session(stack: Config, clean, tmp_path: Path) -> None:
    directory = sql_dir(tmp_path, {
        "00_schema.sql": f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`;\nUSE `{DATABASE}`;\n"
                         "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200));\n",
        # No USE here: the session of the file before holds.
        "10_rows.sql": "-- the placeholders take the cluster file's values\n"
                       "INSERT INTO t VALUES (1, '${MODEL_DIR}'), (2, '${FEATURES}'), "
                       "(3, '${KAFKA}');\nSELECT COUNT(*) FROM t;\n",
    })
    result = apply(cluster_file(tmp_path, stack), directory)
    assert result.returncode == 0, result.stderr
    assert rows(stack, "SELECT id, v FROM t ORDER BY id") == [
        (1, "/mnt/matchstream/models"), (2, "/mnt/matchstream/features.json"),
        (3, "kafka-1.example.com:9092,kafka-2.example.com:9093")]
    assert "sql/10_rows.sql:2:1: ok" in result.stderr
    assert "applied 5 statements" in result.stderr
    assert stack.db_password() not in result.stdout + result.stderr


def test_the_first_refused_statement_is_named_and_nothing_after_it_runs(
        stack: Config, clean, tmp_path: Path) -> None:
    directory = sql_dir(tmp_path, {
        "00_schema.sql": f"CREATE DATABASE `{DATABASE}`;\nUSE `{DATABASE}`;\n"
                         "CREATE TABLE t (id INT);\n",
        "10_bad.sql": "INSERT INTO t VALUES (1);\n\nINSERT INTO no_such_table VALUES (2);\n"
                      "CREATE TABLE after_the_error (id INT);\n",
    })
    result = apply(cluster_file(tmp_path, stack), directory)
    assert result.returncode == 2
    assert "sql/10_bad.sql:3:1: the cluster refused it:" in result.stderr
    assert "no_such_table" in result.stderr and "(error 1146)" in result.stderr
    assert rows(stack, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                f"'{DATABASE}' AND TABLE_NAME = 'after_the_error'") == [(0,)]


def test_a_wrong_password_names_the_cluster_file(stack: Config, tmp_path: Path) -> None:
    config = cluster_file(tmp_path, stack, password="not-the-password")
    result = apply(config, sql_dir(tmp_path, {"00.sql": "SELECT 1;\n"}))
    assert result.returncode == 2
    assert f"access denied for 'root' with the password in {config}" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
