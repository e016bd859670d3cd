"""Benchmark the local pipeline engine against the physical limits of this machine.

Measures, in one run, on a private stack (fresh broker + MariaDB on free ports):

1. raw consume rate from the broker (the engine's extractor, confluent-kafka); for comparison,
   kafka-python reading the same partition the way the previous extractor did (not a limit);
2. ``LOAD DATA LOCAL INFILE`` rate into MariaDB (one file, one transaction);
3. the engine end to end (``START PIPELINE ... FOREGROUND``) without a transform;
4. the engine end to end with an identity transform.

Each rate is also given as a ratio to the smaller of (1) and (2), the physical limit here.
Usage: ``.venv/bin/python scripts/bench_engine.py [--messages 200000] [--partitions 1]``; with
``--partitions N`` the messages are spread round robin over N partitions, which one batch (one
transaction) loads together, and (1) reads them one partition after the other.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchkit import identity_transform, private_stack
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.ddl import parse_statement
from matchstream.engine.extractor import Extractor
from matchstream.engine.settings import open_connection
from matchstream.engine.statements import execute


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    with private_stack("bench-engine-") as (config, work):
        return _run(config, work, args.messages, args.partitions)


def _run(config: Config, work: Path, n: int, partitions: int = 1) -> int:
    topic = "bench"
    KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap).create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=20,
                             batch_size=256 * 1024)
    lines = [f"{i}\tpayload-{i:08d}-abcdefghijklmnopqrstuvwxyz".encode() for i in range(n)]
    started = time.perf_counter()
    for i, value in enumerate(lines):
        producer.send(topic, value, partition=i % partitions)
    producer.flush()
    print(f"produced {n} messages in {time.perf_counter() - started:.2f} s")

    extractor = Extractor([config.kafka_bootstrap], topic, client_id="bench")
    marks = extractor.watermarks(list(range(partitions)))
    started = time.perf_counter()
    read = sum(len(extractor.read(p, 0, n, end_hint=marks[p].high).messages)
               for p in range(partitions))
    consume_s = time.perf_counter() - started
    extractor.close()
    assert read == n, read
    consume = n / consume_s
    kafka_python = _kafka_python_rate(config.kafka_bootstrap, topic, len(range(0, n, partitions)))

    conn = open_connection(config)
    with conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE bench")
        cursor.execute("USE bench")
        for table in ("raw_load", "e2e_plain", "e2e_transform"):
            cursor.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, payload VARCHAR(64))")
    conn.commit()
    path = work / "load.tsv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    started = time.perf_counter()
    with conn.cursor() as cursor:
        cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE raw_load", [str(path)])
    conn.commit()
    load = n / (time.perf_counter() - started)

    transform = identity_transform(work)
    rates = {}
    for table, clause in (("e2e_plain", ""),
                          ("e2e_transform", f"WITH TRANSFORM ('file://{transform}', '', '')")):
        name = f"p_{table}"
        execute(parse_statement(
            f"CREATE PIPELINE {name} AS LOAD DATA KAFKA '{config.kafka_bootstrap}/{topic}' "
            f"{clause} INTO TABLE {table}"), conn=conn, config=config, sql_dir=work)
        started = time.perf_counter()
        result = execute(parse_statement(f"START PIPELINE {name} FOREGROUND"), conn=conn,
                         config=config, sql_dir=work)
        rates[table] = n / (time.perf_counter() - started)
        assert getattr(result, "rowcount", None) == n, result
    conn.close()

    limit = min(consume, load)
    print(f"\nmessages: {n}, {partitions} partition(s), payload ~{len(lines[-1])} bytes")
    print(f"{'measurement':<42} {'msgs/s':>10} {'x limit':>8}")
    for label, rate in (
        ("raw consume (extractor, confluent-kafka)", consume),
        ("LOAD DATA LOCAL INFILE into MariaDB", load),
        ("engine end to end, no transform", rates["e2e_plain"]),
        ("engine end to end, identity transform", rates["e2e_transform"]),
        ("(comparison) raw consume, kafka-python", kafka_python),
    ):
        print(f"{label:<42} {rate:>10,.0f} {rate / limit:>8.2f}")
    return 0


def _kafka_python_rate(bootstrap: str, topic: str, n: int) -> float:
    """kafka-python reading the whole partition with the previous extractor's settings
    (assign + seek, no group, max_poll_records=10,000); a comparison row, not a limit."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=100,
                             max_partition_fetch_bytes=8 * 1024 * 1024,
                             fetch_max_bytes=64 * 1024 * 1024, max_poll_records=10_000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    count = 0
    started = time.perf_counter()
    while count < n:
        for records in consumer.poll(timeout_ms=200).values():
            count += len(records)
    seconds = time.perf_counter() - started
    consumer.close()
    return n / seconds


if __name__ == "__main__":
    sys.exit(main())
