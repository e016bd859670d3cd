"""The pipeline statement AST: THE CONTRACT between the parser and the local pipeline engine.

Change it only together with the engine. Rules the engine can rely on:

* Every node is a frozen, hashable dataclass built from str/int/bool/enum/tuple/None, so nodes
  compare by value and ``parse_statement(render(node)) == node`` holds for every parsed node.
* String literals are already unescaped MySQL-style (``'\\t'`` in SQL is ``"\\t"`` here); ``render``
  re-escapes them.
* An option the statement does not spell out is ``None``. The effective value comes from the
  ``effective_*`` helpers / ``with_defaults()``: for the batch options that is the engine
  variable (``pipelines_batch_interval`` ...) the statement was read with (``defaults``, set by
  the catalog), else SingleStore's default; the ``DEFAULT_*`` constants below say where each
  default comes from.
* ``SET`` right-hand sides and the ``WHERE`` condition are verbatim SQL text (comments removed,
  runs of whitespace collapsed to one space). ``WHERE`` goes to MariaDB as-is; ``SET`` is
  SingleStore's SQL, checked by the parser against SingleStore's rules and translated for
  MariaDB by the engine (:mod:`matchstream.ddl.set_clause`).
* Clauses SingleStore has but the local engine does not never reach the AST: the parser raises
  ``UnsupportedByLocalEngine``. Clauses that *are* in the AST but the engine cannot honour
  (``trailing_nullcols``, ``null_defined_by``, ``charset``, ``aggregator`` is a no-op by design)
  must be implemented or rejected by the engine, never silently dropped.
* Names are unqualified: a pipeline and its table live in the session's current database.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from typing import TypeVar

__all__ = [
    "DEFAULT_BATCH_INTERVAL_MS",
    "DEFAULT_ENCLOSED_BY",
    "DEFAULT_ESCAPED_BY",
    "DEFAULT_FIELDS_TERMINATED_BY",
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_LINES_STARTING_BY",
    "DEFAULT_LINES_TERMINATED_BY",
    "DEFAULT_MAX_OFFSETS_PER_BATCH_PARTITION",
    "DEFAULT_MAX_RETRIES_PER_BATCH_PARTITION",
    "DEFAULT_STOP_ON_ERROR",
    "AlterAction",
    "OptionAction",
    "AlterPipeline",
    "BatchDefaults",
    "ClearPipelineErrors",
    "ColumnItem",
    "ColumnRef",
    "CreatePipeline",
    "DiscardField",
    "DropPipeline",
    "ErrorHandling",
    "ExtractPipeline",
    "FieldsOptions",
    "KafkaSource",
    "LinesOptions",
    "NullDefinedBy",
    "OffsetsMode",
    "ReloadTransform",
    "RetryOptions",
    "SetAssignment",
    "SetBatchInterval",
    "SetConfig",
    "SetCredentials",
    "SetMaxOffsetsPerBatchPartition",
    "SetMaxPartitionsPerBatch",
    "SetMaxRetriesPerBatchPartition",
    "SetOffsets",
    "SetRetryOptions",
    "SetStopOnError",
    "SelectIntoKafka",
    "SetTransform",
    "ShowCreatePipeline",
    "ShowPipelines",
    "StartAllPipelines",
    "StartPipeline",
    "Statement",
    "StopAllPipelines",
    "StopPipeline",
    "TestPipeline",
    "TransformSpec",
    "VarRef",
]

# SingleStore's documented defaults (docs/singlestore-pipelines.md §1.3, §1.6, §6). The AST keeps
# None for "not written" so SHOW CREATE PIPELINE and CREATE OR REPLACE can tell the two apart.
DEFAULT_BATCH_INTERVAL_MS = 2500  # pipelines_batch_interval; only applies after an empty poll
DEFAULT_MAX_RETRIES_PER_BATCH_PARTITION = 4  # observed as 4 attempts in total (§5.3)
DEFAULT_MAX_OFFSETS_PER_BATCH_PARTITION = 1_000_000  # pipelines_max_offsets_per_batch_partition
DEFAULT_STOP_ON_ERROR = True  # pipelines_stop_on_error = ON
# MAX_PARTITIONS_PER_BATCH has no documented default; None means "every partition".
DEFAULT_KAFKA_PORT = 9092  # the endpoint may omit the port (§1.2); Kafka's own default
DEFAULT_FIELDS_TERMINATED_BY = "\t"  # MySQL LOAD DATA defaults, not RFC 4180 (§1.6, §8.3)
DEFAULT_ENCLOSED_BY = ""
DEFAULT_ESCAPED_BY = "\\"
DEFAULT_LINES_TERMINATED_BY = "\n"
DEFAULT_LINES_STARTING_BY = ""


@dataclass(frozen=True)
class BatchDefaults:
    """What a pipeline without the clause uses: SingleStore's ``pipelines_*`` engine variables
    (``SET GLOBAL pipelines_batch_interval = ...``); the per-pipeline clause takes precedence."""

    batch_interval: int = DEFAULT_BATCH_INTERVAL_MS
    stop_on_error: bool = DEFAULT_STOP_ON_ERROR
    max_retries_per_batch_partition: int = DEFAULT_MAX_RETRIES_PER_BATCH_PARTITION
    max_offsets_per_batch_partition: int = DEFAULT_MAX_OFFSETS_PER_BATCH_PARTITION


_BUILTIN_DEFAULTS = BatchDefaults()


class ErrorHandling(enum.Enum):
    """The per-row clause before ``INTO TABLE`` (doc §1.5); ``REPLACE`` is a separate flag
    because SingleStore allows it after a SKIP clause (``SKIP CONSTRAINT ERRORS REPLACE``)."""

    IGNORE = "IGNORE"
    SKIP_ALL_ERRORS = "SKIP ALL ERRORS"
    SKIP_CONSTRAINT_ERRORS = "SKIP CONSTRAINT ERRORS"
    SKIP_DUPLICATE_KEY_ERRORS = "SKIP DUPLICATE KEY ERRORS"
    SKIP_PARSER_ERRORS = "SKIP PARSER ERRORS"


class OffsetsMode(enum.Enum):
    EARLIEST = "EARLIEST"
    LATEST = "LATEST"
    JSON = "JSON"  # explicit '{"<partition>": <next offset>, ...}'


@dataclass(frozen=True)
class KafkaSource:
    """``KAFKA 'host[:port][,host[:port]...]/topic'``; brokers are kept as written."""

    brokers: tuple[str, ...]
    topic: str

    @property
    def endpoint(self) -> str:
        return ",".join(self.brokers) + "/" + self.topic

    def bootstrap_servers(self, default_port: int = DEFAULT_KAFKA_PORT) -> tuple[str, ...]:
        """Brokers with the port made explicit (``host`` -> ``host:9092``)."""
        out = []
        for broker in self.brokers:
            host_part = broker.rsplit("]", 1)[-1]  # an IPv6 literal is bracketed: [::1]:9092
            out.append(broker if ":" in host_part else f"{broker}:{default_port}")
        return tuple(out)


@dataclass(frozen=True)
class TransformSpec:
    """``WITH TRANSFORM ('uri', 'program', 'arguments')``; omitted parts are ``''``.

    ``args`` is the raw arguments string; SingleStore splits it on spaces (``argv()``)."""

    uri: str
    program: str = ""
    args: str = ""

    def argv_tail(self) -> tuple[str, ...]:
        return tuple(a for a in self.args.split(" ") if a)


@dataclass(frozen=True)
class FieldsOptions:
    """``FIELDS|COLUMNS [TERMINATED BY s] [[OPTIONALLY] ENCLOSED BY c] [ESCAPED BY c]``."""

    terminated_by: str | None = None
    enclosed_by: str | None = None
    optionally_enclosed: bool = False
    escaped_by: str | None = None

    def with_defaults(self) -> FieldsOptions:
        return FieldsOptions(
            terminated_by=_or(self.terminated_by, DEFAULT_FIELDS_TERMINATED_BY),
            enclosed_by=_or(self.enclosed_by, DEFAULT_ENCLOSED_BY),
            optionally_enclosed=self.optionally_enclosed,
            escaped_by=_or(self.escaped_by, DEFAULT_ESCAPED_BY),
        )


@dataclass(frozen=True)
class LinesOptions:
    """``LINES [STARTING BY s] [TERMINATED BY s]`` (either order is accepted)."""

    starting_by: str | None = None
    terminated_by: str | None = None

    def with_defaults(self) -> LinesOptions:
        return LinesOptions(
            starting_by=_or(self.starting_by, DEFAULT_LINES_STARTING_BY),
            terminated_by=_or(self.terminated_by, DEFAULT_LINES_TERMINATED_BY),
        )


@dataclass(frozen=True)
class NullDefinedBy:
    """``NULL DEFINED BY 'str' [OPTIONALLY ENCLOSED]`` (SingleStore; MariaDB has no equivalent)."""

    value: str
    optionally_enclosed: bool = False


@dataclass(frozen=True)
class ColumnRef:
    """A column of the target table in the column list (rendered ``t``.``col``)."""

    name: str


@dataclass(frozen=True)
class VarRef:
    """``@name``: the field goes into a LOAD DATA variable usable in SET; ``name`` has no ``@``."""

    name: str


@dataclass(frozen=True)
class DiscardField:
    """A bare ``@``: the field is read and thrown away."""


ColumnItem = ColumnRef | VarRef | DiscardField


@dataclass(frozen=True)
class SetAssignment:
    """``SET column = expression``; ``expression`` is SingleStore's SQL as written
    (``@v :> INT``, ``get_kafka_pipeline_prop('prop_offset')``), already checked."""

    column: str
    expression: str


@dataclass(frozen=True)
class RetryOptions:
    """``RETRY_OPTIONS '{...}'`` (SingleStore 9.0+, "Pipeline Retry Options"): how a failed batch
    is retried. A key not written is None; its default (``exponential`` true, ``retry_interval``
    the pipeline's batch interval, ``max_retry_interval`` ten times ``retry_interval``,
    ``max_retries`` from ``pipelines_max_retries_per_batch_partition``) is resolved by the engine
    (``matchstream.engine.settings.retry_policy``), not here.
    """

    exponential: bool | None = None
    retry_interval: int | None = None  # milliseconds before the first retry
    max_retry_interval: int | None = None  # milliseconds, the longest wait between retries
    max_retries: int | None = None  # attempts before the pipeline stops or skips

    KEYS = ("exponential", "retry_interval", "max_retry_interval", "max_retries")

    def to_json(self) -> str:
        """The keys written, in the documented order.

        >>> RetryOptions(max_retries=3, exponential=False).to_json()
        '{"exponential": false, "max_retries": 3}'
        """
        values = {key: getattr(self, key) for key in self.KEYS}
        return json.dumps({k: v for k, v in values.items() if v is not None})


class _KafkaTextOptions:
    """What a pipeline and SELECT ... INTO KAFKA share: the Kafka CONFIG/CREDENTIALS JSON and
    the FIELDS/LINES options with LOAD DATA's MySQL defaults filled in."""

    config: str | None
    credentials: str | None
    fields: FieldsOptions | None
    lines: LinesOptions | None

    @property
    def effective_fields(self) -> FieldsOptions:
        return (self.fields or FieldsOptions()).with_defaults()

    @property
    def effective_lines(self) -> LinesOptions:
        return (self.lines or LinesOptions()).with_defaults()

    def config_dict(self) -> dict[str, object]:
        return _json_object(self.config)

    def credentials_dict(self) -> dict[str, object]:
        return _json_object(self.credentials)


