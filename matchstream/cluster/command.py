"""``matchstream cluster pack`` and ``matchstream cluster apply``: the command line of
:mod:`matchstream.cluster`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from matchstream.cluster.archive import ARCHIVE_NAME, pack, source_root

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    cluster = sub.add_parser(
        "cluster", help="run sql/ and the transforms on an existing SingleStore cluster",
        description="Bring your own cluster: pack the transforms into one .tar.gz every leaf "
        "can unpack, and apply sql/ to an existing SingleStore cluster reading existing Kafka "
        "brokers. Addresses and credentials come from a TOML cluster file (README, \"Bring "
        "your own SingleStore cluster\").")
    actions = cluster.add_subparsers(dest="cluster_command", required=True)
    pack_parser = actions.add_parser(
        "pack", help=f"write the transforms archive ({ARCHIVE_NAME})",
        description="Write train.py, score.py, outcomes.py, rejects.py and the matchstream "
        "package into one reproducible .tar.gz; serve it at the cluster file's archive_uri.")
    pack_parser.add_argument("--output", type=Path, default=Path(ARCHIVE_NAME),
                             help=f"where to write it (default ./{ARCHIVE_NAME})")
    pack_parser.set_defaults(func=_pack)
    apply_parser = actions.add_parser(
        "apply", help="apply sql/*.sql to the cluster (or --print-sql: show it, send nothing)",
        description="Render sql/*.sql with the cluster file's values (KAFKA, MODEL_DIR, "
        "FEATURES; each transform pointed into the archive) and run it on the aggregator in "
        "one session, stopping at the first refused statement.")
    apply_parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                              help="the cluster file (TOML; mode 0600 when it holds secrets)")
    apply_parser.add_argument("--print-sql", action="store_true",
                              help="print the SQL as the cluster would get it (credentials "
                              "hidden) and exit; connects to nothing")
    apply_parser.add_argument("--start", action="store_true",
                              help="then START PIPELINE IF NOT RUNNING every pipeline created")
    apply_parser.add_argument("--sql-dir", type=Path, default=None,
                              help="the SQL to apply (default: this checkout's sql/)")
    apply_parser.set_defaults(func=_apply)


def _pack(args: argparse.Namespace) -> int:
    path = pack(args.output)
    print(f"wrote {path} ({path.stat().st_size} bytes); serve it at the cluster file's "
          "[transforms] archive_uri", file=sys.stderr)
    return 0


def _apply(args: argparse.Namespace) -> int:
    from matchstream.cluster.apply import apply_statements, connect
    from matchstream.cluster.config import load_config
    from matchstream.cluster.render import render_cluster_sql

    config = load_config(args.config)
    sql_dir = args.sql_dir or source_root() / "sql"
    if args.print_sql:
        for stmt in render_cluster_sql(config, sql_dir):
            print(f"-- {stmt.location}\n{stmt.text};")
        return 0
    statements = render_cluster_sql(config, sql_dir, reveal=True)
    connection = connect(config)
    try:
        pipelines = apply_statements(statements, connection, start=args.start,
                                     redact=config.redact)
    finally:
        connection.close()
    print(f"applied {len(statements)} statements to {config.address}; pipelines: "
          f"{', '.join(pipelines) or 'none'}", file=sys.stderr)
    return 0
