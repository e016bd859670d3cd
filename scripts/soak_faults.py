"""Soak: both demo pipelines (and their reject pipelines) under faults every few seconds, then SQL
counts equal to what was produced.

On a private stack (fresh broker + MariaDB on free ports) the demo's own ``sql/`` files are
applied unchanged; the engine runs as its own process. For ``--seconds`` the script produces
training and scoring rows at ``--rate`` each (every row gets a unique id, so a duplicate or a
loss shows) with one bad message in every ``--bad-every`` (cycling through the bad-input
classes), and every 2-6 s injects one fault, at random:

* ``engine``: SIGKILL the engine, start a new one;
* ``fault-point``: SIGKILL the engine, start one armed to SIGKILL itself at a random point of
  the batch protocol (``matchstream.faults``), then one without;
* ``transactions``: KILL every open database transaction;
* ``trainer``: SIGKILL the warm trainer;
* ``mariadb``: SIGKILL mariadbd and start it again (at most once a minute);
* ``disk-full``: restart the engine with every LOAD failing ENOSPC for 3 s, then without.

Then production stops, a clean engine catches up, and the script checks, with SQL only:

* ``predictions``: one row per good scoring id the topic holds (COUNT = COUNT(DISTINCT id));
* ``training_metrics``: SUM(rows) = good training messages the topic holds, SUM(skipped_rows)
  = bad ones, versions 1..N one chain;
* ``rejected_rows``: one row per bad message per topic;

"Produced" is counted by reading the topics back at the end: a send the producer retries after
a lost acknowledgement may be stored twice, and such a duplicate was produced (training learns
it twice, scoring REPLACEs it).
* every pipeline Running, no PIPELINES_ERRORS row of type Error, SKIPPED_BATCH_PARTITIONS 0.

The deterministic proofs are tests/integration/engine/test_fault_points.py and
tests/integration/test_real_faults.py; this is the random test on top. Usage:
``.venv/bin/python scripts/soak_faults.py [--seconds 1800] [--rate 20]``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import ROOT, query, start_demo_pipelines
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from matchstream import demo
from matchstream.config import ENV_PREFIX, Config
from matchstream.db import connect
from matchstream.engine import catalog
from matchstream.faults import ENV_FAULT, ENV_ONCE
from matchstream.ml.trainer_link import stop_trainer, trainer_pid
from matchstream.sqlrunner import default_variables
from matchstream.stack import Stack
from matchstream.stack.engine_process import prepend_interpreter
from matchstream.stack.errors import PortInUseError
from matchstream.stack.ports import free_port

DATABASE = demo.DATABASE
TOPIC_OF = demo.PIPELINES  # pipeline -> the topic it reads
# The topics this soak feeds. sql/ also creates the outcomes pipelines: they run through every
# fault with nothing to read, and must end Running with no error like the others.
SOAKED_TOPICS = ("training", "scoring")
PIPELINES = tuple(p for p, topic in TOPIC_OF.items() if topic in SOAKED_TOPICS)
TRAIN = (ROOT / "data" / "train.csv").read_bytes().splitlines()
SCORE = (ROOT / "data" / "score.csv").read_bytes().splitlines()
KILL_POINTS = ("engine.after_transform", "engine.before_load", "engine.after_load",
               "engine.after_guard", "engine.before_commit", "store.after_files",
               "store.after_rename")


def bad_messages(header: bytes, good: bytes) -> list[tuple[str, bytes]]:
    """One message per bad-input class (docs/reliability.md), made from a good row."""
    fields = good.split(b",")
    non_integer_id = b",".join([b"x" + fields[0], *fields[1:]])
    non_numeric = b",".join([*fields[:3], b"abc", *fields[4:]])
    return [("empty", b""), ("wrong field count", b"1,2,3"), ("header row", header),
            ("invalid UTF-8", good[:10] + b"\xff\xfe" + good[10:]),
            ("non-integer id", non_integer_id), ("non-numeric value", non_numeric),
            ("malformed CSV", b'"' + good)]


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="soak-faults-"))
        self.config = Config.from_env(environ={}, state_dir=self.work / "state",
                                      kafka_port=free_port(), db_port=free_port())
        self.stack = Stack(self.config, with_engine=False)
        self.log = self.work / "engine.log"
        self.engine: subprocess.Popen[bytes] | None = None
        self.model_dir = Path(default_variables(self.config)["MODEL_DIR"])
        self.good = {"training": 0, "scoring": 0}
        self.bad = {"training": 0, "scoring": 0}
        self.faults: Counter[str] = Counter()
        self.rng = random.Random(args.seed)
        self.last_mariadb_kill = 0.0

    # -- the engine ------------------------------------------------------------------------
    def start_engine(self, extra: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(self.config.with_(transform_timeout_s=120.0).to_env())
        env["MATCHSTREAM_TRAINER_IDLE_SECONDS"] = "60"
        env.update(extra or {})
        prepend_interpreter(env)
        with self.log.open("ab") as sink:
            self.engine = subprocess.Popen([sys.executable, "-m", "matchstream.engine"],
                                           env=env, stdout=sink, stderr=sink)

    def kill_engine(self) -> None:
        if self.engine is not None:
            self.engine.send_signal(signal.SIGKILL)
            self.engine.wait()
            self.engine = None

    # -- production ------------------------------------------------------------------------
    def produce(self, done: threading.Event) -> None:
        producer = KafkaProducer(bootstrap_servers=self.config.kafka_bootstrap, linger_ms=5,
                                 acks="all")
        rows = {"training": TRAIN, "scoring": SCORE}
        bad = {t: bad_messages(r[0], r[1]) for t, r in rows.items()}
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < self.args.seconds:
            due = int((time.monotonic() - started) * self.args.rate)
            for i in range(sent, due):
                for topic, lines in rows.items():
                    if i % self.args.bad_every == self.args.bad_every - 1:
                        _, value = bad[topic][(i // self.args.bad_every) % len(bad[topic])]
                    else:
                        body = lines[1 + i % (len(lines) - 1)]
                        value = str(10_000_000 + i).encode() + body[body.index(b","):]
                    self._send(producer, topic, value)
            sent = max(sent, due)
            time.sleep(0.05)
        producer.close()
        done.set()

    @staticmethod
    def _send(producer: KafkaProducer, topic: str, value: bytes) -> None:
        """Send and wait for the ack, retrying a failed send: a retry may store the message
        twice, which is why the check counts what the topics hold, not what was sent."""
        for attempt in range(10):
            try:
                producer.send(topic, value).get(timeout=30)
                return
            except KafkaError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

    def topic_contents(self) -> dict[str, tuple[int, int, int]]:
        """What each topic holds: (good messages, bad messages, distinct good ids)."""
        consumer = KafkaConsumer(bootstrap_servers=self.config.kafka_bootstrap,
                                 enable_auto_commit=False, consumer_timeout_ms=5000,
                                 auto_offset_reset="earliest")
        bad = {v for t in ("training", "scoring")
               for _, v in bad_messages(*(TRAIN if t == "training" else SCORE)[:2])}
        out = {}
        try:
            for topic in SOAKED_TOPICS:
                partitions = [TopicPartition(topic, p)
                              for p in sorted(consumer.partitions_for_topic(topic) or [])]
                consumer.assign(partitions)
                consumer.seek_to_beginning(*partitions)
                ends = consumer.end_offsets(partitions)
                good = bad_count = 0
                ids: set[bytes] = set()
                while any(consumer.position(tp) < ends[tp] for tp in partitions):
                    for records in consumer.poll(timeout_ms=1000).values():
                        for record in records:
                            if record.value in bad:
                                bad_count += 1
                            else:
                                good += 1
                                ids.add(record.value.split(b",", 1)[0])
                out[topic] = (good, bad_count, len(ids))
        finally:
            consumer.close()
        return out

    # -- faults ----------------------------------------------------------------------------
    def inject(self) -> None:
        kinds: dict[str, Callable[[], bool]] = {
            "engine": self.fault_engine, "fault-point": self.fault_point,
            "transactions": self.fault_transactions, "trainer": self.fault_trainer,
            "mariadb": self.fault_mariadb, "disk-full": self.fault_disk_full,
        }
        kind = self.rng.choice(list(kinds))
        if kinds[kind]():
            self.faults[kind] += 1

    def fault_engine(self) -> bool:
        self.kill_engine()
        self.start_engine()
        return True

    def fault_point(self) -> bool:
        self.kill_engine()
        marker = self.work / f"fired-{time.monotonic_ns()}"
        self.start_engine({ENV_FAULT: self.rng.choice(KILL_POINTS) + ":kill",
                           ENV_ONCE: str(marker)})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.engine is not None \
                and self.engine.poll() is None:
            time.sleep(0.1)
        self.kill_engine()
        self.start_engine()
        return marker.exists()

    def fault_transactions(self) -> bool:
        admin = connect(self.config)
        killed = 0
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
                               "WHERE trx_mysql_thread_id <> CONNECTION_ID()")
                for (thread_id,) in cursor.fetchall():
                    try:
                        cursor.execute(f"KILL {int(thread_id)}")
                        killed += 1
                    except Exception:  # noqa: BLE001 - it may have committed meanwhile
                        pass
        finally:
            admin.close()
        return killed > 0

    def fault_trainer(self) -> bool:
        pid = trainer_pid(self.model_dir)
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def fault_mariadb(self) -> bool:
        if time.monotonic() - self.last_mariadb_kill < 60:
            return False
        pid = self.stack.mariadb.process.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        while self.stack.mariadb.process.running_pid() is not None:
            time.sleep(0.1)
        # The engine's reconnecting sessions may hold the port for a moment: the private
        # stack's ports are in the ephemeral range, where a connect to a port nothing listens
        # on can land on itself.
        deadline = time.monotonic() + 60
        while True:
            try:
                self.stack.up()
                break
            except PortInUseError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.last_mariadb_kill = time.monotonic()
        return True

    def fault_disk_full(self) -> bool:
        self.kill_engine()
        self.start_engine({ENV_FAULT: "engine.before_load:enospc"})
        time.sleep(3.0)
        self.kill_engine()
        self.start_engine()
        return True

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> int:
        self.stack.up()
        try:
            return self._run()
        finally:
            self.kill_engine()
            stop_trainer(self.model_dir)
            self.stack.down()

    def _run(self) -> int:
        start_demo_pipelines(self.config)
        self.start_engine()
        done = threading.Event()
        producer = threading.Thread(target=self.produce, args=(done,), daemon=True)
        producer.start()
        started = time.monotonic()
        while not done.is_set():
            done.wait(self.rng.uniform(2.0, 6.0))
            if not done.is_set():
                self.inject()
        producer.join()
        produced_in = time.monotonic() - started
        self.kill_engine()
        self.start_engine()
        self.wait_caught_up()
        self.kill_engine()
        return self.check(produced_in)

    def _sql(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        return query(self.config, text, params)

    def wait_caught_up(self) -> None:
        ends = {t: good + bad for t, (good, bad, _) in self.topic_contents().items()}
        deadline = time.monotonic() + 900
        while True:
            rows = self._sql(
                f"SELECT PIPELINE_NAME, SUM(CURSOR_OFFSET) FROM `{catalog.CATALOG_SCHEMA}`."
                "PIPELINES_CURSORS WHERE DATABASE_NAME = %s GROUP BY PIPELINE_NAME", [DATABASE])
            cursors = {str(p): int(c) for p, c in rows}
            if all(cursors.get(p) == ends[TOPIC_OF[p]] for p in PIPELINES):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: cursors {cursors} never reached {ends} "
                                 f"(log {self.log})")
            time.sleep(1.0)

    def check(self, seconds: float) -> int:
        held = self.topic_contents()
        for topic, (good, bad, _) in held.items():
            self.good[topic], self.bad[topic] = good, bad
        q = self._sql
        predictions = q(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {DATABASE}.predictions")[0]
        metrics = q(f"SELECT model_version, parent_version, `rows`, skipped_rows "
                    f"FROM {DATABASE}.training_metrics ORDER BY model_version")
        rejects = dict(q(f"SELECT pipeline_name, COUNT(*) FROM {DATABASE}.rejected_rows "
                         "GROUP BY pipeline_name"))
        errors = q(f"SELECT COUNT(*) FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES_ERRORS WHERE "
                   "DATABASE_NAME = %s AND ERROR_TYPE = 'Error'", [DATABASE])[0][0]
        states = dict(q(f"SELECT PIPELINE_NAME, STATE FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES "
                        "WHERE DATABASE_NAME = %s", [DATABASE]))
        skipped = q(f"SELECT SUM(SKIPPED_BATCH_PARTITIONS) FROM `{catalog.CATALOG_SCHEMA}`."
                    "PIPELINES WHERE DATABASE_NAME = %s", [DATABASE])[0][0]
        learned = sum(int(m[2]) for m in metrics)
        left_out = sum(int(m[3]) for m in metrics)
        chain = [int(m[0]) for m in metrics] == list(range(1, len(metrics) + 1)) and all(
            int(m[1] or 0) == int(m[0]) - 1 for m in metrics)
        print(f"produced for {seconds:.0f} s; the topics hold: good {self.good}, bad "
              f"{self.bad}, distinct good scoring ids {held['scoring'][2]}")
        print(f"faults injected: {dict(self.faults)} (total {sum(self.faults.values())})")
        print(f"predictions: {predictions[0]} rows, {predictions[1]} distinct ids "
              f"(expected {held['scoring'][2]})")
        print(f"training_metrics: {len(metrics)} versions, SUM(rows) {learned} (expected "
              f"{self.good['training']}), SUM(skipped_rows) {left_out} (expected "
              f"{self.bad['training']}), one chain: {chain}")
        print(f"rejected_rows: {rejects} (expected training {self.bad['training']}, scoring "
              f"{self.bad['scoring']})")
        print(f"states {states}; Error rows {errors}; skipped batch partitions {skipped}")
        ok = (tuple(predictions) == (held["scoring"][2],) * 2
              and learned == self.good["training"] and left_out == self.bad["training"]
              and chain and rejects.get("training", 0) == self.bad["training"]
              and rejects.get("scoring", 0) == self.bad["scoring"]
              and set(states.values()) == {"Running"} and int(errors) == 0
              and int(skipped or 0) == 0)
        print("soak: " + ("ok: nothing lost, nothing twice" if ok else
                          f"FAILED (work dir {self.work})"))
        return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seconds", type=float, default=1800.0, help="how long to produce")
    parser.add_argument("--rate", type=float, default=20.0, help="rows per second per topic")
    parser.add_argument("--bad-every", type=int, default=97,
                        help="one bad message in every N per topic")
    parser.add_argument("--seed", type=int, default=1)
    return Soak(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
