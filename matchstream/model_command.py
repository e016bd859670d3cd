"""``matchstream model``: list, show, roll back, pin and unpin model versions.

The directory operations are :mod:`matchstream.ml.admin`; this module adds the command line and
the SQL side, an :class:`~matchstream.ml.admin.ActionLog` that writes ``model_actions`` rows in
the demo's database with parameters (never formatted into the SQL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from matchstream.config import Config
from matchstream.ml import admin
from matchstream.ml.rows import timestamp
from matchstream.ml.store import ModelStore

__all__ = ["SqlActionLog", "add_parser", "run"]

DEFAULT_DATABASE = "speed_dating"


class SqlActionLog:
    """``model_actions`` rows on a connection of their own, one transaction per action."""

    def __init__(self, config: Config, database: str) -> None:
        self.config, self.database = config, database

    @contextlib.contextmanager
    def record(self, action: admin.Action) -> Iterator[None]:
        from matchstream.db import connect

        conn = connect(self.config, self.database, autocommit=False)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO model_actions (`action`, model_version, source_version, "
                    "live_before, acted_at, note) VALUES (%s, %s, %s, %s, %s, %s)",
                    [action.action, action.model_version, action.source_version,
                     action.live_before, timestamp(), action.note])
            yield
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            conn.close()


def add_parser(sub: Any, stack_flags: Any) -> None:
    model = sub.add_parser(
        "model", help="list, show, roll back, pin or unpin model versions",
        description="Operate on the model directory. rollback, pin and unpin also write a row "
        "to model_actions, so every version stays explained in SQL.")
    actions = model.add_subparsers(dest="model_command", required=True)
    parsers = {
        "list": actions.add_parser("list", help="every retained version, newest last"),
        "show": actions.add_parser("show", help="one version's lineage and metrics (JSON)"),
        "rollback": actions.add_parser(
            "rollback", help="publish a copy of VERSION as the newest: training continues "
            "from its weights, scoring uses it from its next batch"),
        "pin": actions.add_parser("pin", help="scoring uses VERSION until unpin; training "
                                  "goes on"),
        "unpin": actions.add_parser("unpin", help="scoring follows the newest version again"),
    }
    for name, parser in parsers.items():
        if name in ("show", "rollback", "pin"):
            parser.add_argument("version", type=int)
        if name in ("rollback", "pin", "unpin"):
            parser.add_argument("--note", help="why (kept in model_actions.note)")
            parser.add_argument("-D", "--database", default=DEFAULT_DATABASE,
                                help=f"database of model_actions (default {DEFAULT_DATABASE})")
        parser.add_argument("--model-dir", type=Path,
                            help="the model directory (default: STATE_DIR/models)")
        stack_flags(parser)
        parser.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    store = ModelStore(args.model_dir or config.state_dir / "models")
    command = args.model_command
    if command == "list":
        infos = admin.list_versions(store)
        for info in infos:
            print(admin.describe(info))
        if not infos:
            print(f"no versions in {store.path}")
        return 0
    if command == "show":
        print(json.dumps(admin.show(store, args.version), indent=2))
        return 0
    log = SqlActionLog(config, args.database)
    if command == "rollback":
        new = admin.rollback(store, args.version, log, args.note)
        print(f"published v{new:06d}, a copy of v{args.version:06d}: training continues from "
              "it and scoring uses it from its next batch")
        if store.pinned_version() is not None:
            print(f"note: scoring is pinned to v{store.pinned_version():06d} until "
                  "`matchstream model unpin`")
        return 0
    if command == "pin":
        admin.pin(store, args.version, log, args.note)
        print(f"scoring pinned to v{args.version:06d}; training goes on")
        return 0
    if admin.unpin(store, log, args.note):
        print("unpinned: scoring follows the newest version")
    else:
        print("nothing was pinned")
    return 0
