"""Statements from SingleStore's documentation through `matchstream sql`, against golden outcomes.

tests/fixtures/conformance/singlestore_docs.sql holds the statements, each after a
``-- s2: ok|error <source>`` line saying what SingleStore documents. Every statement runs on its
own (a refusal does not stop the rest) in a private database, through the same path a user's
script takes (``run_sources``). The test holds the local outcome to two things:

1. the golden file singlestore_docs.expected, so any change of behaviour shows up as a diff
   (``MATCHSTREAM_UPDATE_GOLDEN=1`` rewrites it; review that diff like code);
2. the fidelity rule: what SingleStore accepts runs, or is refused as "not supported by the local
   engine"; what SingleStore rejects is rejected.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.db import connect
from matchstream.errors import MatchstreamError
from matchstream.output import OutputStyle, ResultFormat
from matchstream.sqlrunner import ScriptSource, default_variables, run_sources

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conformance"
STATEMENTS = FIXTURES / "singlestore_docs.sql"
EXPECTED = FIXTURES / "singlestore_docs.expected"
DATABASE = "conformance_docs"
TOPIC = "conformance-docs"
MESSAGES = [b"1,a", b"2,b", b"3,c"]
UNSUPPORTED = "not supported by the local engine"
_VERDICT = re.compile(r"^-- s2: (?P<verdict>ok|error)\b(?P<source>.*)$")

# The identity transform of the docs' examples: framed messages in, one line per message out.
TRANSFORM = (
    "#!/usr/bin/env python3\n"
    "import struct, sys\n"
    "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
    "while header := inp.read(8):\n"
    "    (size,) = struct.unpack('<Q', header)\n"
    "    out.write(inp.read(size) + b'\\n')\n"
)


@dataclass(frozen=True)
class DocStatement:
    line: int
    text: str
    verdict: str  # what SingleStore documents: "ok" or "error"; "" for the setup statements
    source: str


def doc_statements() -> list[DocStatement]:
    from matchstream.ddl import split_statements

    lines = STATEMENTS.read_text(encoding="utf-8").splitlines()
    found = []
    for stmt in split_statements(STATEMENTS.read_text(encoding="utf-8"), STATEMENTS.name):
        above = _VERDICT.match(lines[stmt.line - 2]) if stmt.line >= 2 else None
        found.append(DocStatement(stmt.line, stmt.text, above["verdict"] if above else "",
                                  above["source"].strip() if above else ""))
    return found


@pytest.fixture
def conformance_env(stack: Config, tmp_path: Path) -> Iterator[tuple[Config, Path]]:
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    if TOPIC not in admin.list_topics():
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    if not _topic_has_messages(stack):
        for value in MESSAGES:
            producer.send(TOPIC, value=value, partition=0)
    producer.flush()
    producer.close()
    script = tmp_path / "my-transform.py"
    script.write_text(TRANSFORM)
    script.chmod(0o755)
    with tarfile.open(tmp_path / "my-transform-tarball.tar.gz", "w:gz") as archive:
        archive.add(script, arcname="my-transform.py")
    _sql(stack, f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}")
    try:
        yield stack, tmp_path
    finally:
        _drop_pipelines(stack, tmp_path)
        _sql(stack, f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.close()


def _topic_has_messages(config: Config) -> bool:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=config.kafka_bootstrap)
    try:
        end = consumer.end_offsets([TopicPartition(TOPIC, 0)])
        return any(end.values())
    finally:
        consumer.close()


def _sql(config: Config, *statements: str) -> None:
    conn = connect(config)
    try:
        with conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        conn.close()


def _drop_pipelines(config: Config, tmp_path: Path) -> None:
    names: list[str] = []
    run_sources([ScriptSource("SHOW PIPELINES", "<teardown>", tmp_path)], config=config,
                variables=default_variables(config), database=DATABASE,
                result_format=ResultFormat(OutputStyle.BATCH, column_names=False),
                emit=lambda text: names.extend(row.split("\t")[0] for row in text.splitlines()),
                note=lambda _: None)
    for name in names:
        run_sources([ScriptSource(f"DROP PIPELINE IF EXISTS `{name}`", "<teardown>", tmp_path)],
                    config=config, variables=default_variables(config), database=DATABASE,
                    emit=lambda _: None)


def run_one(config: Config, tmp_path: Path, stmt: DocStatement) -> tuple[bool, str]:
    """(ran, what it printed or why it was refused), the run's addresses put back as
    placeholders so the outcome does not depend on ports or directories."""
    out: list[str] = []
    variables = {**default_variables(config), "TMP": str(tmp_path)}
    # The statement keeps its line in the fixture, so a refusal's position is the file's.
    source = ScriptSource("\n" * (stmt.line - 1) + stmt.text, STATEMENTS.name, tmp_path)
    try:
        run_sources([source], config=config, variables=variables, database=DATABASE,
                    result_format=ResultFormat(OutputStyle.BATCH), emit=out.append,
                    note=out.append)
        ran, text = True, "\n".join(out)
    except (MatchstreamError, pymysql.MySQLError) as exc:
        ran, text = False, str(exc)
    text = text.replace(config.kafka_bootstrap, "${KAFKA}").replace(str(tmp_path), "${TMP}")
    return ran, text


def render_outcomes(outcomes: list[tuple[DocStatement, bool, str]]) -> str:
    buf = io.StringIO()
    for stmt, ran, text in outcomes:
        head = stmt.text if len(stmt.text) <= 90 else stmt.text[:87] + "..."
        buf.write(f"L{stmt.line} {head}\n")
        for i, line in enumerate(text.splitlines() or [""]):
            lead = ("  ok:    " if ran else "  error: ") if i == 0 else "         "
            buf.write((lead + line).rstrip() + "\n")
    return buf.getvalue()


def test_documented_statements_have_their_golden_outcomes(conformance_env) -> None:
    config, tmp_path = conformance_env
    outcomes = [(stmt, *run_one(config, tmp_path, stmt)) for stmt in doc_statements()]
    text = render_outcomes(outcomes)
    if os.environ.get("MATCHSTREAM_UPDATE_GOLDEN") == "1":
        EXPECTED.write_text(text, encoding="utf-8")
    broken = []
    for stmt, ran, why in outcomes:
        if stmt.verdict == "" and not ran:
            broken.append(f"L{stmt.line}: setup failed: {why}")
        elif stmt.verdict == "ok" and not ran and UNSUPPORTED not in why:
            broken.append(f"L{stmt.line}: SingleStore accepts it ({stmt.source}); refused "
                          f"locally without naming the local engine: {why}")
        elif stmt.verdict == "error" and ran:
            broken.append(f"L{stmt.line}: SingleStore rejects it ({stmt.source}); it ran locally")
    assert not broken, "\n".join(broken)
    assert text == EXPECTED.read_text(encoding="utf-8"), (
        "outcomes differ from singlestore_docs.expected; if the change is intended, rerun with "
        "MATCHSTREAM_UPDATE_GOLDEN=1 and review the diff")


def test_every_documented_statement_says_what_singlestore_does() -> None:
    stmts = doc_statements()
    setup = [s for s in stmts if s.verdict == ""]
    assert all(s.text.startswith("CREATE TABLE") for s in setup), setup
    assert len(stmts) - len(setup) >= 75