@dataclass(frozen=True)
class CreatePipeline(_KafkaTextOptions):
    name: str
    source: KafkaSource
    table: str
    or_replace: bool = False
    if_not_exists: bool = False
    aggregator: bool = False  # placement hint; no effect locally, kept for SHOW CREATE PIPELINE
    config: str | None = None  # JSON text, validated as a JSON object
    credentials: str | None = None  # JSON text, validated as a JSON object
    batch_interval: int | None = None  # milliseconds
    max_partitions_per_batch: int | None = None
    max_retries_per_batch_partition: int | None = None
    max_offsets_per_batch_partition: int | None = None
    transform: TransformSpec | None = None
    retry_options: RetryOptions | None = None
    error_handling: ErrorHandling | None = None
    replace: bool = False  # REPLACE, alone or after IGNORE/SKIP ... ERRORS
    stop_on_error: bool | None = None
    charset: str | None = None  # CHARACTER SET name
    fields: FieldsOptions | None = None
    lines: LinesOptions | None = None
    trailing_nullcols: bool = False
    null_defined_by: NullDefinedBy | None = None
    ignore_lines: int | None = None
    columns: tuple[ColumnItem, ...] | None = None  # None: no column list (all columns in order)
    set_assignments: tuple[SetAssignment, ...] = ()
    where: str | None = None  # verbatim SQL condition
    # Not part of the statement (never rendered, not compared): the engine variables in force
    # when the catalog handed it out. None: SingleStore's defaults.
    defaults: BatchDefaults | None = field(default=None, compare=False, repr=False)

    @property
    def batch_defaults(self) -> BatchDefaults:
        return self.defaults or _BUILTIN_DEFAULTS

    @property
    def effective_batch_interval(self) -> int:
        return _or(self.batch_interval, self.batch_defaults.batch_interval)

    @property
    def effective_max_retries_per_batch_partition(self) -> int:
        return _or(self.max_retries_per_batch_partition,
                   self.batch_defaults.max_retries_per_batch_partition)

    @property
    def effective_max_offsets_per_batch_partition(self) -> int:
        return _or(self.max_offsets_per_batch_partition,
                   self.batch_defaults.max_offsets_per_batch_partition)

    @property
    def effective_stop_on_error(self) -> bool:
        return _or(self.stop_on_error, self.batch_defaults.stop_on_error)


    def with_defaults(self) -> CreatePipeline:
        """The statement with every FIELDS/LINES option spelled out, as SHOW CREATE PIPELINE
        prints it (§3.7). Batch options stay as written: SingleStore prints only those."""
        return replace(self, fields=self.effective_fields, lines=self.effective_lines)


