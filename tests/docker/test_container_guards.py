"""The guards that would have caught the container path's certain failures (audit 2026-12 §1):
MariaDB-only SQL (C1), the Apple-silicon fallback image's Python 3.6 (C2), placeholders in
sql/queries/ (C3), restricted words unquoted in docker_up.sh's SQL (P6), ports open to the network
and passwords on command lines. Each check also runs on a copy with the mistake put back in, so a
check that cannot fail would show."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.docker.guards import (
    mariadb_only_constructs,
    passwords_on_command_lines,
    published_ports_not_loopback,
    unquoted_restricted_words,
)
from tests.docker.layout import (
    DOCKER,
    DOCKER_UP,
    DOCKERFILE,
    REPO,
    load_compose,
    read_dockerfile,
    render_sql,
)

SQL_DIR = REPO / "sql"


def script_sql() -> str:
    """Every statement docker_up.sh sends besides sql/*.sql (``--print-script-sql``)."""
    proc = subprocess.run(["bash", str(DOCKER_UP), "--print-script-sql"], capture_output=True,
                          text=True, check=True, timeout=60)
    assert proc.stdout.count(";") >= 4, proc.stdout
    return proc.stdout


# --- C1: SQL that only MariaDB runs ---------------------------------------------------------


@pytest.mark.parametrize("sql, expected", [
    ("CREATE OR REPLACE VIEW v AS SELECT 1;", "CREATE OR REPLACE VIEW"),
    ("create or replace\n  definer = root view v as select 1;", "CREATE OR REPLACE VIEW"),
    ("CREATE TABLE t (id INT) ENGINE=InnoDB;", "ENGINE="),
    ("CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1;", "CREATE TRIGGER"),
    ("CREATE TABLE c (p INT, FOREIGN KEY (p) REFERENCES t (id));", "FOREIGN KEY"),
])
def test_mariadb_only_constructs_are_found(sql: str, expected: str) -> None:
    (finding,) = mariadb_only_constructs(f"USE db;\n{sql}\n", "x.sql")
    assert finding.what.startswith(expected) and finding.where.startswith("x.sql:2:")


def test_what_singlestore_accepts_is_not_flagged() -> None:
    sql = ("-- CREATE OR REPLACE VIEW in a comment\nCREATE OR REPLACE PIPELINE p AS LOAD DATA "
           "KAFKA 'k/t' INTO TABLE t;\nDROP VIEW IF EXISTS v;\nCREATE VIEW v AS SELECT "
           "'ENGINE=x' AS `engine`;\n")
    assert mariadb_only_constructs(sql, "ok.sql") == []


def test_docker_up_script_sql_has_no_mariadb_only_construct() -> None:
    assert mariadb_only_constructs(script_sql(), "docker_up.sh --print-script-sql") == []


def test_the_sql_the_container_path_applies_has_no_mariadb_only_construct() -> None:
    findings = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        findings += mariadb_only_constructs(path.read_text(encoding="utf-8"),
                                            path.relative_to(REPO).as_posix())
    assert not findings, "\n".join(map(str, findings))


# --- C3: sql/queries/ must run unchanged on SingleStore ------------------------------------


def test_the_monitoring_queries_need_no_placeholder(tmp_path: Path) -> None:
    # Rendered by docker_up.sh with pipeline-vars.env, which no longer defines CATALOG.
    for path in sorted((SQL_DIR / "queries").glob("*.sql")):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    render_sql(tmp_path)


def test_pipeline_vars_do_not_carry_a_catalog_name() -> None:
    assert "CATALOG" not in (DOCKER / "pipeline-vars.env").read_text(encoding="utf-8")


# --- P6: restricted words in docker_up.sh's own SQL ----------------------------------------


def test_docker_up_quotes_every_restricted_word_it_uses() -> None:
    findings = unquoted_restricted_words(script_sql(), "docker_up.sh --print-script-sql")
    assert not findings, "\n".join(map(str, findings))


def test_docker_up_sends_the_alerts_publish_statement_and_the_alerts_pipeline_sql() -> None:
    sql = script_sql()
    assert "INTO KAFKA 'kafka:29092/alerts'" in sql
    assert "START PIPELINE IF NOT RUNNING `alerts_published`;" in sql
    assert "`PIPELINES_CURSORS` WHERE `DATABASE_NAME` = 'speed_dating' AND `PIPELINE_NAME` = " \
        "'alerts_published'" in sql


def test_docker_up_script_sql_passes_the_singlestore_gate() -> None:
    # The gate that test_gate_sources.py holds sql/ and the package's SQL strings to, on the
    # statements docker_up.sh sends itself (pipeline statements are the pipeline parser's).
    from matchstream.ddl import ast, parse_statement
    from matchstream.ddl.script import is_pipeline_statement, is_select_into_kafka, split_statements
    from matchstream.gate import check_statement

    checked = 0
    for stmt in split_statements(script_sql(), "docker_up.sh --print-script-sql"):
        if is_select_into_kafka(stmt.text):
            # The alerts publish: parsed as `matchstream alerts` parses it (pipeline grammar).
            parsed = parse_statement(stmt.text, line=stmt.line, col=stmt.col,
                                     source=stmt.source_name)
            assert isinstance(parsed, ast.SelectIntoKafka)
            assert parsed.destination.topic == "alerts"
            checked += 1
            continue
        if is_pipeline_statement(stmt.text):
            continue
        verdict = check_statement(stmt.text, source=stmt.source_name, line=stmt.line,
                                  col=stmt.col)
        assert not getattr(verdict, "warnings", ()), verdict
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("sql, word", [
    ("SELECT COUNT(*) AS row_count FROM t", "row_count"),
    ("SELECT minute, COUNT(*) FROM v GROUP BY minute", "minute"),
    ("SELECT STATE FROM information_schema.PIPELINES", "STATE"),
    ("SELECT id, state FROM v INTO KAFKA 'k:1/alerts' KAFKA KEY \"id\"", "state"),
])
def test_an_unquoted_restricted_word_is_found(sql: str, word: str) -> None:
    findings = unquoted_restricted_words(sql + ";\n", "x.sql")
    assert any(f.what.startswith(f"{word} is") for f in findings), findings
    quoted = re.sub(rf"\b{word}\b", f"`{word}`", sql)
    assert not any(f.what.startswith(f"{word} is")
                   for f in unquoted_restricted_words(quoted + ";\n", "x.sql"))


# --- ports and passwords --------------------------------------------------------------------


def test_published_ports_are_on_the_loopback_address_by_default() -> None:
    compose = load_compose()
    assert published_ports_not_loopback(compose) == []
    # The setting that opens them is one variable, documented next to the others.
    ports = compose["services"]["singlestore"]["ports"]
    assert all(p.startswith("${SINGLESTORE_BIND_ADDRESS:-127.0.0.1}:") for p in ports)
    assert "SINGLESTORE_BIND_ADDRESS" in (DOCKER / ".env.example").read_text(encoding="utf-8")


def test_a_port_on_every_interface_is_found() -> None:
    compose = load_compose()
    compose["services"]["kafka"]["ports"] = ["9092:9092"]
    compose["services"]["singlestore"]["ports"] = ["${SINGLESTORE_BIND_ADDRESS:-0.0.0.0}:3306:3306",
                                                   {"target": 8080, "published": 8080}]
    assert len(published_ports_not_loopback(compose)) == 3


def password_scanned_files() -> list[Path]:
    files = [REPO / "setup.sh", *sorted((REPO / "scripts").glob("*.sh")), DOCKER / "compose.yaml",
             DOCKERFILE, *sorted((REPO / "tests" / "docker").glob("*.py")),
             REPO / "docs" / "containers.md", REPO / "README.md"]
    return [f for f in files if f.exists() and f.name != "test_container_guards.py"]


def test_no_password_is_given_to_a_client_on_its_command_line() -> None:
    findings = []
    for path in password_scanned_files():
        findings += passwords_on_command_lines(path.read_text(encoding="utf-8"),
                                               path.relative_to(REPO).as_posix())
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize("line", [
    """exec singlestore -h 127.0.0.1 -u root -p"$ROOT_PASSWORD" "$@\"""",
    "mysql --password=secret -e 'SELECT 1'",
    "mariadb -uroot -psecret",
    "compose exec -T singlestore sh -c \\\n  'exec singlestore -u root --password \"$P\"'",
])
def test_a_password_argument_is_found(line: str) -> None:
    assert passwords_on_command_lines(line, "x.sh")


def test_a_prompting_client_is_not_a_password_argument() -> None:
    assert passwords_on_command_lines("mysql -h 127.0.0.1 -P 3306 -u root -p   (prompts)",
                                      "x") == []


# --- C2: the Apple-silicon fallback tag (AlmaLinux 8, python3 = 3.6) ----------------------


def python_install_step() -> str:
    (step,) = [i.text for i in read_dockerfile().of("RUN") if "/etc/os-release" in i.text]
    return step


def run_install_step(tmp_path: Path, version_id: str, python_version: str
                     ) -> tuple[int, list[str]]:
    """The Dockerfile's Python install step under sh, with dnf, alternatives and python3 faked
    (each records its arguments) and /etc/os-release of the given VERSION_ID."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("dnf", "alternatives"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        (bin_dir / tool).chmod(0o755)
    major, minor = python_version.split(".")
    (bin_dir / "python3").write_text(
        f'#!/bin/sh\necho "python3 $*" >> "{calls}"\n[ {major} -gt 3 ] || [ {minor} -ge 11 ]\n')
    (bin_dir / "python3").chmod(0o755)
    os_release = tmp_path / "os-release"
    os_release.write_text(f'NAME="AlmaLinux"\nVERSION_ID="{version_id}"\n')
    step = (python_install_step().replace("/etc/os-release", str(os_release))
            .replace("/usr/bin/python3 -c", f"{bin_dir}/python3 -c"))
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = subprocess.run(["sh", "-c", step], env=env, capture_output=True, text=True,
                          check=False, timeout=30)
    return proc.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_el8_images_get_python312_as_python3(tmp_path: Path) -> None:
    code, calls = run_install_step(tmp_path, "8.6", "3.12")
    assert code == 0
    assert calls[0].startswith("dnf install") and "python3.12 python3.12-pip" in calls[0]
    assert calls[1] == "alternatives --set python3 /usr/bin/python3.12"


def test_el10_images_keep_their_system_python(tmp_path: Path) -> None:
    code, calls = run_install_step(tmp_path, "10.0", "3.12")
    assert code == 0
    assert calls[0].split()[-2:] == ["python3", "python3-pip"]
    assert not any(c.startswith("alternatives") for c in calls)


def test_a_python_older_than_311_fails_the_build_step(tmp_path: Path) -> None:
    code, calls = run_install_step(tmp_path, "8.6", "3.6")
    assert code != 0 and calls[-1].startswith("python3 -c")


def test_every_mention_of_the_el8_tag_says_the_same() -> None:
    # The advice (0.2.62 on Apple silicon before macOS 26) is only safe with the EL8 branch
    # above; each place that gives it says python3.12 is installed there, and none advises an
    # older tag or a range of them.
    files = [DOCKERFILE, DOCKER / ".env.example", DOCKER_UP, REPO / "docs" / "containers.md"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "0.2.62" in text, path
        assert "python3.12" in text, f"{path} names 0.2.62 without saying python3.12 is installed"
        assert not re.search(r"<=\s*0\.2\.62|0\.2\.57|0\.2\.6[01]\b", text), path
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    if "0.2.62" in readme:
        assert "python3.12" in readme
