"""Drift through the real training pipeline: the synthetic stream with a changed concept at row
3,000 goes to Kafka, the pipeline of sql/10_pipelines.sql learns it with train.py and loads the
metrics rows, and the view drift_alerts (sql/20_views.sql) names the change and nothing before.
The same stream is checked at the trainer level, with both kinds of change, in
tests/transforms/test_drift_stream.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from matchstream.stack.engine_process import prepend_interpreter

from ...conftest import REPO
from ...transforms.test_drift_stream import CHANGE_AT, ERROR_DRIFT_WITHIN, SPEC, _stream
from .conftest import Env
from .test_learning_exactly_once import _statement

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 250


def test_drift_alerts_name_the_change_and_nothing_before_it(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    model_dir = tmp_path / "models"
    env.db(_statement(REPO / "sql" / "00_schema.sql",
                      "CREATE TABLE IF NOT EXISTS training_metrics"))
    env.db(_statement(REPO / "sql" / "20_views.sql", "CREATE VIEW drift_alerts"))
    pipeline = _statement(REPO / "sql" / "10_pipelines.sql", "CREATE OR REPLACE PIPELINE training",
                          {"KAFKA": env.kafka, "TRANSFORMS": str(REPO / "transforms"),
                           "MODEL_DIR": str(model_dir), "FEATURES": str(spec)})
    pipeline = pipeline.replace(f"{env.kafka}/training'", f"{env.kafka}/{env.topic}'")
    pipeline = re.sub(r"MAX_OFFSETS_PER_BATCH_PARTITION \d+",
                      f"MAX_OFFSETS_PER_BATCH_PARTITION {BATCH}", pipeline)
    env.sql(pipeline)
    lines = _stream("concept")
    env.produce(lines)

    path = {"PATH": os.environ.get("PATH", "")}
    prepend_interpreter(path)  # train.py's `#!/usr/bin/env python3` finds this venv's python
    monkeypatch.setenv("PATH", path["PATH"])
    env.sql("START PIPELINE training FOREGROUND")

    assert env.db("SELECT COUNT(*), MAX(rows_seen_total) FROM training_metrics") == [
        (len(lines) // BATCH, len(lines))]
    alerts = env.db("SELECT kind, rows_seen_total FROM drift_alerts ORDER BY rows_seen_total")
    assert alerts, "the change was never detected"
    kind, at = alerts[0]
    assert kind == "error", alerts
    assert CHANGE_AT < at <= CHANGE_AT + max(ERROR_DRIFT_WITHIN, BATCH), alerts
    assert all(k == "error" for k, _ in alerts), "the inputs did not move"
