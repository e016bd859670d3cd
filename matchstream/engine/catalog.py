"""The pipeline catalog: a dedicated schema holding SingleStore's pipeline views.

SingleStore exposes pipeline state in ``information_schema``; MariaDB's ``information_schema`` is
read-only, so the local engine keeps the same views, with the same names and columns, in the
schema :data:`CATALOG_SCHEMA`. A monitoring query ports by changing only the schema name::

    SELECT PIPELINE_NAME, STATE FROM information_schema.PIPELINES          -- SingleStore
    SELECT PIPELINE_NAME, STATE FROM matchstream_catalog.PIPELINES         -- local engine

========================== ======================= =========================================
name                       kind                    one row per
========================== ======================= =========================================
PIPELINES                  view on pipeline_registry  pipeline
PIPELINES_CURSORS          table                   Kafka partition of a pipeline
PIPELINES_OFFSETS          view on PIPELINES_CURSORS  (same; newer SingleStore name)
PIPELINES_BATCHES          table                   attempt of a batch partition
PIPELINES_BATCHES_SUMMARY  view on PIPELINES_BATCHES  batch
PIPELINES_ERRORS           table                   error or warning event
pipeline_registry          table (internal)        pipeline: definition, state, counters
engine_variables           table (internal)        ``pipelines_*`` variable SET GLOBAL
========================== ======================= =========================================

``matchstream sql`` translates SingleStore's spelling (``information_schema.pipelines_cursors``
in any letter case) to this schema before MariaDB sees it (:mod:`matchstream.gate`), so the same
monitoring SQL runs on both.

Extra columns a SingleStore view does not have are only in the internal tables.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from matchstream.ddl import ast, parse_statement
from matchstream.ddl.render import quote_identifier
from matchstream.engine import variables
from matchstream.engine.errors import EngineError

__all__ = [
    "CATALOG_SCHEMA",
    "CATALOG_TABLES",
    "CursorRow",
    "PipelineRow",
    "State",
    "ensure_catalog",
]

CATALOG_SCHEMA = "matchstream_catalog"


class State:
    """Values of ``pipeline_registry.STATE``, spelled as SHOW PIPELINES prints them.

    ``information_schema.PIPELINES.STATE`` knows only Running, Stopped and Error; the PIPELINES
    view maps the transient states onto those.
    """

    RUNNING = "Running"
    STOPPED = "Stopped"
    ERROR = "Error"
    FOREGROUND = "Running...Foreground"
    TESTING = "Testing"


# LOAD_DATA_LINE keeps at most this many bytes of the offending line; a 10 MB Kafka message would
# otherwise be copied into every error row of every retry.
MAX_LINE_BYTES = 64 * 1024

_Q = quote_identifier(CATALOG_SCHEMA)
# The tables holding a pipeline's rows, each keyed by DATABASE_NAME and PIPELINE_NAME.
CATALOG_TABLES = ("pipeline_registry", "PIPELINES_CURSORS", "PIPELINES_BATCHES",
                  "PIPELINES_ERRORS", "batch_plans")

_DDL = [
    f"CREATE DATABASE IF NOT EXISTS {_Q}",
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`pipeline_registry` (
        `PIPELINE_ID` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        `DATABASE_NAME` VARCHAR(64) NOT NULL,
        `PIPELINE_NAME` VARCHAR(64) NOT NULL,
        `STATE` VARCHAR(32) NOT NULL,
        `DEFINITION` LONGTEXT NOT NULL,
        `SQL_DIR` VARCHAR(4096) NOT NULL,
        `TRANSFORM_PATH` VARCHAR(4096) NULL,
        `CONFIG_JSON` LONGTEXT NOT NULL,
        `SKIPPED_BATCH_PARTITIONS` BIGINT NOT NULL DEFAULT 0,
        `LAST_BATCH_ID` BIGINT NOT NULL DEFAULT 0,
        `DEFINITION_VERSION` BIGINT NOT NULL DEFAULT 1,
        `CREATE_TIME` DATETIME(6) NOT NULL,
        `ALTER_TIME` DATETIME(6) NULL,
        UNIQUE KEY `pipeline` (`DATABASE_NAME`, `PIPELINE_NAME`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`PIPELINES_CURSORS` (
        `DATABASE_NAME` VARCHAR(64) NOT NULL,
        `PIPELINE_NAME` VARCHAR(64) NOT NULL,
        `SOURCE_TYPE` VARCHAR(16) NOT NULL DEFAULT 'KAFKA',
        `SOURCE_PARTITION_ID` VARCHAR(64) NOT NULL,
        `EARLIEST_OFFSET` BIGINT NULL,
        `LATEST_OFFSET` BIGINT NULL,
        `CURSOR_OFFSET` BIGINT NOT NULL,
        `SUCCESSFUL_CURSOR_OFFSET` BIGINT NOT NULL,
        `UPDATED_UNIX_TIMESTAMP` DOUBLE NOT NULL,
        `EXTRA_FIELDS` TEXT NULL,
        PRIMARY KEY (`DATABASE_NAME`, `PIPELINE_NAME`, `SOURCE_PARTITION_ID`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # The range a batch partition was planned with, recorded before its transform runs: after a
    # crash, a STOP or a restart, the range at that cursor is read again with the same end, so a
    # transform with side effects (train.py) sees the same input on every try. Valid only while
    # START_OFFSET equals the partition's cursor.
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`batch_plans` (
        `DATABASE_NAME` VARCHAR(64) NOT NULL,
        `PIPELINE_NAME` VARCHAR(64) NOT NULL,
        `SOURCE_PARTITION_ID` VARCHAR(64) NOT NULL,
        `START_OFFSET` BIGINT NOT NULL,
        `END_OFFSET` BIGINT NOT NULL,
        PRIMARY KEY (`DATABASE_NAME`, `PIPELINE_NAME`, `SOURCE_PARTITION_ID`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`PIPELINES_BATCHES` (
        `DATABASE_NAME` VARCHAR(64) NOT NULL,
        `PIPELINE_NAME` VARCHAR(64) NOT NULL,
        `BATCH_ID` BIGINT NOT NULL,
        `BATCH_STATE` VARCHAR(32) NOT NULL,
        `BATCH_ROWS_WRITTEN` BIGINT NULL,
        `BATCH_TIME` DOUBLE NULL,
        `BATCH_START_UNIX_TIMESTAMP` DOUBLE NOT NULL,
        `BATCH_PARTITION_STATE` VARCHAR(32) NOT NULL,
        `BATCH_PARTITION_PARSED_ROWS` BIGINT NULL,
        `BATCH_SOURCE_PARTITION_ID` VARCHAR(64) NOT NULL,
        `BATCH_EARLIEST_OFFSET` BIGINT NOT NULL,
        `BATCH_LATEST_OFFSET` BIGINT NOT NULL,
        `BATCH_PARTITION_TIME` DOUBLE NULL,
        `BATCH_PARTITION_EXTRACTED_BYTES` BIGINT NULL,
        `BATCH_PARTITION_TRANSFORMED_BYTES` BIGINT NULL,
        `BATCH_PARTITION_EXTRACTOR_WAIT_TIME` DOUBLE NULL,
        `BATCH_PARTITION_TRANSFORM_WAIT_TIME` DOUBLE NULL,
        `BATCH_PARTITION_MESSAGES` BIGINT NULL,
        `ATTEMPT` INT NOT NULL DEFAULT 1,
        `HOST` VARCHAR(255) NULL,
        `PORT` INT NULL,
        `PARTITION` INT NULL,
        `ROW_ID` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        KEY `batch` (`DATABASE_NAME`, `PIPELINE_NAME`, `BATCH_ID`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`PIPELINES_ERRORS` (
        `DATABASE_NAME` VARCHAR(64) NOT NULL,
        `PIPELINE_NAME` VARCHAR(64) NOT NULL,
        `ERROR_UNIX_TIMESTAMP` DOUBLE NOT NULL,
        `ERROR_TYPE` VARCHAR(16) NOT NULL,
        `ERROR_CODE` INT NOT NULL,
        `ERROR_MESSAGE` TEXT NOT NULL,
        `ERROR_KIND` VARCHAR(16) NOT NULL,
        `STD_ERROR` MEDIUMTEXT NULL,
        `LOAD_DATA_LINE` MEDIUMTEXT NULL,
        `LOAD_DATA_LINE_NUMBER` BIGINT NULL,
        `BATCH_ID` BIGINT NULL,
        `ERROR_ID` BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        `BATCH_SOURCE_PARTITION_ID` VARCHAR(64) NULL,
        `BATCH_EARLIEST_OFFSET` BIGINT NULL,
        `BATCH_LATEST_OFFSET` BIGINT NULL,
        `HOST` VARCHAR(255) NULL,
        `PORT` INT NULL,
        `PARTITION` INT NULL,
        KEY `pipeline` (`DATABASE_NAME`, `PIPELINE_NAME`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # Who holds the engine lock (ENGINE_LOCK): written by the engine that got it, read by one
    # that is refused, so the refusal names the process to look at.
    f"""CREATE TABLE IF NOT EXISTS {_Q}.`engine_owner` (
        `CONNECTION_ID` BIGINT NOT NULL PRIMARY KEY,
        `PID` INT NOT NULL,
        `HOSTNAME` VARCHAR(255) NOT NULL,
        `STARTED` DATETIME(6) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    variables.TABLE_DDL,
    f"""CREATE OR REPLACE SQL SECURITY INVOKER VIEW {_Q}.`PIPELINES` AS SELECT
        `DATABASE_NAME`, `PIPELINE_NAME`, `PIPELINE_ID`, `CONFIG_JSON`,
        CASE `STATE` WHEN 'Error' THEN 'Error' WHEN 'Running' THEN 'Running'
             WHEN 'Running...Foreground' THEN 'Running' ELSE 'Stopped' END AS `STATE`,
        `SKIPPED_BATCH_PARTITIONS`, `CREATE_TIME`, `ALTER_TIME`
        FROM {_Q}.`pipeline_registry`""",
    f"""CREATE OR REPLACE SQL SECURITY INVOKER VIEW {_Q}.`PIPELINES_OFFSETS` AS SELECT
        `DATABASE_NAME`, `PIPELINE_NAME`, `SOURCE_TYPE`, `SOURCE_PARTITION_ID`,
        `EARLIEST_OFFSET`, `LATEST_OFFSET`, `CURSOR_OFFSET`, `SUCCESSFUL_CURSOR_OFFSET`,
        `UPDATED_UNIX_TIMESTAMP`, `EXTRA_FIELDS`
        FROM {_Q}.`PIPELINES_CURSORS`""",
    f"""CREATE OR REPLACE SQL SECURITY INVOKER VIEW {_Q}.`PIPELINES_BATCHES_SUMMARY` AS SELECT
        `DATABASE_NAME`, `PIPELINE_NAME`, `BATCH_ID`,
        CASE WHEN SUM(`BATCH_PARTITION_STATE` = 'In Progress') > 0 THEN 'In Progress'
             WHEN COUNT(DISTINCT IF(`BATCH_PARTITION_STATE` = 'Succeeded',
                                    `BATCH_SOURCE_PARTITION_ID`, NULL))
                  = COUNT(DISTINCT `BATCH_SOURCE_PARTITION_ID`) THEN 'Succeeded'
             ELSE 'Failed' END AS `BATCH_STATE`,
        FROM_UNIXTIME(MIN(`BATCH_START_UNIX_TIMESTAMP`)) AS `START_TIME`,
        SUM(`BATCH_ROWS_WRITTEN`) AS `ROWS_INSERTED`,
        SUM(`BATCH_PARTITION_EXTRACTOR_WAIT_TIME`) AS `EXTRACTOR_WAIT_TIME`,
        SUM(`BATCH_PARTITION_TRANSFORM_WAIT_TIME`) AS `TRANSFORM_WAIT_TIME`,
        MAX(`BATCH_TIME`) AS `BATCH_TIME`,
        SUM(`BATCH_ROWS_WRITTEN`) / NULLIF(MAX(`BATCH_TIME`), 0) AS `ROWS_PER_SEC`,
        SUM(IF(`BATCH_PARTITION_STATE` = 'Succeeded', `BATCH_PARTITION_MESSAGES`, 0))
            AS `ROWS_STREAMED`,
        COUNT(DISTINCT `BATCH_SOURCE_PARTITION_ID`) AS `NUM_PARTITIONS`,
        COUNT(DISTINCT IF(`BATCH_PARTITION_STATE` IN ('Succeeded', 'Skipped'),
                          `BATCH_SOURCE_PARTITION_ID`, NULL)) AS `NUM_PARTITIONS_FINISHED`,
        SUM(IF(`BATCH_PARTITION_STATE` = 'Succeeded', `BATCH_PARTITION_EXTRACTED_BYTES`, 0))
            / 1048576 AS `MB_STREAMED`,
        SUM(IF(`BATCH_PARTITION_STATE` = 'Succeeded', `BATCH_PARTITION_EXTRACTED_BYTES`, 0))
            / 1048576 / NULLIF(MAX(`BATCH_TIME`), 0) AS `MB_PER_SEC`
        FROM {_Q}.`PIPELINES_BATCHES`
        GROUP BY `DATABASE_NAME`, `PIPELINE_NAME`, `BATCH_ID`""",
]

