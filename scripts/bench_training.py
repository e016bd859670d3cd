"""Benchmark learning in the ingest path: the training pipeline end to end, warm and cold, for
each estimator (``--model linear`` and ``--model dnn``).

Measures, in one run, on a private stack (fresh broker + MariaDB on free ports), with the real
training pipeline of ``sql/10_pipelines.sql`` (only its batch size changed) and real train.py:

1. End to end training rate (``START PIPELINE ... FOREGROUND`` over a backlog of rows, until the
   cursor reaches the end), with 500-row and 10,000-row batches, for train.py's warm trainer
   (already started, as in steady state) and for ``--trainer cold`` (TensorFlow imported per
   batch, the path before the warm trainer); the ratio warm / cold per batch size; all of it
   for each estimator, and each dnn rate as a ratio to linear's in the same run.
2. Freshness: 500-row training batches produced one after another into a running engine; the
   time from the producer's flush to the moment a scorer (``ModelStore.read_live_model``, what
   score.py calls) sees a version that learned the batch's last row; p50 and p95.
   (Both estimators.)
3. For scale: river's LogisticRegression, predict-then-learn one row at a time (progressive
   validation) on the same design matrix, in this process, without a pipeline.

Every figure is checked: each run's versions equal its metrics rows and rows_seen_total equals
the rows produced. Usage:
``.venv/bin/python scripts/bench_training.py [--quick] [--models linear,dnn]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from benchkit import ROOT, pipeline, private_stack, sql_variables, statement
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from matchstream.config import Config
from matchstream.ddl import parse_statement
from matchstream.engine.engine import Engine
from matchstream.engine.settings import EngineSettings, open_connection
from matchstream.engine.statements import execute
from matchstream.framing import encode_frames
from matchstream.ml.store import ModelStore
from matchstream.ml.train_protocol import TrainRequest
from matchstream.ml.trainer_link import stop_trainer, train
from matchstream.stack.engine_process import prepend_interpreter

SPEC = ROOT / "data" / "features.json"
LINES = (ROOT / "data" / "train.csv").read_bytes().splitlines()[1:]


def rows(n: int) -> list[bytes]:
    """``n`` training rows: data/train.csv again and again."""
    return [LINES[i % len(LINES)] for i in range(n)]


class Bench:
    def __init__(self, config: Config, work: Path) -> None:
        self.config, self.work = config, work
        self.admin = KafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
        self.producer = KafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=5,
                                      batch_size=256 * 1024)
        self.conn = open_connection(config)
        self.cases = 0

    def pipeline(self, batch: int, mode: str, estimator: str, interval: int = 500
                 ) -> tuple[str, Path]:
        """A database, topic and training pipeline as sql/ defines them; returns db, model dir."""
        self.cases += 1
        name = f"t{self.cases}"
        self.admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        model_dir = self.work / f"models-{name}"
        with self.conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
            cursor.execute(f"USE {name}")
            cursor.execute(statement("00_schema.sql",
                                     "CREATE TABLE IF NOT EXISTS training_metrics"))
        self.conn.commit()
        stmt = pipeline("training", sql_variables(self.config, model_dir), topic=name,
                        batch=batch, interval_ms=interval)
        stmt = stmt.replace("--spec", f"--model {estimator} --spec")
        if mode == "cold":
            stmt = stmt.replace("--spec", "--trainer cold --spec")
        self.sql(stmt)
        return name, model_dir

    def sql(self, text: str) -> object:
        return execute(parse_statement(text), conn=self.conn, config=self.config,
                       sql_dir=self.work)

    def produce(self, topic: str, values: list[bytes]) -> None:
        for value in values:
            self.producer.send(topic, value, partition=0)
        self.producer.flush()

    def check(self, database: str, model_dir: Path, produced: int, outside: int = 0) -> int:
        """Versions == metrics rows (+ ``outside`` versions trained without the pipeline),
        rows_seen_total == rows produced; returns the number of metrics rows."""
        self.conn.commit()
        with self.conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*), MAX(rows_seen_total) FROM {database}."
                           "training_metrics")
            ((count, seen),) = cursor.fetchall()
        self.conn.commit()
        store = ModelStore(model_dir)
        versions = store.listed_versions()
        assert len(versions) == count + outside and int(seen) == produced, (versions, count, seen)
        return int(count)


def throughput(bench: Bench, batch: int, n: int, mode: str, estimator: str) -> tuple[float, int]:
    database, model_dir = bench.pipeline(batch, mode, estimator)
    warmup = 0
    if mode == "warm":  # the trainer of this model directory is up, as in steady state
        warmup = 500
        train(TrainRequest(encode_frames(rows(warmup)), str(model_dir), str(SPEC),
                           estimator=estimator))
    bench.produce(database, rows(n)[warmup:] if warmup else rows(n))
    bench.conn.select_db(database)
    started = time.perf_counter()
    bench.sql("START PIPELINE training FOREGROUND")
    seconds = time.perf_counter() - started
    versions = bench.check(database, model_dir, n, outside=1 if warmup else 0)
    head = ModelStore(model_dir).latest_version()
    assert head is not None
    assert ModelStore(model_dir).read_json(head, "metadata.json")["estimator"] == estimator
    stop_trainer(model_dir)
    return (n - warmup) / seconds, versions


def freshness(bench: Bench, batches: int, estimator: str) -> list[float]:
    """Seconds from producing a 500-row batch to a scorer seeing a version that learned it."""
    database, model_dir = bench.pipeline(500, "warm", estimator)
    settings = EngineSettings.from_config(bench.config, work_dir=bench.work / "work",
                                          unpack_dir=bench.work / "unpack",
                                          transform_timeout_s=300.0)
    engine = Engine(bench.config, settings)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    bench.conn.select_db(database)
    bench.sql("START PIPELINE training")
    store = ModelStore(model_dir)
    delays = []
    produced = 0
    try:
        for i in range(batches + 1):  # the first batch starts the trainer: not counted
            values = rows(produced + 500)[produced:]
            bench.produce(database, values)
            flushed = time.perf_counter()
            produced += 500
            deadline = flushed + 120
            while True:
                try:
                    version, _ = store.read_live_model()
                    if store.read_json(version, "metadata.json")["rows_seen_total"] >= produced:
                        break
                except Exception:  # noqa: BLE001 - no version yet, or one being pruned
                    pass
                if time.perf_counter() > deadline:
                    raise AssertionError(f"batch {i} not learnt within 120 s")
                time.sleep(0.005)
            if i:
                delays.append(time.perf_counter() - flushed)
            time.sleep(0.3)
    finally:
        bench.sql("STOP PIPELINE training")
        stop.set()
        thread.join(timeout=60)
    bench.check(database, model_dir, produced)
    stop_trainer(model_dir)
    return delays


def river_rate() -> tuple[float, float]:
    """river LogisticRegression, predict_proba_one then learn_one per row, on our features."""
    from river import linear_model, metrics

    from matchstream.ml.features import decode_batch, design_matrix
    from matchstream.ml.spec import FeatureSpec

    spec = FeatureSpec.load(SPEC)
    batch = decode_batch(LINES, spec, with_label=True)
    matrix = design_matrix(spec, batch.numeric, batch.categorical)
    assert batch.labels is not None
    xs = [dict(enumerate(row.tolist())) for row in matrix]
    ys = [bool(y) for y in batch.labels]
    model, auc = linear_model.LogisticRegression(), metrics.ROCAUC()
    started = time.perf_counter()
    for x, y in zip(xs, ys, strict=True):
        auc.update(y, model.predict_proba_one(x).get(True, 0.0))
        model.learn_one(x, y)
    return len(xs) / (time.perf_counter() - started), auc.get()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--quick", action="store_true", help="fewer rows (a smoke run)")
    parser.add_argument("--models", default="linear,dnn",
                        help="estimators to measure, comma-separated; the first is the baseline")
    args = parser.parse_args()
    models = args.models.split(",")
    scale = 5 if args.quick else 1
    prepend_interpreter(__import__("os").environ)  # train.py's `#!/usr/bin/env python3`
    with private_stack("bench-training-") as (config, work):
        bench = Bench(config, work)
        cases = [(500, 20_000 // scale, "warm"), (500, 2_000 // scale, "cold"),
                 (10_000, 100_000 // scale, "warm"), (10_000, 20_000, "cold")]
        results = {}
        delays = {}
        for estimator in models:
            for batch, n, mode in cases:
                rate, versions = throughput(bench, batch, n, mode, estimator)
                results[(estimator, batch, mode)] = rate
                print(f"  {estimator:<6} {mode:<4} batches of {batch:>6}: {n:>7} rows, "
                      f"{versions:>3} versions, {rate:>9,.0f} rows/s", flush=True)
            delays[estimator] = freshness(bench, 20 // (2 if args.quick else 1), estimator)
        rate, auc = river_rate()
    baseline = models[0]
    print("\ntraining pipeline end to end (rows/s)")
    print(f"{'model':<7} {'batch':>7} {'warm':>9} {'cold':>9} {'warm/cold':>10} "
          f"{'warm x ' + baseline:>14} {'cold x ' + baseline:>14}")
    for estimator in models:
        for batch in (500, 10_000):
            warm, cold = results[(estimator, batch, "warm")], results[(estimator, batch, "cold")]
            print(f"{estimator:<7} {batch:>7} {warm:>9,.0f} {cold:>9,.0f} {warm / cold:>10.1f} "
                  f"{warm / results[(baseline, batch, 'warm')]:>14.2f} "
                  f"{cold / results[(baseline, batch, 'cold')]:>14.2f}")
    for estimator in models:
        q = statistics.quantiles(delays[estimator], n=20)
        print(f"\n{estimator}: freshness over {len(delays[estimator])} batches of 500: p50 "
              f"{statistics.median(delays[estimator]):.2f} s, p95 {q[18]:.2f} s, max "
              f"{max(delays[estimator]):.2f} s")
    print(f"river LogisticRegression, progressive validation in-process: {rate:,.0f} rows/s "
          f"(AUC {auc:.3f} over {len(LINES)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
