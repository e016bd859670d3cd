"""A batch commits or rolls back as a whole across its partitions, and is retried as a whole, as
SingleStore's lifecycle has it ("the batch fails and all its transactions are rolled back"); after
the retries, STOP_ON_ERROR OFF skips only the failing batch partition and the next batch loads the
same ranges of the others (docs/engine.md, "Exactly once" and "Failures, retries, stop or skip").
"""

from __future__ import annotations

import pytest

from matchstream.engine import catalog
from matchstream.engine.errors import LoadError
from matchstream.engine.statements import Message

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration

CAT = catalog.CATALOG_SCHEMA


def _two_partitions(env_factory) -> Env:  # noqa: ANN001 - the conftest factory
    env = env_factory(partitions=2)
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([f"{i}\tn{i}".encode() for i in range(10)], partition=0)
    env.produce([b"100\tok", b"101", b"102\tok"], partition=1)  # offset 1 lacks a field
    return env


def _batches(env: Env) -> list[tuple[int, str, str, int, int]]:
    return [(int(b), str(p), str(s), int(lo), int(hi)) for b, p, s, lo, hi in env.db(
        f"SELECT BATCH_ID, BATCH_SOURCE_PARTITION_ID, BATCH_PARTITION_STATE, "
        f"BATCH_EARLIEST_OFFSET, BATCH_LATEST_OFFSET FROM `{CAT}`.PIPELINES_BATCHES "
        "WHERE DATABASE_NAME = %s ORDER BY ROW_ID", [env.database])]


def test_a_bad_row_in_one_partition_rolls_back_the_whole_batch(env_factory) -> None:
    env = _two_partitions(env_factory)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            "MAX_RETRIES_PER_BATCH_PARTITION 3 INTO TABLE t")
    with pytest.raises(LoadError) as raised:
        env.sql("START PIPELINE p FOREGROUND")
    assert (raised.value.partition, raised.value.start, raised.value.end) == (1, 0, 3)
    # Partition 0's ten good rows were in the same batch: nothing of it stays.
    assert env.count("t") == 0
    assert env.cursors("p") == {0: 0, 1: 0}
    errors = env.errors("p")
    assert len(errors) == 3  # one per attempt of the batch
    assert {(e["BATCH_SOURCE_PARTITION_ID"], e["ERROR_CODE"]) for e in errors} == {("1", 1261)}
    # Each attempt was the same batch: the same ranges of both partitions.
    assert {(e["BATCH_EARLIEST_OFFSET"], e["BATCH_LATEST_OFFSET"]) for e in errors} == {(0, 3)}
    assert all(state == "Failed" for _, _, state, _, _ in _batches(env))
    assert env.state("p") == "Stopped"  # a foreground run ends Stopped, also after an error


def test_the_fixed_batch_loads_both_partitions_in_one_commit(env_factory) -> None:
    env = _two_partitions(env_factory)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            "MAX_RETRIES_PER_BATCH_PARTITION 1 SKIP PARSER ERRORS INTO TABLE t")
    result = env.sql("START PIPELINE p FOREGROUND")
    assert result == Message("Query OK, 12 rows affected", 12)
    assert env.cursors("p") == {0: 10, 1: 3}
    batches = _batches(env)
    assert {b for b, _, _, _, _ in batches} == {batches[0][0]}  # one batch, both partitions
    assert sorted((p, s, lo, hi) for _, p, s, lo, hi in batches) == [
        ("0", "Succeeded", 0, 10), ("1", "Succeeded", 0, 3)]


def test_stop_on_error_off_skips_the_failing_partition_and_loads_the_others(
    env_factory, engine: EngineHandle,
) -> None:
    env = _two_partitions(env_factory)
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' BATCH_INTERVAL 50 "
            "MAX_RETRIES_PER_BATCH_PARTITION 2 STOP_ON_ERROR OFF INTO TABLE t")
    env.sql("START PIPELINE p")
    wait_for(lambda: env.cursors("p") == {0: 10, 1: 3}, what="partition 0 loaded, 1 skipped")
    # Partition 1's range 0..3 is skipped whole (its good rows too); partition 0 loads in the
    # next batch, with the range it had in the failed one.
    assert sorted(r[0] for r in env.db("SELECT id FROM t")) == list(range(10))
    assert env.db(f"SELECT STATE, SKIPPED_BATCH_PARTITIONS FROM `{CAT}`.PIPELINES "
                  "WHERE DATABASE_NAME = %s", [env.database]) == [("Running", 1)]
    assert len(env.errors("p")) == 2
    batches = _batches(env)
    failed = [(p, lo, hi) for _, p, s, lo, hi in batches if s == "Failed"]
    assert failed == [("1", 0, 3), ("1", 0, 3)]
    assert [(p, lo, hi) for _, p, s, lo, hi in batches if s == "Succeeded"] == [("0", 0, 10)]
    # New data on both partitions goes on loading.
    env.produce([b"103\tok"], partition=1)
    env.produce([b"10\tn10"], partition=0)
    wait_for(lambda: env.cursors("p") == {0: 11, 1: 4}, what="the next batch")
    assert env.count("t") == 12