# Tables and views the DDL creates in CATALOG_SCHEMA (every statement but CREATE DATABASE):
# fewer of them means the catalog is missing or from an older version, and the DDL runs.
_CATALOG_OBJECTS = sum(not statement.startswith("CREATE DATABASE") for statement in _DDL)

_ensured: set[tuple[str, int]] = set()


def is_ensured(host: str, port: int) -> bool:
    """ensure_catalog already ran in this process for the server at ``host:port``."""
    return (str(host), int(port)) in _ensured


def ensure_catalog(conn: Any) -> None:
    """Create the catalog schema, tables and views if missing (idempotent, cheap after once)."""
    key = (str(getattr(conn, "host", "")), int(getattr(conn, "port", 0) or 0))
    if key in _ensured:
        return
    with conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                       [CATALOG_SCHEMA])
        row = cursor.fetchone()
        if not row or int(row[0]) < _CATALOG_OBJECTS:
            for statement in _DDL:
                cursor.execute(statement)
    conn.commit()
    _ensured.add(key)


# One engine per catalog: the engine holds this named lock on its catalog session for as long as
# it runs. MariaDB releases it when that session ends, however it ends (a crashed or killed
# engine, a lost connection), so it fences crashed engines too; every batch commit checks that
# its engine still holds it (batch._guard).
ENGINE_LOCK = f"matchstream_engine.{CATALOG_SCHEMA}"


