"""Benchmark: the engine's cost per batch, with many small batches (the demo's scoring shape).

On a private stack: ``--messages`` 50-byte messages on one partition, a pipeline without a
transform and ``MAX_OFFSETS_PER_BATCH_PARTITION --batch``, run with ``START PIPELINE ...
FOREGROUND`` until the topic is drained. Prints batches per second and milliseconds per batch;
compare two trees back to back (the machine is shared and noisy). Every batch after the first
reads one message more (the history check of docs/engine.md, "Broker history"). Usage:
``.venv/bin/python scripts/bench_small_batches.py [--messages 20000] [--batch 100]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchkit import private_stack
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.ddl import parse_statement
from matchstream.engine.settings import open_connection
from matchstream.engine.statements import execute


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with private_stack("bench-small-") as (config, work):
        KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap).create_topics(
            [NewTopic("small", num_partitions=1, replication_factor=1)])
        producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=20)
        for i in range(args.messages):
            producer.send("small", f"{i}\t{'x' * 44}".encode())
        producer.flush()
        producer.close()
        conn = open_connection(config)
        with conn.cursor() as cursor:
            cursor.execute("CREATE DATABASE bench")
            cursor.execute("USE bench")
            cursor.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50))")
        conn.commit()

        def sql(text: str) -> object:
            return execute(parse_statement(text), conn=conn, config=config, sql_dir=work)

        sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{config.kafka_bootstrap}/small' "
            f"BATCH_INTERVAL 0 MAX_OFFSETS_PER_BATCH_PARTITION {args.batch} INTO TABLE t")
        started = time.perf_counter()
        sql("START PIPELINE p FOREGROUND")
        seconds = time.perf_counter() - started
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM t")
            (rows,) = cursor.fetchone()
        conn.close()

    batches = -(-args.messages // args.batch)
    print(f"messages {args.messages}, batch {args.batch}: {batches} batches in {seconds:.2f} s, "
          f"{batches / seconds:.1f} batches/s, {1000 * seconds / batches:.1f} ms per batch, "
          f"{rows} rows loaded")

    return 0 if rows == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
