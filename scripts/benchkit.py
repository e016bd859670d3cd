"""What the benchmark and soak scripts share: a private stack, our own SQL, an identity transform.

Each script measures the project's real pieces, so it takes the pipelines and tables from
``sql/`` as they are (only batch sizes, topics and paths changed), never a copy of them.
"""

from __future__ import annotations

import re
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matchstream import demo
from matchstream.config import Config
from matchstream.db import connect
from matchstream.ddl.script import prepare_script
from matchstream.sqlrunner import ScriptSource, default_variables, run_sources
from matchstream.stack import Stack
from matchstream.stack.ports import free_port

ROOT = Path(__file__).resolve().parents[1]

# A transform that changes nothing: framed stdin -> one line per message.
IDENTITY = """\
import struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    hdr = inp.read(8)
    if not hdr:
        break
    (n,) = struct.unpack('<Q', hdr)
    out.write(inp.read(n) + b'\\n')
"""


@contextmanager
def private_stack(prefix: str) -> Iterator[tuple[Config, Path]]:
    """A fresh broker and MariaDB on free ports under a new temporary directory."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    config = Config.from_env(environ={}, state_dir=work / "state", kafka_port=free_port(),
                             db_port=free_port())
    stack = Stack(config, with_engine=False)
    stack.up()
    try:
        yield config, work
    finally:
        stack.down()


def statement(file: str, starts: str, variables: Mapping[str, str] | None = None) -> str:
    """The statement of ``sql/<file>`` that starts with ``starts``, split and with its
    ``${NAME}`` placeholders filled as ``matchstream sql`` does it (``prepare_script``)."""
    path = ROOT / "sql" / file
    for stmt in prepare_script(path.read_text(), str(path), variables or {}):
        if re.search(rf"^{re.escape(starts)}", stmt.text, re.MULTILINE):
            return stmt.text
    raise AssertionError(f"no statement starting {starts!r} in {path}")


def pipeline(name: str, variables: Mapping[str, str], *, topic: str, batch: int | None = None,
             interval_ms: int | None = None) -> str:
    """``CREATE OR REPLACE PIPELINE <name>`` of sql/10_pipelines.sql on ``topic``, placeholders
    filled, with another MAX_OFFSETS_PER_BATCH_PARTITION (None: SingleStore's default) and
    BATCH_INTERVAL if given."""
    stmt = statement("10_pipelines.sql", f"CREATE OR REPLACE PIPELINE {name}", variables)
    stmt = re.sub(r"(LOAD DATA KAFKA '[^']*/)[^']*'", rf"\g<1>{topic}'", stmt)
    stmt = re.sub(r"MAX_OFFSETS_PER_BATCH_PARTITION \d+\s*",
                  "" if batch is None else f"MAX_OFFSETS_PER_BATCH_PARTITION {batch}\n", stmt)
    if interval_ms is not None:
        stmt = re.sub(r"BATCH_INTERVAL \d+", f"BATCH_INTERVAL {interval_ms}", stmt)
    assert f"/{topic}'" in stmt, stmt
    return stmt


def sql_variables(config: Config, model_dir: Path) -> dict[str, str]:
    """The placeholders of sql/ as `matchstream sql` fills them locally, with another model
    directory."""
    return {**default_variables(config), "MODEL_DIR": str(model_dir)}


def identity_transform(directory: Path) -> Path:
    path = directory / "identity.py"
    path.write_text(f"#!{sys.executable}\n{IDENTITY}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def query(config: Config, text: str, params: Any = None) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own (the scripts restart MariaDB under themselves,
    so no connection is kept)."""
    conn = connect(config)
    try:
        with conn.cursor() as cursor:
            cursor.execute(text, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def start_demo_pipelines(config: Config) -> dict[str, str]:
    """The demo's own sql/ files applied as `matchstream demo` applies them, and every one of
    its pipelines started; returns the SQL variables used."""
    variables = default_variables(config)
    Path(variables["MODEL_DIR"]).mkdir(parents=True, exist_ok=True)
    sources = [ScriptSource.from_file(ROOT / "sql" / name) for name in demo.SQL_FILES]
    sources.append(ScriptSource(
        f"USE {demo.DATABASE}; " + "; ".join(f"START PIPELINE {p}" for p in demo.PIPELINES),
        "<script>", ROOT))
    run_sources(sources, config=config, variables=variables, emit=lambda _t: None)
    return variables
