"""Report: every bad-input class sent to the demo's pipelines, and where each message ended up.

On a private stack (fresh broker + MariaDB on free ports) the demo's ``sql/`` files are applied
unchanged and the engine runs as its own process. A first model version is trained from good
rows; then, for each class, one bad message is sent to the ``scoring`` topic between good rows
by a plain Kafka client (kafka-python, not our producer) and the script waits until the
pipelines have read past it. It prints one Markdown row per class: what the user sees (state of
the scoring pipelines, their error rows) and where the message went (``rejected_rows`` with its
reason), and that the good rows around it were scored. The 100 MB message goes last: it is the
one class the engine cannot read at all. Usage: ``.venv/bin/python scripts/bad_input_report.py``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import ROOT, query, start_demo_pipelines
from kafka import KafkaProducer

from matchstream.config import ENV_PREFIX, Config
from matchstream.engine import catalog
from matchstream.ml.trainer_link import stop_trainer
from matchstream.sqlrunner import default_variables
from matchstream.stack import Stack
from matchstream.stack.engine_process import prepend_interpreter
from matchstream.stack.ports import free_port

DATABASE = "speed_dating"
TRAIN = (ROOT / "data" / "train.csv").read_bytes().splitlines()
SCORE = (ROOT / "data" / "score.csv").read_bytes().splitlines()
GOOD = SCORE[1]
FIELDS = GOOD.split(b",")
CAT = catalog.CATALOG_SCHEMA


def classes() -> list[tuple[str, bytes]]:
    ten_mb = GOOD + b"," + b"9" * (10 * 1024 * 1024)
    return [
        ("malformed CSV (unbalanced quote)", b'"' + GOOD),
        ("wrong field count", b"1,2,3"),
        ("non-numeric value", b",".join([*FIELDS[:3], b"abc", *FIELDS[4:]])),
        ("empty message", b""),
        ("invalid UTF-8", GOOD[:10] + b"\xff\xfe" + GOOD[10:]),
        ("header row", SCORE[0]),
        ("training row (with label) on scoring", TRAIN[1]),
        ("non-integer id", b",".join([b"12x", *FIELDS[1:]])),
        ("id beyond BIGINT", b",".join([b"9223372036854775808", *FIELDS[1:]])),
        ("10 MB message", ten_mb),
        ("100 MB message", b"x" * (100 * 1024 * 1024)),
    ]


class Report:
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bad-input-"))
        self.config = Config.from_env(environ={}, state_dir=self.work / "state",
                                      kafka_port=free_port(), db_port=free_port())
        self.stack = Stack(self.config, with_engine=False)
        self.engine: subprocess.Popen[bytes] | None = None
        self.producer: Any = None
        self.next_id = 50_000_000

    def sql(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        return query(self.config, text, params)

    def send(self, topic: str, value: bytes) -> int:
        return int(self.producer.send(topic, value).get(timeout=120).offset)

    def good(self, n: int) -> list[int]:
        ids = []
        for _ in range(n):
            self.next_id += 1
            ids.append(self.next_id)
            self.send("scoring", str(self.next_id).encode() + GOOD[GOOD.index(b","):])
        return ids

    def cursors(self) -> dict[str, int]:
        return {str(p): int(c) for p, c in self.sql(
            f"SELECT PIPELINE_NAME, SUM(CURSOR_OFFSET) FROM `{CAT}`.PIPELINES_CURSORS "
            "WHERE DATABASE_NAME = %s GROUP BY PIPELINE_NAME", [DATABASE])}

    def states(self) -> dict[str, str]:
        return {str(p): str(s) for p, s in self.sql(
            f"SELECT PIPELINE_NAME, STATE FROM `{CAT}`.PIPELINES WHERE DATABASE_NAME = %s",
            [DATABASE])}

    def wait(self, end: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            cursors, states = self.cursors(), self.states()
            if all(cursors.get(p, 0) >= end for p in ("scoring", "scoring_rejects")):
                return
            if "Error" in (states.get("scoring"), states.get("scoring_rejects")):
                return
            time.sleep(0.5)

    def run(self) -> int:
        self.stack.up()
        try:
            return self._run()
        finally:
            if self.engine is not None:
                self.engine.kill()
                self.engine.wait()
            stop_trainer(Path(default_variables(self.config)["MODEL_DIR"]))
            self.stack.down()

    def _run(self) -> int:
        start_demo_pipelines(self.config)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(self.config.to_env())
        prepend_interpreter(env)
        with (self.work / "engine.log").open("ab") as sink:
            self.engine = subprocess.Popen([sys.executable, "-m", "matchstream.engine"],
                                           env=env, stdout=sink, stderr=sink)
        self.producer = KafkaProducer(bootstrap_servers=self.config.kafka_bootstrap,
                                      max_request_size=200 * 1024 * 1024, linger_ms=5)
        for line in TRAIN[1:501]:
            self.send("training", line)
        deadline = time.monotonic() + 180
        while not self.sql(f"SELECT 1 FROM {DATABASE}.training_metrics LIMIT 1"):
            if time.monotonic() > deadline:
                raise SystemExit("no model version after 180 s")
            time.sleep(0.5)
        print("| class | scoring pipelines | error rows | where the message went | good rows "
              "around it scored |")
        print("| --- | --- | --- | --- | --- |")
        for name, value in classes():
            errors_before = self.sql(f"SELECT COUNT(*) FROM `{CAT}`.PIPELINES_ERRORS WHERE "
                                     "DATABASE_NAME = %s AND ERROR_TYPE = 'Error'",
                                     [DATABASE])[0][0]
            before = self.good(3)
            offset = self.send("scoring", value)
            after = self.good(3)
            self.wait(offset + 4, timeout_s=240 if len(value) > 50_000_000 else 120)
            states = self.states()
            shown = f"scoring {states.get('scoring')}, scoring_rejects " \
                    f"{states.get('scoring_rejects')}"
            errors = self.sql(
                f"SELECT PIPELINE_NAME, ERROR_MESSAGE FROM `{CAT}`.PIPELINES_ERRORS WHERE "
                "DATABASE_NAME = %s AND ERROR_TYPE = 'Error' ORDER BY ERROR_ID", [DATABASE])
            new_errors = errors[int(errors_before):]
            error_text = "none" if not new_errors else (
                f"{len(new_errors)}: `{str(new_errors[-1][1])[:160]}...`")
            rejected = self.sql(
                f"SELECT reason, message_bytes FROM {DATABASE}.rejected_rows WHERE "
                "pipeline_name = 'scoring' AND message_sha256 = %s",
                [hashlib.sha256(value).hexdigest()])
            where = "; ".join(f"rejected_rows ({int(size):,} bytes): `{reason}`"
                              for reason, size in rejected) or "nowhere yet"
            scored = self.sql(f"SELECT COUNT(*) FROM {DATABASE}.predictions WHERE id IN "
                              f"({', '.join(str(i) for i in before + after)})")[0][0]
            print(f"| {name} | {shown} | {error_text} | {where} | {scored} of 6 |", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(Report().run())
