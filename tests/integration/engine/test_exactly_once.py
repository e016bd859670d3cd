"""Exactly once, proven: SIGKILL the engine process at random moments while 100,000 messages
flow through a transform, restart it each time, and check every message is in the table once.

The table has no unique key on purpose, so a duplicate would show up instead of being absorbed.
Random kills cannot show that one landed inside a batch's transaction: that proof is
test_fault_points.py, which kills the engine at each point of the protocol; this is the soak on
top of it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from matchstream.config import ENV_PREFIX

from .conftest import IDENTITY, Env, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 100_000
PARTITIONS = 2
KILLS = 24


def _engine_process(env: Env, log: Path) -> subprocess.Popen[bytes]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    child_env.update(env.config.with_(transform_timeout_s=30.0).to_env())
    with log.open("ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "matchstream.engine"], env=child_env,
                                stdout=sink, stderr=sink)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(env_factory, tmp_path) -> None:
    env = env_factory(partitions=PARTITIONS)
    env.db("CREATE TABLE seen (id INT NOT NULL, payload VARCHAR(40), KEY (id))")
    env.transform("ident.py", IDENTITY)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            "MAX_OFFSETS_PER_BATCH_PARTITION 1500 "
            f"WITH TRANSFORM ('file://{env.sql_dir}/ident.py', '', '') "
            "INTO TABLE seen")
    env.sql("START PIPELINE p")

    def produce() -> None:
        for start in range(0, MESSAGES, 1000):
            for i in range(start, start + 1000):
                env.producer.send(env.topic, f"{i}\tpayload-{i}".encode(),
                                  partition=i % PARTITIONS)
            env.producer.flush()
            time.sleep(0.35)  # ~35 s of flow, so the kills land while data is moving

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(20240601)
    log = tmp_path / "engine.log"
    kills = 0
    loaded_at_kill = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        while kills < KILLS:
            before = env.count("seen")
            proc = _engine_process(env, log)
            # Kill only once this engine has committed something, then at a random moment of
            # the following batches (extract, transform or load), so every kill hits real work.
            wait_for(lambda b=before: env.count("seen") > b or not producer.is_alive(),
                     timeout=60, what="progress before the next kill")
            time.sleep(rng.uniform(0.0, 0.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            proc = None
            kills += 1
            loaded_at_kill.append(env.count("seen"))
        producer.join()
        proc = _engine_process(env, log)
        wait_for(lambda: sum(env.cursors("p").values()) == MESSAGES, timeout=240,
                 what="all offsets committed")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc = None
    finally:
        # An engine still running here (a wait_for timed out) is killed, not leaked into the
        # next test where it would keep loading this test's pipeline.
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        producer.join()
    total, distinct, low, high = env.db("SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) "
                                        "FROM seen")[0]
    assert (total, distinct, low, high) == (MESSAGES, MESSAGES, 0, MESSAGES - 1)
    # The kills really happened while data was flowing, not all before or after it.
    assert len({n for n in loaded_at_kill if 0 < n < MESSAGES}) >= 10, (
        loaded_at_kill, log.read_text()[-3000:])
    assert env.state("p") == "Running"
