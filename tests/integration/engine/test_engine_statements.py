"""Lifecycle statements: TEST, EXTRACT, OR REPLACE, DROP, SET OFFSETS, SHOW CREATE, STOP."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from matchstream.engine import catalog
from matchstream.engine.batch import pipeline_dir_name
from matchstream.engine.catalog import State
from matchstream.engine.errors import (
    PipelineStateError,
    TransformNotUsable,
    UnknownPipeline,
    UnsupportedOption,
)
from matchstream.engine.settings import EngineSettings
from matchstream.engine.statements import Message, ResultSet
from matchstream.framing import encode_frames

from .conftest import EngineHandle, Env, wait_for

pytestmark = pytest.mark.integration


def _setup(env: Env, n: int = 10, extra: str = "") -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([f"{i}\tn{i}".encode() for i in range(n)])
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' {extra} "
            "INTO TABLE t (id, @n) SET name = UPPER(@n)")


def test_test_pipeline_returns_rows_and_writes_nothing(env: Env) -> None:
    _setup(env)
    result = env.sql("TEST PIPELINE p LIMIT 3")
    assert result == ResultSet(("id", "name"), [(0, "N0"), (1, "N1"), (2, "N2")])
    assert env.count("t") == 0
    assert env.cursors("p") == {}
    env.sql("START PIPELINE p FOREGROUND")
    assert env.sql("TEST PIPELINE p") == ResultSet(("id", "name"), [])  # all loaded: empty


def test_extract_writes_the_framed_bytes_a_transform_receives(env: Env) -> None:
    _setup(env, n=3)
    out = env.sql_dir / "sample.bin"
    env.sql(f"EXTRACT PIPELINE p INTO OUTFILE '{out}'")
    assert out.read_bytes() == encode_frames([b"0\tn0", b"1\tn1", b"2\tn2"])


def test_or_replace_keeps_cursors_and_drop_create_resets_them(env: Env) -> None:
    _setup(env, n=5)
    env.sql("START PIPELINE p FOREGROUND")
    env.sql(f"CREATE OR REPLACE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            "BATCH_INTERVAL 10 INTO TABLE t")
    assert env.cursors("p") == {0: 5}
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 0 rows affected", 0)
    env.sql("DROP PIPELINE p")
    with pytest.raises(UnknownPipeline):
        env.sql("DROP PIPELINE p")
    env.sql("DROP PIPELINE IF EXISTS p")
    env.db("DELETE FROM t")
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t")
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 5 rows affected", 5)


def test_set_offsets_latest_earliest_and_json(env: Env) -> None:
    _setup(env, n=6)
    env.sql("ALTER PIPELINE p SET OFFSETS LATEST")
    assert env.cursors("p") == {0: 6}
    assert env.sql("START PIPELINE p FOREGROUND").rowcount == 0  # type: ignore[union-attr]
    env.sql("""ALTER PIPELINE p SET OFFSETS '{"0": 4}'""")
    assert env.sql("START PIPELINE p FOREGROUND").rowcount == 2  # type: ignore[union-attr]
    env.sql("ALTER PIPELINE p SET OFFSETS EARLIEST")
    assert env.cursors("p") == {0: 0}


def test_state_rules_of_start_and_stop(env: Env, engine: EngineHandle) -> None:
    _setup(env, extra="BATCH_INTERVAL 100")
    with pytest.raises(PipelineStateError):
        env.sql("STOP PIPELINE p")
    env.sql("START PIPELINE p")
    with pytest.raises(PipelineStateError):
        env.sql("START PIPELINE p")
    env.sql("START PIPELINE IF NOT RUNNING p")
    with pytest.raises(PipelineStateError):
        env.sql("TEST PIPELINE p")
    wait_for(lambda: env.count("t") == 10)
    env.sql("STOP PIPELINE p")
    assert env.sql("SHOW PIPELINES").rows == [("p", "Stopped", "False")]  # type: ignore[union-attr]


def test_show_create_pipeline_is_normalised(env: Env) -> None:
    _setup(env)
    result = env.sql("SHOW CREATE PIPELINE p")
    assert isinstance(result, ResultSet) and result.columns == ("Pipeline", "Create Pipeline")
    text = result.rows[0][1]
    assert text.startswith("CREATE PIPELINE `p`")
    assert "FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\'" in text
    assert "(`t`.`id`,@n)" in text


def test_stop_during_a_slow_batch_never_leaves_half_of_it(env: Env, engine: EngineHandle) -> None:
    """The transform emits half its rows, says so (a file), then sleeps 60 s: a STOP then rolls
    the batch back at once (no row, cursor unmoved, no error row, no attempt) instead of waiting
    for it, and START afterwards loads the whole range once."""
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([f"{i}\tn{i}".encode() for i in range(20)])
    half = env.sql_dir / "half-written"
    env.transform("slow.py", (
        "import os, struct, sys, time\n"
        "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
        "rows = []\n"
        "while True:\n"
        "    hdr = inp.read(8)\n"
        "    if not hdr:\n"
        "        break\n"
        "    rows.append(inp.read(struct.unpack('<Q', hdr)[0]))\n"
        "for i, r in enumerate(rows):\n"
        "    out.write(r + b'\\n'); out.flush()\n"
        "    if i == len(rows) // 2:\n"
        f"        if not os.path.exists({str(half)!r}):\n"
        f"            open({str(half)!r}, 'w').close()\n"
        "            time.sleep(60)\n"))
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"WITH TRANSFORM ('file://{env.sql_dir}/slow.py', '', '') INTO TABLE t")
    env.sql("START PIPELINE p")
    wait_for(half.exists, what="the transform half way through its output")
    started = time.monotonic()
    env.sql("STOP PIPELINE p")
    # The batch is rolled back once the runner has seen the STOP and killed the transform.
    runner = f"pipeline-{env.database}.p"
    wait_for(lambda: not any(t.name == runner for t in threading.enumerate()),
             what="the runner to end")
    assert time.monotonic() - started < 10, "STOP waited for the sleeping transform"
    assert env.count("t") == 0
    assert env.cursors("p").get(0, 0) == 0
    assert env.errors("p") == []
    env.sql("START PIPELINE p")  # the marker exists: this time the transform does not sleep
    wait_for(lambda: env.cursors("p").get(0) == 20, what="the whole range after START")
    assert env.count("t") == 20
    (attempt,) = env.db(f"SELECT ATTEMPT FROM `{catalog.CATALOG_SCHEMA}`.PIPELINES_BATCHES "
                        "WHERE DATABASE_NAME = %s", [env.database])[0]
    assert attempt == 1  # the stopped try was no attempt


def test_stop_while_a_batch_holds_the_commit_lock_waits_for_it(
    env: Env, engine: EngineHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A batch past its guard (registry row locked) is stopped by nothing: the STOP statement
    waits for its commit, and all 20 rows are there when STOP returns."""
    from matchstream.faults import ENV_FAULT, ENV_ONCE
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    env.produce([f"{i}\tn{i}".encode() for i in range(20)])
    marker = tmp_path / "in-commit-window"
    monkeypatch.setenv(ENV_FAULT, "engine.after_guard:sleep")
    monkeypatch.setenv(ENV_ONCE, str(marker))
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' INTO TABLE t")
    env.sql("START PIPELINE p")
    wait_for(marker.exists, what="the batch past its guard")
    env.sql("STOP PIPELINE p")
    assert env.count("t") == 20
    assert env.cursors("p") == {0: 20}
    assert env.state("p") == "Stopped"