@dataclass(frozen=True)
class StartPipeline:
    name: str
    if_not_running: bool = False
    foreground: bool = False
    limit_batches: int | None = None  # only with foreground


@dataclass(frozen=True)
class StartAllPipelines:
    """``START ALL PIPELINES``: START PIPELINE IF NOT RUNNING for every pipeline, background."""


@dataclass(frozen=True)
class StopPipeline:
    name: str
    if_running: bool = False


@dataclass(frozen=True)
class StopAllPipelines:
    pass


@dataclass(frozen=True)
class DropPipeline:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class SetOffsets:
    mode: OffsetsMode
    offsets_json: str | None = None  # only for OffsetsMode.JSON; validated at parse time

    def partition_offsets(self) -> dict[int, int]:
        """``{partition: next offset}`` for OffsetsMode.JSON, else empty."""
        loaded = _json_object(self.offsets_json)
        return {int(k): int(str(v)) for k, v in loaded.items()}


@dataclass(frozen=True)
class SetBatchInterval:
    milliseconds: int

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, batch_interval=self.milliseconds)


@dataclass(frozen=True)
class SetMaxPartitionsPerBatch:
    value: int

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, max_partitions_per_batch=self.value)


@dataclass(frozen=True)
class SetMaxRetriesPerBatchPartition:
    value: int

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, max_retries_per_batch_partition=self.value)


