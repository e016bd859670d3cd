"""The engine's own settings and its database connections.

The setting a user may want to change (the transform timeout) comes from the shared
:class:`matchstream.config.Config`; the others are internal tuning with the defaults below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from matchstream.config import Config
from matchstream.db import DatabaseUnreachable, connect
from matchstream.ddl import ast
from matchstream.engine.transform_runner import DEFAULT_OUTPUT_MAX_BYTES

__all__ = ["DATABASE_ERRORS", "EngineSettings", "RetryPolicy", "open_connection", "retry_policy"]

# What a lost, refused or broken database session raises (MariaDB restarted, the session
# killed). The engine treats these as "reconnect and go on", never as a pipeline's error.
DATABASE_ERRORS = (pymysql.MySQLError, DatabaseUnreachable)

# How often the engine re-reads the catalog: START/STOP/ALTER from other processes take effect
# within this (the issue asks for one second).
DEFAULT_POLL_S = 0.25
# The first pause after an infrastructure failure (step 6 of runner.py), doubling per failure in
# a row. A batch that failed for the data's sake waits as its retry policy says (retry_policy).
DEFAULT_RETRY_DELAY_S = 0.2
# Batch partitions run in parallel when MAX_PARTITIONS_PER_BATCH is not given.
DEFAULT_MAX_PARALLEL_PARTITIONS = 8
# PIPELINES_BATCHES keeps the rows of this many newest batches per pipeline (SingleStore's
# pipelines_batches_metadata_to_keep plays the same role); without a cap a pipeline polling a
# busy topic grows the table without bound.
DEFAULT_BATCHES_TO_KEEP = 1000
# The runner trims PIPELINES_BATCHES after this many batches, so the table holds at most
# BATCHES_TO_KEEP + TRIM_EVERY_BATCHES batches per pipeline while a DELETE runs only now and then.
DEFAULT_TRIM_EVERY_BATCHES = 50
# Without a transform a batch partition is read and loaded in chunks that overlap (batch.py):
# a chunk is handed to the loader at this many messages or bytes, whichever comes first. At most
# two chunks of a partition are in memory. 50,000 messages keep the per-chunk LOAD DATA overhead
# small; the byte cap bounds memory for large messages. Read by from_config at call time, so a
# test may patch the module constants.
DEFAULT_CHUNK_MESSAGES = 50_000
DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
# A range that cannot be chunked (IGNORE n LINES without a transform: every LOAD DATA would skip
# n lines again) is held in memory whole; it ends at this many bytes (at least one message), and
# the rest is the next batch's.
DEFAULT_RANGE_MAX_BYTES = 256 * 1024 * 1024
# After an infrastructure failure (broker or database unreachable, a lost session, a deadlock, a
# full disk) a runner waits retry_delay_s, doubling per failure in a row up to this: such a
# failure is not the data's fault, so it costs no attempt and the range is never skipped.
DEFAULT_MAX_BACKOFF_S = 5.0
# A second engine waits this long for the catalog's engine lock before it gives up.
DEFAULT_LOCK_WAIT_S = 10.0
# Engine sessions give up on a server that stops answering after this long (pymysql's read and
# write timeouts) instead of hanging a runner for ever; LOAD DATA of the largest chunk and the
# commit lock waits (innodb_lock_wait_timeout, 50 s) stay well inside it.
DB_IO_TIMEOUT_S = 300


@dataclass(frozen=True)
class EngineSettings:
    """Build it with :meth:`from_config`: the transform timeout has one default, in Config."""

    work_dir: Path
    unpack_dir: Path
    transform_timeout_s: float
    poll_s: float = DEFAULT_POLL_S
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    max_parallel_partitions: int = DEFAULT_MAX_PARALLEL_PARTITIONS
    batches_to_keep: int = DEFAULT_BATCHES_TO_KEEP
    trim_every_batches: int = DEFAULT_TRIM_EVERY_BATCHES
    chunk_messages: int = DEFAULT_CHUNK_MESSAGES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    # A transform writing more for one batch partition is killed, the partition fails (1 GiB).
    transform_output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES
    range_max_bytes: int = DEFAULT_RANGE_MAX_BYTES
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    lock_wait_s: float = DEFAULT_LOCK_WAIT_S
    # The database session holding the catalog's engine lock (catalog.ENGINE_LOCK), set by the
    # engine once it has it; a batch commits only while that session still holds it. None:
    # not run by the engine (START ... FOREGROUND, TEST PIPELINE), nothing to check.
    engine_session: int | None = None

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> EngineSettings:
        base = Path(config.state_dir) / "engine"
        values: dict[str, Any] = {
            "work_dir": base / "work",
            "unpack_dir": base / "transforms",
            "transform_timeout_s": config.transform_timeout_s,
            "chunk_messages": DEFAULT_CHUNK_MESSAGES,
            "chunk_bytes": DEFAULT_CHUNK_BYTES,
            "max_backoff_s": DEFAULT_MAX_BACKOFF_S,
            "range_max_bytes": DEFAULT_RANGE_MAX_BYTES,
            "lock_wait_s": DEFAULT_LOCK_WAIT_S,
        }
        values.update(overrides)
        return cls(**values)


# SingleStore 9.x's defaults of the engine variables the retry policy falls back to (the
# "Pipeline Retry Options" and engine-variable pages); a pipeline's own clause wins.
DEFAULT_ENGINE_VARIABLES: Mapping[str, int] = {
    "pipelines_batch_interval": ast.DEFAULT_BATCH_INTERVAL_MS,
    "pipelines_max_retries_per_batch_partition": ast.DEFAULT_MAX_RETRIES_PER_BATCH_PARTITION,
}
# max_retry_interval without a value: this many times retry_interval.
MAX_RETRY_INTERVAL_FACTOR = 10
# Each retry of an exponential policy waits this many times the one before (SingleStore's page
# says "exponential backoff" without the factor: [UNCONFIRMED], doubling is the usual one).
BACKOFF_MULTIPLIER = 2


@dataclass(frozen=True)
class RetryPolicy:
    """How a batch that failed for the data's sake is retried (SingleStore 9.x)."""

    max_retries: int  # attempts of one range before the pipeline stops (or skips it)
    retry_interval_ms: int  # the wait after the first failed attempt
    max_retry_interval_ms: int  # no wait is longer
    exponential: bool

    def delay_s(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failed attempt in a row (1-based).

        >>> policy = RetryPolicy(4, 500, 5000, True)
        >>> [policy.delay_s(n) for n in (1, 2, 3, 4, 5)]
        [0.5, 1.0, 2.0, 4.0, 5.0]
        >>> RetryPolicy(4, 500, 5000, False).delay_s(3)
        0.5
        """
        wait = self.retry_interval_ms
        if self.exponential:
            wait = min(wait * BACKOFF_MULTIPLIER ** max(attempt - 1, 0),
                       self.max_retry_interval_ms)
        return wait / 1000.0


def retry_policy(
    stmt: ast.CreatePipeline, engine_variables: Mapping[str, Any] | None = None,
) -> RetryPolicy:
    """THE place a pipeline's retry policy is resolved (SingleStore 9.x, "Pipeline Retry
    Options"): each RETRY_OPTIONS key, else its default. ``max_retries``: the clause
    MAX_RETRIES_PER_BATCH_PARTITION, else the engine variable
    ``pipelines_max_retries_per_batch_partition``; ``retry_interval``: the pipeline's batch
    interval (BATCH_INTERVAL, else ``pipelines_batch_interval``); ``max_retry_interval``: ten
    times ``retry_interval``; ``exponential``: true. ``engine_variables`` (``SET GLOBAL
    pipelines_*``) override :data:`DEFAULT_ENGINE_VARIABLES`.

    >>> from matchstream.ddl import parse_statement
    >>> stmt = parse_statement("CREATE PIPELINE p AS LOAD DATA KAFKA 'h/t' BATCH_INTERVAL 100 "
    ...                        "INTO TABLE t")
    >>> retry_policy(stmt)
    RetryPolicy(max_retries=4, retry_interval_ms=100, max_retry_interval_ms=1000, exponential=True)
    >>> retry_policy(stmt, {"pipelines_max_retries_per_batch_partition": 7}).max_retries
    7
    """
    # The catalog attaches the SET GLOBAL pipelines_* values to every stored statement
    # (``batch_defaults``, SingleStore's defaults when never set); ``engine_variables`` wins.
    defaults = stmt.batch_defaults
    variables = {
        **DEFAULT_ENGINE_VARIABLES,
        "pipelines_batch_interval": defaults.batch_interval,
        "pipelines_max_retries_per_batch_partition": defaults.max_retries_per_batch_partition,
        **(engine_variables or {}),
    }
    options = stmt.retry_options or ast.RetryOptions()
    max_retries = _first(options.max_retries, stmt.max_retries_per_batch_partition,
                         variables["pipelines_max_retries_per_batch_partition"])
    interval = _first(options.retry_interval, stmt.batch_interval,
                      variables["pipelines_batch_interval"])
    cap = _first(options.max_retry_interval, interval * MAX_RETRY_INTERVAL_FACTOR)
    exponential = True if options.exponential is None else options.exponential
    return RetryPolicy(max_retries, interval, cap, exponential)


def _first(*values: int | None) -> int:
    for value in values:
        if value is not None:
            return int(value)
    raise ValueError("no value and no default")


def open_connection(config: Config, database: str | None = None) -> Any:
    """A connection for engine transactions: no autocommit, strict SQL mode, all warnings kept.

    STRICT_TRANS_TABLES makes MariaDB treat bad values like SingleStore does for statements
    other than LOAD DATA LOCAL; max_error_count lets the loader see every rejected line.
    """
    conn = connect(config, database, autocommit=False, io_timeout_s=DB_IO_TIMEOUT_S)
    with conn.cursor() as cursor:
        cursor.execute(
            "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
            "NO_ENGINE_SUBSTITUTION', SESSION max_error_count = 65535"
        )
    conn.commit()
    return conn
