"""Transforms as on a SingleStore leaf, on the real broker and MariaDB: copied at CREATE and run
from the copy (edits need RELOAD TRANSFORM, files next to it are out of reach), archives unpacked,
a minimal environment, only file:// URIs (docs/engine.md, "Transforms")."""

from __future__ import annotations

import tarfile

import pytest

from matchstream.engine.errors import BatchPartitionError, TransformNotUsable
from matchstream.engine.settings import EngineSettings
from matchstream.engine.statements import Message

from .conftest import Env

pytestmark = pytest.mark.integration

# Writes "<id>\t<tag>" per message; the tag says which version of the file ran.
TAGGED = (
    "import struct, sys\n"
    "inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
    "while (hdr := inp.read(8)):\n"
    "    (n,) = struct.unpack('<Q', hdr)\n"
    "    out.write(inp.read(n) + b'\\t' + TAG + b'\\n')\n"
)


def _create(env: Env, uri: str, program: str = "") -> None:
    env.sql(f"CREATE PIPELINE p AS LOAD DATA KAFKA '{env.kafka}/{env.topic}' "
            f"MAX_RETRIES_PER_BATCH_PARTITION 0 WITH TRANSFORM ('{uri}', '{program}', '') "
            "INTO TABLE t")


def _tags(env: Env) -> list[tuple[object, ...]]:
    return [tuple(r) for r in env.db("SELECT id, tag FROM t ORDER BY id")]


def test_edits_need_reload_transform(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    path = env.transform("tag.py", "TAG = b'v1'\n" + TAGGED)
    _create(env, f"file://{path}")
    path.write_text(path.read_text().replace("b'v1'", "b'v2'"))  # edited after CREATE
    env.produce([b"1"])
    env.sql("START PIPELINE p FOREGROUND")
    env.sql("ALTER PIPELINE p SET BATCH_INTERVAL 10")  # other changes keep the copy
    env.produce([b"2"])
    env.sql("START PIPELINE p FOREGROUND")
    env.sql("ALTER PIPELINE p RELOAD TRANSFORM")
    env.produce([b"3"])
    env.sql("START PIPELINE p FOREGROUND")
    assert _tags(env) == [(1, "v1"), (2, "v1"), (3, "v2")]


def test_a_module_next_to_the_transform_is_not_reachable(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    (env.sql_dir / "helper.py").write_text("TAG = b'helped'\n")
    path = env.transform("uses_helper.py", "from helper import TAG\n" + TAGGED)
    _create(env, f"file://{path}")
    env.produce([b"1"])
    with pytest.raises(BatchPartitionError) as info:
        env.sql("START PIPELINE p FOREGROUND")
    assert "No module named 'helper'" in (info.value.stderr or "")
    assert env.count("t") == 0


def test_an_archive_is_unpacked_with_its_modules(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    (env.sql_dir / "helper.py").write_text("TAG = b'packed'\n")
    script = env.transform("main.py", "from helper import TAG\n" + TAGGED)
    archive = env.sql_dir / "bundle.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(script, arcname="bin/main.py")
        tar.add(env.sql_dir / "helper.py", arcname="bin/helper.py")
    _create(env, f"file://localhost{archive}", "bin/main.py")
    archive.unlink()  # the engine runs its unpacked copy
    env.produce([b"1"])
    assert env.sql("START PIPELINE p FOREGROUND") == Message("Query OK, 1 rows affected", 1)
    assert _tags(env) == [(1, "packed")]


def test_the_transform_gets_a_minimal_environment(env: Env,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    monkeypatch.setenv("MATCHSTREAM_DB_PASSWORD", "not-for-transforms")
    path = env.transform("envtag.py", "import os\n"
                         "TAG = b'leak' if 'MATCHSTREAM_DB_PASSWORD' in os.environ else b'clean'\n"
                         + TAGGED)
    _create(env, f"file://{path}")
    env.produce([b"1"])
    env.sql("START PIPELINE p FOREGROUND")
    assert _tags(env) == [(1, "clean")]


@pytest.mark.parametrize("form", ["plain", "relative", "file-relative"])
def test_paths_that_are_not_uris_are_refused_with_the_uri_to_write(env: Env, form: str) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    path = env.transform("tag.py", "TAG = b'x'\n" + TAGGED)
    uri = {"plain": str(path), "relative": "tag.py", "file-relative": "file:tag.py"}[form]
    with pytest.raises(TransformNotUsable) as info:
        _create(env, uri)
    assert f"'file://{path}'" in info.value.reason
    assert env.db("SELECT COUNT(*) FROM matchstream_catalog.pipeline_registry "
                  "WHERE DATABASE_NAME = %s", [env.database]) == [(0,)]


def test_drop_removes_the_copy(env: Env) -> None:
    env.db("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10))")
    path = env.transform("tag.py", "TAG = b'x'\n" + TAGGED)
    _create(env, f"file://{path}")
    unpack = EngineSettings.from_config(env.config).unpack_dir
    copies = [p for p in unpack.iterdir() if p.name.startswith(f"{env.database}.p-")]
    assert len(copies) == 1 and (copies[0] / "tag.py").read_bytes() == path.read_bytes()
    env.sql("DROP PIPELINE p")
    assert not copies[0].exists()
