"""Benchmark scoring in the ingest path against the rate the machine can read the topic.

Measures, in one run, on a private stack (fresh broker + MariaDB on free ports), N scoring rows
(``data/score.csv`` again and again, ~480 bytes each) on a one-partition topic:

1. the baseline: a plain confluent-kafka consumer reading the whole partition, and for
   comparison the engine's extractor reading the same range (no transform, no database);
2. the engine end to end with an identity transform (framed stdin -> lines) into a table;
3. the engine end to end with the real scoring pipeline of ``sql/10_pipelines.sql``
   (``score.py``, ``REPLACE INTO predictions``), the batch size left at SingleStore's default,
   once per estimator: a version trained by ``train.py --model linear`` and one by
   ``--model dnn``, each in its own model directory;

each as a ratio to (1), and dnn's score.py rate as a ratio to linear's. Every run checks the
rows that arrived. Usage: ``.venv/bin/python scripts/bench_scoring.py [--rows 100000]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from benchkit import ROOT, identity_transform, pipeline, private_stack, sql_variables, statement
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.ddl import parse_statement
from matchstream.engine.extractor import Extractor
from matchstream.engine.settings import open_connection
from matchstream.engine.statements import execute
from matchstream.framing import encode_frames
from matchstream.ml.estimators import ESTIMATORS
from matchstream.stack.engine_process import prepend_interpreter

SPEC = ROOT / "data" / "features.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    prepend_interpreter(os.environ)  # score.py's `#!/usr/bin/env python3`
    with private_stack("bench-scoring-") as (config, work):
        return _run(config, work, args.rows)


def _run(config: Config, work: Path, n: int) -> int:
    topic = "bench-scoring"  # `up` creates the project's own "scoring" topic
    KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap).create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)])
    source = (ROOT / "data" / "score.csv").read_bytes().splitlines()[1:]
    values = [source[i % len(source)] for i in range(n)]
    producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=20,
                             batch_size=512 * 1024)
    for value in values:
        producer.send(topic, value, partition=0)
    producer.flush()
    size = sum(map(len, values)) / n

    plain = _plain_consumer_rate(config.kafka_bootstrap, topic, n)
    extractor = Extractor([config.kafka_bootstrap], topic, client_id="bench")
    high = extractor.watermarks([0])[0].high
    started = time.perf_counter()
    data = extractor.read(0, 0, n, end_hint=high)
    read = n / (time.perf_counter() - started)
    extractor.close()
    assert len(data.messages) == n

    train_lines = (ROOT / "data" / "train.csv").read_bytes().splitlines()[1:501]
    model_dirs = {}
    for estimator in ESTIMATORS:  # one version each to score with, trained in-process
        model_dirs[estimator] = work / f"models-{estimator}"
        subprocess.run([sys.executable, str(ROOT / "transforms" / "train.py"), "--model-dir",
                        str(model_dirs[estimator]), "--spec", str(SPEC), "--model", estimator],
                       input=encode_frames(train_lines),
                       env={**os.environ, "MATCHSTREAM_TRAINER": "cold"}, check=True,
                       capture_output=True)

    conn = open_connection(config)
    with conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE bench")
        cursor.execute("USE bench")
        cursor.execute(statement("00_schema.sql", "CREATE TABLE IF NOT EXISTS predictions"))
        cursor.execute("CREATE TABLE lines_out (line TEXT)")
    conn.commit()
    identity = identity_transform(work)
    pipelines = {
        "identity": (f"CREATE PIPELINE identity AS LOAD DATA KAFKA "
                     f"'{config.kafka_bootstrap}/{topic}' WITH TRANSFORM "
                     f"('file://{identity}', '', '') INTO TABLE lines_out", "lines_out"),
        **{f"score.py {estimator}": (pipeline("scoring", sql_variables(config, directory),
                                              topic=topic), "predictions")
           for estimator, directory in model_dirs.items()},
    }
    rates = {}
    for name, (stmt, table_name) in pipelines.items():
        with conn.cursor() as cursor:  # each scoring run loads every id anew
            cursor.execute("DELETE FROM predictions")
        conn.commit()
        if name != "identity":  # the next model's pipeline reads the topic from offset 0 again
            execute(parse_statement("DROP PIPELINE IF EXISTS scoring"), conn=conn,
                    config=config, sql_dir=work)
        execute(parse_statement(stmt), conn=conn, config=config, sql_dir=work)
        running = "identity" if name == "identity" else "scoring"
        started = time.perf_counter()
        result = execute(parse_statement(f"START PIPELINE {running} FOREGROUND"), conn=conn,
                         config=config, sql_dir=work)
        rates[name] = n / (time.perf_counter() - started)
        assert getattr(result, "rowcount", None) is not None, result
        conn.commit()
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table_name}")
            ((count,),) = cursor.fetchall()
        conn.commit()
        expected = n if name == "identity" else len(set(values))  # REPLACE keeps one per id
        assert count == expected, (name, count, expected)
        if name != "identity":
            with conn.cursor() as cursor:
                cursor.execute("SELECT COUNT(DISTINCT model_version), MIN(model_version) "
                               "FROM predictions")
                assert cursor.fetchall()[0] == (1, 1), name
            conn.commit()
    conn.close()

    print(f"\nrows: {n}, 1 partition, payload ~{size:.0f} bytes, one batch")
    print(f"{'measurement':<46} {'rows/s':>10} {'x plain':>8}")
    for label, rate in (("plain confluent-kafka consumer (the baseline)", plain),
                        ("the engine's extractor reading the range", read),
                        ("engine end to end, identity transform", rates["identity"]),
                        *((f"engine end to end, score.py, {e} model", rates[f"score.py {e}"])
                          for e in ESTIMATORS)):
        print(f"{label:<46} {rate:>10,.0f} {rate / plain:>8.2f}")
    for estimator in ESTIMATORS[1:]:
        print(f"score.py with the {estimator} model / with the {ESTIMATORS[0]} model: "
              f"{rates[f'score.py {estimator}'] / rates[f'score.py {ESTIMATORS[0]}']:.2f}")
    return 0


def _plain_consumer_rate(bootstrap: str, topic: str, n: int) -> float:
    """A bare confluent-kafka consumer reading the partition from the start: what any client
    on this machine gets from the broker, with nothing done to the messages."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-plain",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                         "queued.min.messages": 200_000})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    count = 0
    started = time.perf_counter()
    while count < n:
        count += sum(m.error() is None for m in consumer.consume(num_messages=10_000,
                                                                 timeout=1.0))
    seconds = time.perf_counter() - started
    consumer.close()
    return n / seconds


if __name__ == "__main__":
    sys.exit(main())
