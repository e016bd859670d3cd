"""The archive form end to end on the local engine: the ``outcomes`` pipeline exactly as
``matchstream cluster apply`` renders it from sql/ (``WITH TRANSFORM ('file://localhost/...
matchstream-transforms.tar.gz', 'outcomes.py', ...)``), created, started and fed through the real
broker, loads its rows into a table created by sql/00_schema.sql's own statement. Only the
topic and the database are the test's own."""

from __future__ import annotations

from pathlib import Path

from matchstream.cluster.archive import ARCHIVE_NAME, pack
from matchstream.cluster.config import load_config
from matchstream.cluster.render import render_cluster_sql
from matchstream.ddl import split_statements
from tests.integration.engine.conftest import (  # noqa: F401 - fixtures used by name
    EngineHandle,
    Env,
    engine,
    env,
    env_factory,
    wait_for,
)
from tests.unit.cluster_files import BASE, write

REPO = Path(__file__).resolve().parents[2]
ROWS = 20


def outcome_ids(n: int) -> list[str]:
    lines = (REPO / "data" / "score.csv").read_text(encoding="utf-8").splitlines()[1: n + 1]
    return [line.split(",", 1)[0] for line in lines]


def test_the_rendered_outcomes_pipeline_loads_through_the_archive(
        env: Env, engine: EngineHandle, tmp_path: Path) -> None:  # noqa: F811
    archive = pack(tmp_path / "dist" / ARCHIVE_NAME)
    text = (BASE.replace("http://files.example.com/dist/matchstream-transforms.tar.gz",
                         f"file://localhost{archive}")
            .replace('brokers = ["kafka-1.example.com:9092", "kafka-2.example.com:9093"]',
                     f'brokers = ["{env.kafka}"]')
            .replace('"/mnt/matchstream/features.json"', f'"{REPO / "data" / "features.json"}"')
            .replace('"/mnt/matchstream/models"', f'"{tmp_path / "models"}"'))
    statements = render_cluster_sql(load_config(write(tmp_path, text)), REPO / "sql")
    (create,) = [s.text for s in statements if s.pipeline == "outcomes"]
    assert f"WITH TRANSFORM ('file://localhost{archive}', 'outcomes.py'," in create
    schema = (REPO / "sql" / "00_schema.sql").read_text(encoding="utf-8")
    (table,) = [s.text for s in split_statements(schema)
                if s.text.lstrip().startswith("CREATE TABLE IF NOT EXISTS outcomes ")]
    env.db(table)
    env.sql(create.replace(f"'{env.kafka}/outcomes'", f"'{env.kafka}/{env.topic}'"))

    ids = outcome_ids(ROWS)
    env.produce([f"{i},{n % 2}".encode() for n, i in enumerate(ids)] + [b"abc,1"])
    env.sql("START PIPELINE outcomes")
    wait_for(lambda: env.cursors("outcomes").get(0) == ROWS + 1, what="the outcomes cursor")
    assert env.state("outcomes") == "Running", env.errors("outcomes")
    loaded = env.db("SELECT id, `match` FROM outcomes ORDER BY id")
    assert sorted((int(i), n % 2) for n, i in enumerate(ids)) == [(int(a), int(b))
                                                                   for a, b in loaded]
    # The bad message was left out by outcomes.py (--on-bad-row skip), not loaded.
    assert env.errors("outcomes") == []