def test_start_all_checks_every_definition_and_stop_all_stops_foreground_runs(
    env: Env,
) -> None:
    """START ALL runs START's checks (a transform that can no longer run - original and the
    engine's copy gone - fails it and nothing starts); STOP ALL stops Running...Foreground like
    STOP PIPELINE does."""
    env.db("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
    transform = env.transform("ident.py", "import sys\nsys.stdout.write('')\n")
    for name in ("a", "b"):
        env.sql(f"CREATE PIPELINE {name} AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
                + (f"WITH TRANSFORM ('file://{transform}', '', '') " if name == "b" else "")
                + "INTO TABLE t")
    transform.unlink()
    shutil.rmtree(EngineSettings.from_config(env.config).unpack_dir
                  / pipeline_dir_name(env.database, "b"))
    with pytest.raises(TransformNotUsable):
        env.sql("START ALL PIPELINES")
    assert (env.state("a"), env.state("b")) == ("Stopped", "Stopped")
    env.sql("DROP PIPELINE b")
    assert env.sql("START ALL PIPELINES") == Message("Query OK, 1 pipelines started")
    assert env.state("a") == "Running"
    env.db(f"UPDATE `{catalog.CATALOG_SCHEMA}`.pipeline_registry SET STATE = %s "
           "WHERE DATABASE_NAME = %s", [State.FOREGROUND, env.database])
    assert env.sql("STOP ALL PIPELINES") == Message("Query OK, 1 pipelines stopped")
    assert env.state("a") == "Stopped"


def test_config_and_credentials_reach_the_consumer_and_stay_hidden(env: Env) -> None:
    """Allowed librdkafka keys are used (the pipeline loads through a consumer built with
    them), unknown ones fail CREATE/ALTER naming the key, and the secret never shows."""
    _setup(env, n=3, extra=(
        """CONFIG '{"security.protocol": "PLAINTEXT", "client.id": "cfg-test"}' """
        """CREDENTIALS '{"sasl.username": "u", "sasl.password": "pw-s3cret"}'"""))
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 3 rows affected", 3)
    shown = env.sql("SHOW CREATE PIPELINE p EXTENDED")
    assert isinstance(shown, ResultSet)
    text = shown.rows[0][1]
    assert "pw-s3cret" not in text and '"sasl.password": "<hidden>"' in text
    assert '"client.id": "cfg-test"' in text
    with pytest.raises(UnsupportedOption) as raised:
        env.sql("""ALTER PIPELINE p SET CONFIG '{"fetch.max.bytes": 1}'""")
    assert raised.value.clause == "CONFIG key 'fetch.max.bytes'"
    assert "not supported by the local engine" in str(raised.value)
    with pytest.raises(UnsupportedOption, match="CREDENTIALS key 'token'"):
        env.sql(f"CREATE PIPELINE q AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
                """CREDENTIALS '{"token": "x"}' INTO TABLE t""")
    assert [r[0] for r in env.sql("SHOW PIPELINES").rows] == ["p"]  # type: ignore[union-attr]