@dataclass(frozen=True)
class SetMaxOffsetsPerBatchPartition:
    value: int

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, max_offsets_per_batch_partition=self.value)


@dataclass(frozen=True)
class SetConfig:
    config: str  # JSON object text

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, config=self.config)


@dataclass(frozen=True)
class SetCredentials:
    credentials: str  # JSON object text

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, credentials=self.credentials)


@dataclass(frozen=True)
class SetRetryOptions:
    """``ALTER PIPELINE p SET RETRY_OPTIONS '{...}'``: replaces the pipeline's retry options."""

    options: RetryOptions

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, retry_options=self.options)


@dataclass(frozen=True)
class SetTransform:
    transform: TransformSpec

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, transform=self.transform)


@dataclass(frozen=True)
class SetStopOnError:
    value: bool | None  # None = STOP_ON_ERROR NONE: fall back to the global default

    def apply(self, definition: CreatePipeline) -> CreatePipeline:
        return replace(definition, stop_on_error=self.value)


@dataclass(frozen=True)
class ReloadTransform:
    pass


# The ALTER actions that set one option of the stored definition; each knows its field.
OptionAction = (
    SetBatchInterval
    | SetMaxPartitionsPerBatch
    | SetMaxRetriesPerBatchPartition
    | SetMaxOffsetsPerBatchPartition
    | SetConfig
    | SetCredentials
    | SetRetryOptions
    | SetTransform
    | SetStopOnError
)