class EngineLockHeld(EngineError):
    """Another engine runs on this catalog."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"another engine holds the catalog {CATALOG_SCHEMA} ({holder}); one engine per "
            "catalog: stop that one first (matchstream down, or kill it), or wait for it")
        self.holder = holder


def claim_engine(conn: Any, *, wait_s: float) -> int:
    """Take the engine lock on ``conn`` (waiting up to ``wait_s``); returns the session id that
    holds it, or raises EngineLockHeld naming the holder."""
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s), CONNECTION_ID()", [ENGINE_LOCK, wait_s])
        got, session = cur.fetchone()
        if got != 1:
            raise EngineLockHeld(_lock_holder(cur))
        cur.execute(f"DELETE FROM {_Q}.`engine_owner`")
        cur.execute(f"INSERT INTO {_Q}.`engine_owner` VALUES (%s, %s, %s, NOW(6))",
                    [session, os.getpid(), socket.gethostname()])
    conn.commit()
    return int(session)


def _lock_holder(cur: Any) -> str:
    cur.execute("SELECT IS_USED_LOCK(%s)", [ENGINE_LOCK])
    (session,) = cur.fetchone()
    if session is None:
        return "it was released just now; try again"
    cur.execute(f"SELECT `PID`, `HOSTNAME`, `STARTED` FROM {_Q}.`engine_owner` "
                "WHERE `CONNECTION_ID` = %s", [session])
    row = cur.fetchone()
    if row is None:
        return f"database session {session}"
    pid, host, started = row
    return (f"pid {pid} on {host}, running since {started:%Y-%m-%d %H:%M:%S}, "
            f"database session {session}")


def engine_session(conn: Any) -> int | None:
    """The session holding the engine lock now, or None."""
    with conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", [ENGINE_LOCK])
        (session,) = cur.fetchone()
    return None if session is None else int(session)


@dataclass(frozen=True)
class PipelineRow:
    pipeline_id: int
    database: str
    name: str
    state: str
    definition: str
    sql_dir: str
    transform_path: str | None
    skipped_batch_partitions: int
    definition_version: int
    # The pipelines_* engine variables when the row was read: what options the definition
    # leaves out default to.
    defaults: ast.BatchDefaults | None = None

    def statement(self) -> ast.CreatePipeline:
        """The stored definition, parsed (the registry holds rendered CREATE PIPELINE text),
        with the engine variables it follows attached (``effective_*``)."""
        return replace(_definition(self.database, self.name, self.definition),
                       defaults=self.defaults)


def _definition(database: str, name: str, text: str) -> ast.CreatePipeline:
    stmt = parse_statement(text)
    if not isinstance(stmt, ast.CreatePipeline):
        raise EngineError(
            f"pipeline '{database}.{name}': the catalog holds a {type(stmt).__name__} instead "
            "of a CREATE PIPELINE statement; re-create the pipeline")
    return stmt


_PIPELINE_COLUMNS = (
    "`PIPELINE_ID`, `DATABASE_NAME`, `PIPELINE_NAME`, `STATE`, `DEFINITION`, `SQL_DIR`, "
    "`TRANSFORM_PATH`, `SKIPPED_BATCH_PARTITIONS`, `DEFINITION_VERSION`"
)


def _pipeline(row: Iterable[Any], defaults: ast.BatchDefaults) -> PipelineRow:
    values = list(row)
    return PipelineRow(
        int(values[0]), values[1], values[2], values[3], values[4], values[5], values[6],
        int(values[7]), int(values[8]), defaults,
    )


def get_pipeline(
    conn: Any, database: str, name: str, *, for_update: bool = False
) -> PipelineRow | None:
    sql = (
        f"SELECT {_PIPELINE_COLUMNS} FROM {_Q}.`pipeline_registry` "
        "WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s"
    )
    if for_update:
        sql += " FOR UPDATE"
    with conn.cursor() as cursor:
        cursor.execute(sql, [database, name])
        row = cursor.fetchone()
    return _pipeline(row, variables.engine_variables(conn)) if row else None


def list_pipelines(
    conn: Any, database: str | None = None, states: Iterable[str] | None = None, *,
    for_update: bool = False,
) -> list[PipelineRow]:
    sql = f"SELECT {_PIPELINE_COLUMNS} FROM {_Q}.`pipeline_registry` WHERE 1=1"
    params: list[Any] = []
    if database is not None:
        sql += " AND `DATABASE_NAME` = %s"
        params.append(database)
    wanted = list(states or [])
    if wanted:
        sql += " AND `STATE` IN (" + ", ".join(["%s"] * len(wanted)) + ")"
        params += wanted
    sql += " ORDER BY `DATABASE_NAME`, `PIPELINE_NAME`"
    if for_update:
        sql += " FOR UPDATE"
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    defaults = variables.engine_variables(conn)
    return [_pipeline(r, defaults) for r in rows]


def insert_pipeline(
    conn: Any, *, database: str, name: str, definition: str, sql_dir: str,
    transform_path: str | None, config_json: dict[str, Any],
) -> None:
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_Q}.`pipeline_registry` (`DATABASE_NAME`, `PIPELINE_NAME`, `STATE`, "
            "`DEFINITION`, `SQL_DIR`, `TRANSFORM_PATH`, `CONFIG_JSON`, `CREATE_TIME`) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, NOW(6))",
            [database, name, State.STOPPED, definition, sql_dir, transform_path,
             _effective_config(conn, database, name, definition, config_json)],
        )


def _effective_config(
    conn: Any, database: str, name: str, definition: str, config: dict[str, Any]
) -> str:
    """CONFIG_JSON text with the batch options the engine will use: an option the definition
    leaves out follows its engine variable (``SET GLOBAL pipelines_...``)."""
    stmt = replace(_definition(database, name, definition),
                   defaults=variables.engine_variables(conn))
    return variables.dumps(variables.config_with(config, stmt))


def follow_variables(conn: Any, fields: set[str], defaults: ast.BatchDefaults) -> int:
    """After ``SET GLOBAL``: every pipeline whose definition leaves out one of the options
    ``fields`` (BatchDefaults names) gets a new definition version, so the engine restarts its
    runner with the new value, and its CONFIG_JSON shows that value. Returns how many."""
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT `PIPELINE_ID`, `DATABASE_NAME`, `PIPELINE_NAME`, `DEFINITION`, "
                       f"`CONFIG_JSON` FROM {_Q}.`pipeline_registry` FOR UPDATE")
        rows = cursor.fetchall()
        touched = 0
        for pipeline_id, database, name, definition, config_text in rows:
            stmt = _definition(database, name, definition)
            if all(getattr(stmt, field) is not None for field in fields):
                continue
            config = variables.config_with(json.loads(config_text or "{}"),
                                           replace(stmt, defaults=defaults))
            cursor.execute(
                f"UPDATE {_Q}.`pipeline_registry` SET `CONFIG_JSON` = %s, "
                "`DEFINITION_VERSION` = `DEFINITION_VERSION` + 1 WHERE `PIPELINE_ID` = %s",
                [variables.dumps(config), pipeline_id])
            touched += 1
    return touched


def update_definition(
    conn: Any, pipeline_id: int, *, definition: str, sql_dir: str | None,
    transform_path: str | None, config_json: dict[str, Any], replaced: bool,
) -> None:
    """Store a new definition; ``replaced`` (CREATE OR REPLACE) also resets CREATE_TIME."""
    sets = ["`DEFINITION` = %s", "`TRANSFORM_PATH` = %s", "`CONFIG_JSON` = %s",
            "`DEFINITION_VERSION` = `DEFINITION_VERSION` + 1"]
    # The definition was just rendered from a CREATE PIPELINE: the names only label an error
    # that cannot happen.
    params: list[Any] = [definition, transform_path,
                         _effective_config(conn, "", f"#{pipeline_id}", definition, config_json)]
    if sql_dir is not None:
        sets.append("`SQL_DIR` = %s")
        params.append(sql_dir)
    sets.append("`CREATE_TIME` = NOW(6)" if replaced else "`ALTER_TIME` = NOW(6)")
    with conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_Q}.`pipeline_registry` SET {', '.join(sets)} WHERE `PIPELINE_ID` = %s",
            [*params, pipeline_id],
        )


def set_state(conn: Any, pipeline_id: int, state: str, *, only_if: Iterable[str] = ()) -> int:
    """Set STATE; with ``only_if`` only from those states. Returns the rows changed."""
    sql = f"UPDATE {_Q}.`pipeline_registry` SET `STATE` = %s WHERE `PIPELINE_ID` = %s"
    params: list[Any] = [state, pipeline_id]
    allowed = list(only_if)
    if allowed:
        sql += " AND `STATE` IN (" + ", ".join(["%s"] * len(allowed)) + ")"
        params += allowed
    with conn.cursor() as cursor:
        return int(cursor.execute(sql, params))


def delete_pipeline(conn: Any, database: str, name: str) -> None:
    with conn.cursor() as cursor:
        for table in CATALOG_TABLES:
            cursor.execute(
                f"DELETE FROM {_Q}.{quote_identifier(table)} "
                "WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s",
                [database, name],
            )


def count_skipped(conn: Any, pipeline_id: int) -> None:
    """SKIPPED_BATCH_PARTITIONS + 1 (STOP_ON_ERROR OFF gave up on a range)."""
    with conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_Q}.`pipeline_registry` SET "
            "`SKIPPED_BATCH_PARTITIONS` = `SKIPPED_BATCH_PARTITIONS` + 1 "
            "WHERE `PIPELINE_ID` = %s", [pipeline_id])


def clear_errors(conn: Any, database: str, name: str | None = None) -> int:
    """CLEAR PIPELINE ERRORS: the database's (or one pipeline's) PIPELINES_ERRORS rows."""
    sql = f"DELETE FROM {_Q}.`PIPELINES_ERRORS` WHERE `DATABASE_NAME` = %s"
    params: list[Any] = [database]
    if name is not None:
        sql += " AND `PIPELINE_NAME` = %s"
        params.append(name)
    with conn.cursor() as cursor:
        return int(cursor.execute(sql, params))


def next_batch_id(conn: Any, pipeline_id: int) -> int:
    """Allocate a batch id (committed on its own so concurrent batches never share one)."""
    with conn.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_Q}.`pipeline_registry` SET `LAST_BATCH_ID` = "
            "LAST_INSERT_ID(`LAST_BATCH_ID` + 1) WHERE `PIPELINE_ID` = %s",
            [pipeline_id],
        )
        cursor.execute("SELECT LAST_INSERT_ID()")
        row = cursor.fetchone()
    conn.commit()
    return int(row[0])


@dataclass(frozen=True)
class CursorRow:
    partition: int
    earliest: int | None
    latest: int | None
    cursor: int
    # What the message just before the cursor looked like when it was loaded (see
    # runner.history_mark); None when unknown (a cursor set by SET OFFSETS, a skip, a new one).
    history: str | None = None


def get_cursors(
    conn: Any, database: str, name: str, *, for_update: bool = False
) -> dict[int, CursorRow]:
    sql = (
        f"SELECT `SOURCE_PARTITION_ID`, `EARLIEST_OFFSET`, `LATEST_OFFSET`, `CURSOR_OFFSET`, "
        f"`EXTRA_FIELDS` FROM {_Q}.`PIPELINES_CURSORS` "
        "WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s"
    )
    if for_update:
        sql += " FOR UPDATE"
    with conn.cursor() as cursor:
        cursor.execute(sql, [database, name])
        rows = cursor.fetchall()
    out = {}
    for pid, earliest, latest, cur, extra in rows:
        out[int(pid)] = CursorRow(int(pid), earliest, latest, int(cur), _history(extra))
    return out


def _history(extra: str | None) -> str | None:
    if not extra:
        return None
    try:
        value = json.loads(extra).get("history")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def add_cursor(
    conn: Any, database: str, name: str, partition: int, *, cursor: int, earliest: int,
    latest: int,
) -> None:
    """A cursor for a partition that has none: never overwrites one (another engine, or a
    SET OFFSETS since the caller read the cursors, may have written it: an upsert would rewind
    it and load the range again)."""
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT IGNORE INTO {_Q}.`PIPELINES_CURSORS` (`DATABASE_NAME`, `PIPELINE_NAME`, "
            "`SOURCE_TYPE`, `SOURCE_PARTITION_ID`, `EARLIEST_OFFSET`, `LATEST_OFFSET`, "
            "`CURSOR_OFFSET`, `SUCCESSFUL_CURSOR_OFFSET`, `UPDATED_UNIX_TIMESTAMP`) "
            "VALUES (%s, %s, 'KAFKA', %s, %s, %s, %s, %s, %s)",
            [database, name, str(partition), earliest, latest, cursor, cursor, time.time()])


def put_cursor(
    conn: Any, database: str, name: str, partition: int, *, cursor: int | None,
    earliest: int | None = None, latest: int | None = None, history: str | None = None,
) -> None:
    """Insert or update one partition's cursor; ``cursor=None`` only refreshes the watermarks.
    A new cursor replaces the history mark (``history``; None: unknown, never checked)."""
    now = time.time()
    extra = None if history is None else json.dumps({"history": history})
    with conn.cursor() as cur:
        if cursor is None:
            cur.execute(
                f"UPDATE {_Q}.`PIPELINES_CURSORS` SET `EARLIEST_OFFSET` = %s, "
                "`LATEST_OFFSET` = %s WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s "
                "AND `SOURCE_PARTITION_ID` = %s",
                [earliest, latest, database, name, str(partition)],
            )
            return
        cur.execute(
            f"INSERT INTO {_Q}.`PIPELINES_CURSORS` (`DATABASE_NAME`, `PIPELINE_NAME`, "
            "`SOURCE_TYPE`, `SOURCE_PARTITION_ID`, `EARLIEST_OFFSET`, `LATEST_OFFSET`, "
            "`CURSOR_OFFSET`, `SUCCESSFUL_CURSOR_OFFSET`, `UPDATED_UNIX_TIMESTAMP`, "
            "`EXTRA_FIELDS`) "
            "VALUES (%s, %s, 'KAFKA', %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
            "`EARLIEST_OFFSET` = COALESCE(VALUES(`EARLIEST_OFFSET`), `EARLIEST_OFFSET`), "
            "`LATEST_OFFSET` = COALESCE(VALUES(`LATEST_OFFSET`), `LATEST_OFFSET`), "
            "`CURSOR_OFFSET` = VALUES(`CURSOR_OFFSET`), "
            "`SUCCESSFUL_CURSOR_OFFSET` = VALUES(`SUCCESSFUL_CURSOR_OFFSET`), "
            "`UPDATED_UNIX_TIMESTAMP` = VALUES(`UPDATED_UNIX_TIMESTAMP`), "
            "`EXTRA_FIELDS` = VALUES(`EXTRA_FIELDS`)",
            [database, name, str(partition), earliest, latest, cursor, cursor, now, extra],
        )


def get_plans(conn: Any, database: str, name: str) -> dict[int, tuple[int, int]]:
    """``partition -> (start, end)`` of the ranges planned and not known to be done."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT `SOURCE_PARTITION_ID`, `START_OFFSET`, `END_OFFSET` FROM {_Q}.`batch_plans` "
            "WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s", [database, name])
        return {int(p): (int(a), int(b)) for p, a, b in cur.fetchall()}


