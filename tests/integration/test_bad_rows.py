"""Bad messages on the demo's topics: the pipelines keep going and every bad message is recorded.

The demo's sql/ files are applied as they are into a private database with private topics (the
names substituted, nothing else), on the session's broker and MariaDB with the engine process.
Good rows are mixed with one message of every kind of bad input, sent with a plain Kafka client
(our producer would refuse them), and then:

* every good row is learnt (training), scored (scoring) or loaded (outcomes), no pipeline
  leaves Running, and no batch failed;
* every bad message has exactly one row in rejected_rows, with the right reason, its batch
  position (offset = the batch partition's earliest offset + position), size, SHA-256 and its
  first 64 KiB byte for byte; the training rejects' fingerprints join training_metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.engine import catalog
from matchstream.engine.settings import open_connection
from matchstream.framing import encode_frames, fingerprint
from matchstream.gate import Forward, check_statement
from matchstream.ml.rejects import MESSAGE_PREFIX_BYTES
from matchstream.ml.trainer_link import stop_trainer
from matchstream.sqlrunner import ScriptSource, default_variables, run_sources
from matchstream.stack import Stack

from ..conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SQL_FILES = ("00_schema.sql", "10_pipelines.sql", "20_views.sql")
PIPELINES = {"training": "training", "scoring": "scoring", "outcomes": "outcomes",
             "training_rejects": "training", "scoring_rejects": "scoring",
             "outcomes_rejects": "outcomes"}
ROLES = ("training", "scoring", "outcomes")
TRAIN_CSV = (REPO / "data" / "train.csv").read_bytes().splitlines()
SCORE_CSV = (REPO / "data" / "score.csv").read_bytes().splitlines()
OUTCOMES_CSV = (REPO / "data" / "score_labels.csv").read_bytes().splitlines()
CSV = {"training": TRAIN_CSV, "scoring": SCORE_CSV, "outcomes": OUTCOMES_CSV}
CATEGORY = "go_out"  # a column the shipped spec carries unused; the test spec makes it categorical
DEADLINE_S = 300.0
FITS = "id must be an integer that fits BIGINT (predictions.id), got "


@dataclass(frozen=True)
class Bad:
    """One bad message and the reason rejected_rows must give for it."""

    kind: str
    message: bytes
    reason: str


def private_spec(tmp_path: Path) -> tuple[Path, list[str]]:
    """The shipped spec with CATEGORY made categorical (its values in the data as vocabulary)."""
    spec = json.loads((REPO / "data" / "features.json").read_text())
    index = spec["columns"].index(CATEGORY)
    values = {line.split(b",")[index].decode() for line in TRAIN_CSV[1:]}
    score_index = index - 1  # scoring rows have no label column, which comes before it
    values |= {line.split(b",")[score_index].decode() for line in SCORE_CSV[1:]}
    vocabulary = sorted(values - {""}, key=float)
    spec["categorical"] = {CATEGORY: {"vocabulary": vocabulary}}
    path = tmp_path / "features.json"
    path.write_text(json.dumps(spec))
    return path, vocabulary


def with_field(line: bytes, index: int, value: bytes) -> bytes:
    fields = line.split(b",")
    fields[index] = value
    return b",".join(fields)


def bad_outcome_messages() -> list[Bad]:
    """One message of each bad-input class for the outcomes topic (id,match rows)."""
    row = OUTCOMES_CSV[1]
    width = "expected 2 fields (id, match)"
    fits = FITS.replace("predictions.id", "outcomes.id")
    huge = b"1," + bytes(range(256)) * 3907
    return [
        Bad("wrong field count", b"1,2,3", f"{width}, got 3"),
        Bad("malformed CSV (unbalanced quote)", b'"5,1', f"{width}, got 1"),
        Bad("non-integer id", b"abc,1", f"column 'id': {fits}'abc'"),
        Bad("id beyond BIGINT", b"9223372036854775808,0",
            f"column 'id': {fits}'9223372036854775808'"),
        Bad("label not 0/1", with_field(row, 1, b"2"),
            "column 'match': label must be 0 or 1, got '2'"),
        Bad("label missing", with_field(row, 1, b""), "column 'match': value is missing"),
        Bad("empty message", b"", "empty message"),
        Bad("invalid UTF-8", b"\xff,1", "not valid UTF-8 (byte 0: b'\\xff')"),
        Bad("header row", OUTCOMES_CSV[0], "this is the CSV header; send data rows only"),
        Bad("line break, tab, NUL and backslashes", b"7\\N\t\x00\r\nx\\",
            "holds a line break: one message must carry exactly one CSV line"),
        Bad("a scoring row on outcomes", SCORE_CSV[1],
            f"{width}, got {len(SCORE_CSV[0].split(b','))}"),
        Bad("~1 MB message", huge, "not valid UTF-8 (byte 130: b'\\x80')"),
    ]


def bad_messages(role: str, vocabulary: list[str]) -> list[Bad]:
    """One message of each bad-input class, for the training, scoring or outcomes topic."""
    if role == "outcomes":
        return bad_outcome_messages()
    training = role == "training"
    header, row = (TRAIN_CSV if training else SCORE_CSV)[:2]
    columns = header.decode().split(",")
    width = f"expected {len(columns)} fields ({', '.join(columns[:4])}, ...)"
    category = columns.index(CATEGORY)
    shown = ", ".join(vocabulary[:10]) + (", ..." if len(vocabulary) > 10 else "")
    number = columns.index("attr")
    huge = row + b"," + bytes(range(256)) * 3907  # ~1 MB, every byte value, invalid UTF-8
    not_utf8 = with_field(row, number, b"\xff\xfe")
    bad_byte = not_utf8.index(b"\xff")
    bad = [
        Bad("wrong field count", b"1,2,3", f"{width}, got 3"),
        Bad("malformed CSV (unbalanced quote)", with_field(row, 2, b'"0'),
            f"{width}, got 3"),
        Bad("non-numeric value", with_field(row, number, b"abc"),
            "column 'attr': 'abc' is not a number"),
        Bad("empty message", b"", "empty message"),
        Bad("invalid UTF-8", not_utf8,
            f"not valid UTF-8 (byte {bad_byte}: b'\\xff')"),
        Bad("header row", header, "this is the CSV header; send data rows only"),
        Bad("unknown category", with_field(row, category, b"99"),
            f"column '{CATEGORY}': unknown category '99' (vocabulary: {shown})"),
        Bad("non-integer id", with_field(row, 0, b"abc"), f"column 'id': {FITS}'abc'"),
        Bad("id beyond BIGINT", with_field(row, 0, b"9223372036854775808"),
            f"column 'id': {FITS}'9223372036854775808'"),
        Bad("line break, tab, NUL and backslashes", b"7\\N\t\x00\r\nx\\",
            "holds a line break: one message must carry exactly one CSV line"),
        Bad("~1 MB message", huge, f"not valid UTF-8 (byte {len(row) + 1 + 128}: b'\\x80')"),
    ]
    if training:
        bad.append(Bad("label not 0/1", with_field(row, 1, b"2"),
                       "column 'match': label must be 0 or 1, got '2'"))
    else:
        train_row = TRAIN_CSV[1]
        bad.append(Bad("training row (with the label) on scoring", train_row,
                       f"{width}, got {len(columns) + 1}"))
    return bad


def mixed(role: str, good: int, vocabulary: list[str]) -> tuple[list[bytes], dict[int, Bad]]:
    """``good`` data rows with the bad messages spread among them (some past offset 100, so
    scoring's second batch has some); returns the messages and the bad ones by offset."""
    rows = CSV[role][1:good + 1]
    bad = bad_messages(role, vocabulary)
    messages: list[bytes] = []
    by_offset: dict[int, Bad] = {}
    step = good // len(bad)
    for i, line in enumerate(rows):
        if i % step == 3 and i // step < len(bad):
            by_offset[len(messages)] = bad[i // step]
            messages.append(bad[i // step].message)
        messages.append(line)
    assert len(by_offset) == len(bad)
    return messages, by_offset


class Private:
    """The demo's sql/ applied to a private database reading private topics."""

    def __init__(self, config: Config, tmp_path: Path, spec: Path) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.config = config
        self.database = f"bad_rows_{suffix}"
        self.topics = {t: f"bad-rows-{t}-{suffix}" for t in ROLES}
        self.model_dir = tmp_path / "models"
        self.model_dir.mkdir()
        self.variables = {**default_variables(config), "MODEL_DIR": str(self.model_dir),
                          "FEATURES": str(spec)}
        self.conn = open_connection(config)

    def apply_sql(self) -> None:
        sources = []
        for name in SQL_FILES:
            text = (REPO / "sql" / name).read_text(encoding="utf-8")
            text = re.sub(r"\bspeed_dating\b", self.database, text)
            for topic, private in self.topics.items():
                text = text.replace(f"${{KAFKA}}/{topic}'", f"${{KAFKA}}/{private}'")
            sources.append(ScriptSource(text, str(REPO / "sql" / name), REPO / "sql"))
        run_sources(sources, config=self.config, variables=self.variables,
                    emit=lambda _t: None)

    def sql(self, text: str) -> None:
        run_sources([ScriptSource(f"USE {self.database}; {text}", "<test>", REPO)],
                    config=self.config, variables=self.variables, emit=lambda _t: None)

    def db(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.conn.commit()
        with self.conn.cursor() as cursor:
            cursor.execute(text, params)
            rows = list(cursor.fetchall())
        self.conn.commit()
        return rows

    def catalog(self, view: str, columns: str, pipeline: str, extra: str = "") -> list[Any]:
        return self.db(f"SELECT {columns} FROM `{catalog.CATALOG_SCHEMA}`.`{view}` WHERE "
                       f"DATABASE_NAME = %s AND PIPELINE_NAME = %s {extra}",
                       [self.database, pipeline])

    def cleanup(self) -> None:
        for table in catalog.CATALOG_TABLES:
            self.db(f"DELETE FROM `{catalog.CATALOG_SCHEMA}`.`{table}` WHERE DATABASE_NAME = %s",
                    [self.database])
        self.db(f"DROP DATABASE IF EXISTS `{self.database}`")
        self.conn.close()


@pytest.fixture
def private(stack: Config, tmp_path: Path) -> Iterator[tuple[Private, list[str]]]:
    spec, vocabulary = private_spec(tmp_path)
    env = Private(stack, tmp_path, spec)
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                         for t in env.topics.values()])
    engine_stack = Stack(stack)  # the session stack plus the engine process
    assert engine_stack.engine is not None
    try:
        engine_stack.up()
        env.apply_sql()  # the pipelines exist, Stopped
        yield env, vocabulary
    finally:
        engine_stack.engine.process.stop()
        stop_trainer(env.model_dir)
        env.cleanup()
        admin.delete_topics(list(env.topics.values()))
        admin.close()


def produce(config: Config, topic: str, messages: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap,
                             max_request_size=32 * 1024 * 1024, linger_ms=5)
    try:
        for value in messages:
            producer.send(topic, value=value, partition=0)
        producer.flush()
    finally:
        producer.close()


def wait_until_loaded(env: Private, ends: dict[str, int]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        behind = {}
        for pipeline, topic in PIPELINES.items():
            cursors = env.catalog("PIPELINES_CURSORS", "CURSOR_OFFSET", pipeline)
            if [int(c) for (c,) in cursors] != [ends[topic]]:
                behind[pipeline] = cursors
            state = env.catalog("PIPELINES", "STATE", pipeline)
            assert state == [("Running",)], (pipeline, state, errors(env, pipeline))
        if not behind:
            return
        assert time.monotonic() < deadline, f"still behind after {DEADLINE_S:.0f} s: {behind}"
        time.sleep(0.5)


def errors(env: Private, pipeline: str) -> list[Any]:
    return env.catalog("PIPELINES_ERRORS", "ERROR_TYPE, ERROR_MESSAGE, STD_ERROR", pipeline)


def test_bad_messages_are_skipped_and_recorded_once_each(
    private: tuple[Private, list[str]],
) -> None:
    env, vocabulary = private
    topics = {"training": mixed("training", 80, vocabulary),
              "scoring": mixed("scoring", 120, vocabulary),
              "outcomes": mixed("outcomes", 60, vocabulary)}
    # Everything is on the topics before the pipelines start, so each reject pipeline cuts the
    # batches its demo pipeline cuts (same MAX_OFFSETS_PER_BATCH_PARTITION): the join holds.
    for role, (messages, _) in topics.items():
        produce(env.config, env.topics[role], messages)
    env.sql("; ".join(f"START PIPELINE {p}" for p in PIPELINES))
    wait_until_loaded(env, {role: len(m) for role, (m, _) in topics.items()})

    # The pipelines stayed Running (checked while waiting) and no batch failed.
    for pipeline in PIPELINES:
        assert errors(env, pipeline) == [], pipeline
        assert env.catalog("PIPELINES_BATCHES", "COUNT(*)", pipeline,
                           "AND BATCH_PARTITION_STATE <> 'Succeeded'") == [(0,)]

    # Every good row learnt or scored.
    train_messages, train_bad = topics["training"]
    score_messages, score_bad = topics["scoring"]
    ((learnt, skipped),) = env.db(f"SELECT SUM(`rows`), SUM(skipped_rows) FROM "
                                  f"`{env.database}`.training_metrics")
    assert (int(learnt), int(skipped)) == (len(train_messages) - len(train_bad), len(train_bad))
    good_ids = {m.split(b",")[0].decode() for i, m in enumerate(score_messages)
                if i not in score_bad}
    scored = {str(i) for (i,) in env.db(f"SELECT id FROM `{env.database}`.predictions")}
    assert scored == good_ids and len(good_ids) == len(score_messages) - len(score_bad)
    # Every good outcome loaded, with its value.
    outcome_messages, outcome_bad = topics["outcomes"]
    good_outcomes = {tuple(m.decode().split(",")) for i, m in enumerate(outcome_messages)
                     if i not in outcome_bad}
    loaded = {(str(i), str(m)) for i, m in env.db(
        f"SELECT id, `match` FROM `{env.database}`.outcomes")}
    assert loaded == good_outcomes
    assert len(good_outcomes) == len(outcome_messages) - len(outcome_bad)

    # Every bad message: exactly one row, at its offset, with its reason and its bytes.
    metrics_fingerprints = {f for (f,) in env.db(
        f"SELECT input_fingerprint FROM `{env.database}`.training_metrics")}
    for role, (messages, bad_by_offset) in topics.items():
        pipeline = f"{role}_rejects"
        # offset = the batch partition's earliest offset + position; the batch partition is
        # the one whose framed input has the row's fingerprint.
        batches = env.catalog("PIPELINES_BATCHES", "BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET",
                              pipeline, "AND BATCH_PARTITION_STATE = 'Succeeded'")
        starts = {fingerprint(encode_frames(messages[a:b])): int(a) for a, b in batches}
        assert len(batches) == (2 if role == "scoring" else 1)
        rows = env.db(
            f"SELECT batch_fingerprint, `position`, reason, message_bytes, message_sha256, "
            f"message, loaded_at FROM `{env.database}`.rejected_rows WHERE pipeline_name = %s",
            [role])
        by_offset = {}
        for digest, position, reason, size, sha, message, loaded_at in rows:
            offset = starts[digest] + position
            assert offset not in by_offset, f"two rows for offset {offset}"
            by_offset[offset] = (reason, size, sha, message)
            assert loaded_at is not None
            if role == "training":
                assert digest in metrics_fingerprints  # joins the batch's metrics row
        assert sorted(by_offset) == sorted(bad_by_offset)
        for offset, bad in bad_by_offset.items():
            reason, size, sha, message = by_offset[offset]
            assert bad.message == messages[offset]
            assert reason == bad.reason, bad.kind
            assert (size, sha) == (len(bad.message), hashlib.sha256(bad.message).hexdigest())
            assert message == bad.message[:MESSAGE_PREFIX_BYTES], bad.kind  # byte for byte
    assert any(len(b.message) > 1_000_000 for b in train_bad.values())

    # docs/model.md's query for a reject's Kafka offset from the catalog alone.
    query = check_statement(OFFSET_QUERY.format(database=env.database))  # as `matchstream sql`
    assert isinstance(query, Forward)
    found = env.db(query.text)
    expected = sorted((role, 0, offset, bad.reason) for role, (_, by) in topics.items()
                      for offset, bad in by.items())
    assert sorted((r, int(p), int(o), reason) for r, p, o, reason in found) == expected


# docs/model.md, "Bad rows" (there with the demo's database).
OFFSET_QUERY = """
SELECT r.pipeline_name, b.BATCH_SOURCE_PARTITION_ID AS kafka_partition,
       b.BATCH_EARLIEST_OFFSET + r.`position` AS kafka_offset, r.reason
FROM `{database}`.rejected_rows r
JOIN information_schema.PIPELINES_BATCHES b
  ON b.DATABASE_NAME = '{database}'
 AND b.PIPELINE_NAME = CASE r.pipeline_name WHEN 'training' THEN 'training_rejects'
                                            WHEN 'outcomes' THEN 'outcomes_rejects'
                                            ELSE 'scoring_rejects' END
 AND b.BATCH_ID = r.batch_id
 AND b.BATCH_PARTITION_STATE = 'Succeeded'
 AND r.`position` < b.BATCH_LATEST_OFFSET - b.BATCH_EARLIEST_OFFSET
"""


def test_a_poison_message_in_a_failing_pipeline_is_passed_as_the_docs_say(
    private: tuple[Private, list[str]],
) -> None:
    """A pipeline in fail mode (the transforms' default) stops at a bad message; docs/model.md's
    two ways past it: SET OFFSETS to the message's offset + 1, or the transform in skip mode."""
    env, _ = private
    strict = env.topics["scoring"]  # the topic is empty: this test produces its own rows
    produce(env.config, env.topics["training"], TRAIN_CSV[1:81])  # a model for score.py
    env.sql("START PIPELINE training")
    scoring = _create_statement(env, "scoring").replace(" --on-bad-row skip", "")
    assert "--on-bad-row" not in scoring
    env.sql(scoring.replace("PIPELINE scoring AS", "PIPELINE scoring_strict AS", 1))
    good = SCORE_CSV[1:6]
    poison = with_field(good[0], 0, b"abc")  # passes LOAD DATA's eyes, not BIGINT's

    def offset_of_failure() -> tuple[str, int]:
        wait_for_state(env, "scoring_strict", "Error")
        (partition, earliest, stderr), *_ = env.catalog(
            "PIPELINES_ERRORS", "BATCH_SOURCE_PARTITION_ID, BATCH_EARLIEST_OFFSET, STD_ERROR",
            "scoring_strict", "ORDER BY ERROR_ID DESC")
        position = int(re.search(r"bad row in message (\d+)", stderr).group(1))  # type: ignore
        return partition, int(earliest) + position

    # 1. The poison message first in its batch: SET OFFSETS just past it loses nothing.
    produce(env.config, strict, [poison, good[0], good[1]])
    env.sql("START PIPELINE scoring_strict")
    partition, offset = offset_of_failure()
    assert offset == 0
    env.sql(f"ALTER PIPELINE scoring_strict SET OFFSETS '{{\"{partition}\": {offset + 1}}}'; "
            "START PIPELINE scoring_strict")
    wait_for_cursor(env, "scoring_strict", 3)
    # 2. In the middle of its batch: the transform in skip mode keeps the batch's good rows.
    produce(env.config, strict, [good[2], poison, good[3]])
    partition, offset = offset_of_failure()
    assert offset == 4
    transform = re.search(r"WITH TRANSFORM \((.*?)\)\n", scoring, re.S).group(1)  # type: ignore
    skipping = transform.replace("60'", "60 --on-bad-row skip'")
    assert skipping != transform
    env.sql(f"ALTER PIPELINE scoring_strict SET TRANSFORM ({skipping}); "
            "START PIPELINE scoring_strict")
    wait_for_cursor(env, "scoring_strict", 6)
    ids = {str(i) for (i,) in env.db(f"SELECT id FROM `{env.database}`.predictions")}
    assert ids == {g.split(b",")[0].decode() for g in good[:4]}


def _create_statement(env: Private, name: str) -> str:
    from matchstream.ddl.script import prepare_script

    text = (REPO / "sql" / "10_pipelines.sql").read_text(encoding="utf-8")
    for topic, private in env.topics.items():
        text = text.replace(f"${{KAFKA}}/{topic}'", f"${{KAFKA}}/{private}'")
    for stmt in prepare_script(text, "10_pipelines.sql", env.variables):
        if stmt.text.startswith(f"CREATE OR REPLACE PIPELINE {name} AS"):
            return stmt.text
    raise AssertionError(f"no pipeline {name} in sql/10_pipelines.sql")


def wait_for_state(env: Private, pipeline: str, state: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while env.catalog("PIPELINES", "STATE", pipeline) != [(state,)]:
        assert time.monotonic() < deadline, f"{pipeline} not {state} after {DEADLINE_S:.0f} s"
        time.sleep(0.2)


def wait_for_cursor(env: Private, pipeline: str, offset: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while [int(c) for (c,) in env.catalog("PIPELINES_CURSORS", "CURSOR_OFFSET", pipeline)] != [
            offset]:
        assert env.catalog("PIPELINES", "STATE", pipeline) != [("Error",)], errors(env, pipeline)
        assert time.monotonic() < deadline, f"{pipeline} not at {offset} after {DEADLINE_S:.0f} s"
        time.sleep(0.2)


def test_reject_rows_load_byte_for_byte_with_load_data(
    private: tuple[Private, list[str]], tmp_path: Path,
) -> None:
    """rejects.py's output through a plain LOAD DATA (the pipeline's defaults) into
    rejected_rows: every byte value, escapes, a message ending in a backslash, a huge one."""
    import subprocess
    import sys

    env, _ = private
    messages = [bytes(range(256)), b"ends with a backslash\\", b"\\N", b"\t", b"",
                "caf\u00e9".encode(), b"\xc3", os.urandom(200_000)]
    stdin = encode_frames(messages)
    proc = subprocess.run([sys.executable, str(REPO / "transforms" / "rejects.py"), "--spec",
                           env.variables["FEATURES"], "--rows", "scoring"], input=stdin,
                          capture_output=True, timeout=60, check=True)
    out = tmp_path / "rejects.tsv"
    out.write_bytes(proc.stdout)
    env.db(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{env.database}`.rejected_rows "
           "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
           "(batch_fingerprint, `position`, reason, message_bytes, message_sha256, message) "
           "SET pipeline_name = 'direct', loaded_at = NOW(6)", [str(out)])
    rows = env.db(f"SELECT `position`, message, message_bytes, message_sha256, "
                  f"batch_fingerprint FROM `{env.database}`.rejected_rows "
                  "WHERE pipeline_name = 'direct' ORDER BY `position`")
    assert [r[0] for r in rows] == list(range(len(messages)))
    for (_, message, size, sha, digest), sent in zip(rows, messages, strict=True):
        assert message == sent[:MESSAGE_PREFIX_BYTES]
        assert (size, sha, digest) == (len(sent), hashlib.sha256(sent).hexdigest(),
                                       fingerprint(stdin))
