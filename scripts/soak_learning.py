"""Soak: the training pipeline under random kills, then the exactly-once invariants.

On a private stack (fresh broker + MariaDB on free ports): the real training pipeline of
``sql/10_pipelines.sql`` on a two-partition topic (200-message batches), the engine as its own
process, rows produced at ``--rate`` for ``--seconds``. Every 1-5 s one of these, at random:
SIGKILL the engine (and start a new one), SIGKILL the warm trainer, KILL every open database
transaction. Then production stops, the pipeline catches up, and the script checks:

* published versions == training_metrics rows == committed batch partitions;
* the newest version's rows_seen_total == rows produced == SUM(rows);
* the versions form one chain (each row's parent is the version before it).

The deterministic proof is tests/integration/engine/test_learning_exactly_once.py; this is the
random test on top. Usage: ``.venv/bin/python scripts/soak_learning.py [--seconds 180]``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchkit import ROOT, pipeline, private_stack, sql_variables, statement
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import ENV_PREFIX, Config
from matchstream.db import connect
from matchstream.ddl import parse_statement
from matchstream.engine import catalog
from matchstream.engine.settings import DEFAULT_BATCHES_TO_KEEP, open_connection
from matchstream.engine.statements import execute
from matchstream.ml.store import ModelStore
from matchstream.ml.trainer_link import stop_trainer, trainer_pid
from matchstream.stack.engine_process import prepend_interpreter

LINES = (ROOT / "data" / "train.csv").read_bytes().splitlines()[1:]
TOPIC, DATABASE, PARTITIONS = "soak", "soak", 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to produce")
    parser.add_argument("--rate", type=float, default=300.0, help="rows per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with private_stack("soak-learning-") as (config, work):
        return _run(config, work, args)


def _engine(config: Config, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(config.with_(transform_timeout_s=120.0).to_env())
    env["MATCHSTREAM_TRAINER_IDLE_SECONDS"] = "30"
    prepend_interpreter(env)
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "matchstream.engine"], env=env,
                                stdout=sink, stderr=sink)


def _run(config: Config, work: Path, args: argparse.Namespace) -> int:
    KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap).create_topics(
        [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    model_dir = work / "models"
    conn = open_connection(config)
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute(f"USE {DATABASE}")
        cursor.execute(statement("00_schema.sql", "CREATE TABLE IF NOT EXISTS training_metrics"))
    conn.commit()
    stmt = pipeline("training", sql_variables(config, model_dir),
                    topic=TOPIC, batch=200, interval_ms=50)
    execute(parse_statement(stmt), conn=conn, config=config, sql_dir=work)
    execute(parse_statement("START PIPELINE training"), conn=conn, config=config, sql_dir=work)

    log = work / "engine.log"
    engine = _engine(config, log)
    produced = [0]
    done = threading.Event()

    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=5)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            due = int((time.monotonic() - started) * args.rate)
            for i in range(produced[0], due):
                producer.send(TOPIC, LINES[i % len(LINES)], partition=i % PARTITIONS)
            producer.flush()
            produced[0] = max(produced[0], due)
            time.sleep(0.05)
        producer.close()
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(args.seed)
    kills = {"engine": 0, "trainer": 0, "transactions": 0}
    while not done.is_set():
        time.sleep(rng.uniform(1.0, 5.0))
        what = rng.choice(list(kills))
        if what == "engine":
            engine.send_signal(signal.SIGKILL)
            engine.wait()
            engine = _engine(config, log)
        elif what == "trainer":
            pid = trainer_pid(model_dir)
            if pid is None:
                continue
            os.kill(pid, signal.SIGKILL)
        else:
            admin = connect(config)
            with admin.cursor() as cursor:
                cursor.execute("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
                               "WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                for (thread_id,) in cursor.fetchall():
                    try:
                        cursor.execute(f"KILL {int(thread_id)}")
                    except Exception:  # noqa: BLE001 - it may have committed meanwhile
                        pass
            admin.close()
        kills[what] += 1
    producer.join()
    total = produced[0]
    expected = {p: len(range(p, total, PARTITIONS)) for p in range(PARTITIONS)}
    deadline = time.monotonic() + 300
    while True:
        conn.commit()
        cursors = {p: c.cursor for p, c in
                   catalog.get_cursors(conn, DATABASE, "training").items()}
        conn.commit()
        if cursors == expected:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: cursors {cursors} never reached {expected} (log {log})")
        time.sleep(0.2)
    engine.terminate()
    engine.wait(timeout=60)
    stop_trainer(model_dir)

    with conn.cursor() as cursor:
        cursor.execute("SELECT model_version, parent_version, `rows`, rows_seen_total "
                       "FROM soak.training_metrics ORDER BY model_version")
        metrics = cursor.fetchall()
        cursor.execute(
            f"SELECT COUNT(*) FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES_BATCHES WHERE "
            "DATABASE_NAME = %s AND PIPELINE_NAME = 'training' AND BATCH_STATE = 'Succeeded' "
            "AND BATCH_PARTITION_MESSAGES > 0", [DATABASE])
        ((batches,),) = cursor.fetchall()
        cursor.execute("SELECT COUNT(DISTINCT BATCH_ID) FROM "
                       f"`{catalog.CATALOG_SCHEMA}`.PIPELINES_BATCHES WHERE DATABASE_NAME = %s",
                       [DATABASE])
        ((kept,),) = cursor.fetchall()
    # The engine deletes the rows of all but the newest 1,000 batches (docs/engine.md).
    trimmed = int(kept) >= DEFAULT_BATCHES_TO_KEEP
    conn.commit()
    store = ModelStore(model_dir)
    versions = store.listed_versions()
    newest = store.read_json(versions[-1], "metadata.json")["rows_seen_total"]
    chain = all(int(m[1] or 0) == int(m[0]) - 1 for m in metrics)
    print(f"produced {total} rows over {args.seconds:g} s; kills: {kills}")
    print(f"metrics rows {len(metrics)}, newest version {versions[-1]} (retained "
          f"{len(versions)}), committed batch partitions {batches}"
          f"{' (older batch rows trimmed)' if trimmed else ''}")
    print(f"rows_seen_total of the newest version {newest}, SUM(rows) "
          f"{sum(int(m[2]) for m in metrics)}, one chain: {chain}")
    ok = (len(metrics) == versions[-1] and (trimmed or len(metrics) == batches)
          and newest == total
          and sum(int(m[2]) for m in metrics) == total and chain
          and [int(m[0]) for m in metrics] == list(range(1, len(metrics) + 1)))
    print("soak: " + ("ok: nothing lost, nothing learnt twice" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
