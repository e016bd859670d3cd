"""sql/ as an existing cluster gets it: the same files, with the cluster file's values.

Per statement, in file order (:func:`render_cluster_sql`):

1. ``${KAFKA}``, ``${MODEL_DIR}``, ``${FEATURES}`` take the cluster file's values; ``${TRANSFORMS}``
   takes a marker no real path has.
2. Each ``WITH TRANSFORM ('file://localhost${TRANSFORMS}/NAME', '', 'ARGS')`` becomes
   ``WITH TRANSFORM ('ARCHIVE_URI', 'NAME', 'ARGS')``: the archive form, in which ``NAME`` is the
   program inside the unpacked archive. A transform written any other way is refused, since
   its file would not be on the leaves.
3. ``[kafka] config`` / ``credentials`` become ``CONFIG '...'`` / ``CREDENTIALS '...'`` right
   after the ``KAFKA '...'`` endpoint, where the grammar has them.
4. The statement is parsed with matchstream's pipeline parser, and the result must say what
   steps 1-3 meant: the archive URI and a program the archive holds.

The ``--print-sql`` text shows ``CREDENTIALS '<hidden>'``; only :func:`render_cluster_sql` with
``reveal=True`` (what ``apply`` sends) carries the real ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from matchstream.cluster.archive import PROGRAMS
from matchstream.cluster.config import ClusterConfig
from matchstream.cluster.errors import ClusterRenderError
from matchstream.ddl import ast, parse_statement, prepare_script
from matchstream.ddl.render import quote_string
from matchstream.errors import MatchstreamError

__all__ = ["HIDDEN", "RenderedStatement", "render_cluster_sql", "sql_files"]

HIDDEN = "<hidden>"
_MARKER = "/@matchstream-transforms-archive@"
_TRANSFORM = re.compile(
    r"WITH\s+TRANSFORM\s*\(\s*'file://localhost" + re.escape(_MARKER)
    + r"/([A-Za-z0-9_.\-]+)'\s*,\s*''\s*,", re.I)
_ENDPOINT = re.compile(r"LOAD\s+DATA\s+KAFKA\s+'(?:[^'\\]|\\.)*'", re.I)
_CONFIG_CLAUSE = re.compile(r"^\s*(CONFIG|CREDENTIALS)\b", re.I)


@dataclass(frozen=True)
class RenderedStatement:
    text: str
    location: str  # file:line:col in sql/
    pipeline: str | None  # the name, for a CREATE PIPELINE


def sql_files(sql_dir: Path) -> list[Path]:
    """``sql/*.sql`` in glob order (00_, 10_, 20_), as both other paths apply them."""
    files = sorted(p for p in sql_dir.glob("*.sql") if p.is_file())
    if not files:
        raise ClusterRenderError(str(sql_dir), "no *.sql files to apply")
    return files


def render_cluster_sql(config: ClusterConfig, sql_dir: Path, *,
                       reveal: bool = False) -> list[RenderedStatement]:
    """Every statement of ``sql_dir/*.sql`` for the cluster (steps 1-4 of the module doc)."""
    variables = {"KAFKA": config.kafka, "TRANSFORMS": _MARKER, "MODEL_DIR": config.model_dir,
                 "FEATURES": config.features}
    result = []
    for path in sql_files(sql_dir):
        name = f"{sql_dir.name}/{path.name}"  # sql/10_pipelines.sql:20:1 in every error
        try:
            statements = prepare_script(path.read_text(encoding="utf-8"), name, variables)
        except OSError as exc:
            raise ClusterRenderError(name, f"cannot read: {exc.strerror}") from exc
        for stmt in statements:
            text = stmt.text
            pipeline = None
            if stmt.is_pipeline:
                text, pipeline = _for_cluster(text, stmt.location, config, reveal)
            elif _MARKER in text:
                raise ClusterRenderError(stmt.location, "${TRANSFORMS} outside a pipeline's "
                                         "WITH TRANSFORM: there is no transforms directory on "
                                         "a cluster, only the archive")
            result.append(RenderedStatement(text, stmt.location, pipeline))
    return result


def _for_cluster(text: str, location: str, config: ClusterConfig,
                 reveal: bool) -> tuple[str, str | None]:
    text = _TRANSFORM.sub(lambda m: f"WITH TRANSFORM ({quote_string(config.archive_uri)}, "
                          f"{quote_string(m.group(1))},", text)
    if _MARKER in text:
        raise ClusterRenderError(location, "a transform other than "
                                 "('file://localhost${TRANSFORMS}/NAME', '', 'ARGS'): only that "
                                 "form is shipped in the archive")
    shown = _with_kafka_clauses(text, location, config, reveal=False)
    checked = _with_kafka_clauses(text, location, config, reveal=False, stand_in=True)
    text = _with_kafka_clauses(text, location, config, reveal=True)
    try:
        # The same keys with empty values: valid JSON ('<hidden>' is not), and a parse error
        # quoting the line cannot show a secret.
        node = parse_statement(checked)
    except MatchstreamError as exc:
        raise ClusterRenderError(location, config.redact(
            f"the rendered statement does not parse: {exc}")) from exc
    result = text if reveal else shown
    if not isinstance(node, ast.CreatePipeline):
        return result, None
    if node.transform is not None:
        if node.transform.uri != config.archive_uri or node.transform.program not in PROGRAMS:
            raise ClusterRenderError(location, f"pipeline {node.name}: transform "
                                     f"{node.transform.uri!r} / {node.transform.program!r} is "
                                     "not a program of the archive")
    return result, node.name


def _with_kafka_clauses(text: str, location: str, config: ClusterConfig, *,
                        reveal: bool, stand_in: bool = False) -> str:
    clauses = []
    if config.kafka_config:
        clauses.append(f"CONFIG {quote_string(json.dumps(config.kafka_config, sort_keys=True))}")
    if config.kafka_credentials:
        if stand_in:
            secret = json.dumps(dict.fromkeys(config.kafka_credentials, ""), sort_keys=True)
        else:
            secret = json.dumps(config.kafka_credentials, sort_keys=True) if reveal else HIDDEN
        clauses.append(f"CREDENTIALS {quote_string(secret)}")
    if not clauses:
        return text
    endpoint = _ENDPOINT.search(text)
    if endpoint is None:
        return text  # not a CREATE PIPELINE ... KAFKA (START, ALTER, ...)
    if _CONFIG_CLAUSE.match(text[endpoint.end():]):
        raise ClusterRenderError(location, "the statement has its own CONFIG/CREDENTIALS; "
                                 "leave [kafka] config/credentials out of the cluster file")
    return (text[: endpoint.end()] + "\n" + "\n".join(clauses) + "\n"
            + text[endpoint.end():].lstrip(" "))