AlterAction = (
    SetOffsets
    | SetBatchInterval
    | SetMaxPartitionsPerBatch
    | SetMaxRetriesPerBatchPartition
    | SetMaxOffsetsPerBatchPartition
    | SetConfig
    | SetCredentials
    | SetRetryOptions
    | SetTransform
    | SetStopOnError
    | ReloadTransform
)


@dataclass(frozen=True)
class AlterPipeline:
    """``ALTER PIPELINE p <action> ...``; at least one action, each kind at most once, applied in
    the order written."""

    name: str
    actions: tuple[AlterAction, ...]


@dataclass(frozen=True)
class ShowPipelines:
    pass


@dataclass(frozen=True)
class ShowCreatePipeline:
    name: str
    extended: bool = False


@dataclass(frozen=True)
class TestPipeline:
    __test__ = False  # not a pytest test class despite the name

    name: str
    limit: int | None = None  # number of source offsets (Kafka messages)


@dataclass(frozen=True)
class ExtractPipeline:
    """``EXTRACT PIPELINE p [FROM 'partition' [OFFSETS start TO end]] INTO OUTFILE 'file'``."""

    name: str
    outfile: str
    source_partition: str | None = None
    offsets: tuple[int, int] | None = None  # [start, end) of that partition


@dataclass(frozen=True)
class ClearPipelineErrors:
    name: str | None = None  # None: every pipeline


@dataclass(frozen=True)
class SelectIntoKafka(_KafkaTextOptions):
    """``<select> INTO KAFKA 'host[:port][,...]/topic' [CONFIG '{}'] [CREDENTIALS '{}']
    [FIELDS ...] [LINES ...] [KAFKA KEY column]`` (SingleStore's egress to Kafka).

    ``select`` is the query before ``INTO KAFKA``, verbatim SQL for the database (comments
    removed, whitespace collapsed). Each result row becomes one message, written as
    ``SELECT ... INTO OUTFILE`` writes a line (``effective_fields`` / ``effective_lines``: the
    same MySQL defaults as LOAD DATA), line terminator included. With ``key_column`` that
    column's value is the message key and is left out of the value. ``key_location`` says
    where the column was named (``file:line:col``), for errors found when the query runs; it
    takes no part in comparisons.
    """

    select: str
    destination: KafkaSource
    config: str | None = None
    credentials: str | None = None
    fields: FieldsOptions | None = None
    lines: LinesOptions | None = None
    key_column: str | None = None
    key_location: str | None = field(default=None, compare=False, repr=False)



Statement = (
    CreatePipeline
    | StartPipeline
    | StartAllPipelines
    | StopPipeline
    | StopAllPipelines
    | DropPipeline
    | AlterPipeline
    | ShowPipelines
    | ShowCreatePipeline
    | TestPipeline
    | ExtractPipeline
    | ClearPipelineErrors
    | SelectIntoKafka
)


_T = TypeVar("_T")


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _json_object(text: str | None) -> dict[str, object]:
    if text is None:
        return {}
    loaded = json.loads(text)
    assert isinstance(loaded, dict), "the parser only admits JSON objects"
    return loaded