def put_plan(conn: Any, database: str, name: str, partition: int, start: int, end: int) -> None:
    with conn.cursor() as cur:
        cur.execute(
            f"INSERT INTO {_Q}.`batch_plans` (`DATABASE_NAME`, `PIPELINE_NAME`, "
            "`SOURCE_PARTITION_ID`, `START_OFFSET`, `END_OFFSET`) VALUES (%s, %s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE `START_OFFSET` = VALUES(`START_OFFSET`), "
            "`END_OFFSET` = VALUES(`END_OFFSET`)",
            [database, name, str(partition), start, end])


def insert_batch_row(conn: Any, **values: Any) -> None:
    columns = ", ".join(quote_identifier(k) for k in values)
    marks = ", ".join(["%s"] * len(values))
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_Q}.`PIPELINES_BATCHES` ({columns}) VALUES ({marks})",
            list(values.values()),
        )


def trim_batches(conn: Any, database: str, name: str, *, keep: int) -> None:
    """Delete the PIPELINES_BATCHES rows of all but the newest ``keep`` batch ids."""
    with conn.cursor() as cursor:
        cursor.execute(
            f"SELECT MAX(`BATCH_ID`) FROM {_Q}.`PIPELINES_BATCHES` "
            "WHERE `DATABASE_NAME` = %s AND `PIPELINE_NAME` = %s",
            [database, name],
        )
        row = cursor.fetchone()
        if row and row[0] is not None and int(row[0]) > keep:
            cursor.execute(
                f"DELETE FROM {_Q}.`PIPELINES_BATCHES` WHERE `DATABASE_NAME` = %s "
                "AND `PIPELINE_NAME` = %s AND `BATCH_ID` <= %s",
                [database, name, int(row[0]) - keep],
            )


