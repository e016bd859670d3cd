"""`matchstream sql -B / -N / --json` against the real MariaDB: what a script reads from stdout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

# Values that break naive tab-separated output: a tab, a newline, a backslash, NULL, bytes that
# are not UTF-8, an exact DECIMAL and a DATETIME(6).
QUERY = ("SELECT 1 AS n, 'a\\tb\\nc\\\\d' AS s, NULL AS z, X'FF00' AS b, "
         "CAST('12.340' AS DECIMAL(6,3)) AS d, CAST('2026-12-02 01:02:03.5' AS DATETIME(6)) AS t")


def sql(cli_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matchstream.cli", "sql", *args],
                          env=cli_env, capture_output=True, text=True, timeout=120)


def test_batch_output_is_one_escaped_line_per_row_with_a_header(cli_env) -> None:
    done = sql(cli_env, "-B", "-e", QUERY)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("n\ts\tz\tb\td\tt\n"
                           "1\ta\\tb\\nc\\\\d\tNULL\t0xFF00\t12.340\t2026-12-02 01:02:03.500000\n")


def test_skip_column_names_leaves_only_the_rows(cli_env) -> None:
    done = sql(cli_env, "-N", "-B", "-e", "SELECT 1 UNION ALL SELECT 2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1", "2"]


def test_json_output_is_one_object_per_row(cli_env) -> None:
    done = sql(cli_env, "--json", "-e", QUERY, "-e", "SELECT 2 AS n")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == [{"n": 1, "s": "a\tb\nc\\d", "z": None, "b": "0xFF00", "d": 12.34,
                     "t": "2026-12-02 01:02:03.500000"}, {"n": 2}]
    assert '"d": 12.340' in done.stdout  # the DECIMAL's digits as the database has them


def test_statement_messages_go_to_stderr_so_stdout_stays_parseable(cli_env) -> None:
    done = sql(cli_env, "-B", "-e", "CREATE DATABASE IF NOT EXISTS sql_output_test",
               "-e", "USE sql_output_test",
               "-e", "CREATE TABLE IF NOT EXISTS t (a INT)",
               "-e", "CREATE PIPELINE IF NOT EXISTS p AS LOAD DATA KAFKA "
                     "'127.0.0.1:1/t' INTO TABLE t",
               "-e", "SHOW PIPELINES")
    try:
        assert done.returncode == 0, done.stderr
        # stdout: SHOW PIPELINES' result only; the CREATE's "Query OK" went to stderr.
        lines = done.stdout.splitlines()
        assert lines[0].split("\t")[0].startswith("Pipelines_in_"), lines
        assert any(line.startswith("p\t") for line in lines[1:]), lines
        assert "Query OK" in done.stderr and "Query OK" not in done.stdout
    finally:
        sql(cli_env, "-e", "DROP DATABASE IF EXISTS sql_output_test")


def test_the_table_style_without_names_and_the_options_are_whole_names_only(cli_env) -> None:
    done = sql(cli_env, "-N", "-e", "SELECT 'x' AS c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["+---+", "| x |", "+---+", "1 row in set"]
    wrong = sql(cli_env, "--jso", "-e", "SELECT 1")
    assert wrong.returncode == 2 and "--jso" in wrong.stderr