def clip_line(line: bytes | None) -> str | None:
    if line is None:
        return None
    text = line[:MAX_LINE_BYTES].decode("utf-8", errors="backslashreplace")
    if len(line) > MAX_LINE_BYTES:
        text += f"... [{len(line)} bytes in total]"
    return text


def insert_error(
    conn: Any, *, database: str, name: str, error_type: str, code: int, message: str,
    kind: str, stderr: str | None = None, line: bytes | None = None,
    line_number: int | None = None, batch_id: int | None = None,
    partition: int | None = None, start: int | None = None, end: int | None = None,
) -> None:
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_Q}.`PIPELINES_ERRORS` (`DATABASE_NAME`, `PIPELINE_NAME`, "
            "`ERROR_UNIX_TIMESTAMP`, `ERROR_TYPE`, `ERROR_CODE`, `ERROR_MESSAGE`, `ERROR_KIND`, "
            "`STD_ERROR`, `LOAD_DATA_LINE`, `LOAD_DATA_LINE_NUMBER`, `BATCH_ID`, "
            "`BATCH_SOURCE_PARTITION_ID`, `BATCH_EARLIEST_OFFSET`, `BATCH_LATEST_OFFSET`, "
            "`HOST`, `PORT`, `PARTITION`) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL, NULL)",
            [database, name, time.time(), error_type, code, message, kind, stderr or None,
             clip_line(line), line_number, batch_id,
             None if partition is None else str(partition), start, end],
        )


def config_json(stmt: Any) -> dict[str, Any]:
    """CONFIG_JSON of PIPELINES: the keys public monitoring code reads, plus the batch options."""
    return {
        "source_type": "KAFKA",
        "connection_string": stmt.source.endpoint,
        "data_format": "CSV",
        "stop_on_error": stmt.effective_stop_on_error,
        "batch_interval": stmt.effective_batch_interval,
        "max_partitions_per_batch": stmt.max_partitions_per_batch,
        "max_retries_per_batch_partition": stmt.effective_max_retries_per_batch_partition,
        "max_offsets_per_batch_partition": stmt.effective_max_offsets_per_batch_partition,
        "transform": None if stmt.transform is None else stmt.transform.uri,
        "table": stmt.table,
    }
