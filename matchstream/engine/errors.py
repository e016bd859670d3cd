"""Errors of the local pipeline engine.

Every error that concerns a batch partition carries its location, ``topic[partition]@start..end``,
plus the pipeline it belongs to, so a message in a log, on the console or in ``PIPELINES_ERRORS``
always says where to look.
"""

from __future__ import annotations

from matchstream.errors import MatchstreamError

__all__ = [
    "BatchPartitionError",
    "CursorBeyondEndError",
    "EngineError",
    "ExtractError",
    "LoadError",
    "PipelineStateError",
    "TransformError",
    "TransformNotUsable",
    "UnknownPipeline",
    "UnsupportedOption",
]

# Error codes written to PIPELINES_ERRORS.ERROR_CODE when MariaDB gives none. SingleStore's own
# codes for these situations are not documented ([UNCONFIRMED], docs/engine.md); these numbers sit
# outside MariaDB's range so a monitoring query can tell them from a LOAD DATA warning.
CODE_EXTRACT = 9100
CODE_CURSOR_BEYOND_END = 9101
CODE_TRANSFORM_EXIT = 9200
CODE_TRANSFORM_TIMEOUT = 9201
CODE_TRANSFORM_START = 9202
CODE_LOAD = 9300
CODE_INTERNAL = 9400  # an unexpected failure of the engine itself while running a batch


class EngineError(MatchstreamError):
    """Base of the engine's errors."""

    code: int = CODE_LOAD


class UnknownPipeline(EngineError):
    def __init__(self, database: str, pipeline: str) -> None:
        super().__init__(f"Pipeline '{pipeline}' doesn't exist in database '{database}'")
        self.database, self.pipeline = database, pipeline


class PipelineStateError(EngineError):
    """A lifecycle statement does not fit the pipeline's state (START on a running pipeline...)."""

    def __init__(self, pipeline: str, state: str, reason: str) -> None:
        super().__init__(f"Pipeline '{pipeline}' is {state}: {reason}")
        self.pipeline, self.state, self.reason = pipeline, state, reason


class UnsupportedOption(EngineError):
    """A clause the parser accepts but the local engine cannot honour on MariaDB."""

    def __init__(self, pipeline: str, clause: str, hint: str = "") -> None:
        message = f"pipeline '{pipeline}': {clause} is not supported by the local engine"
        super().__init__(message + (f" ({hint})" if hint else ""))
        self.pipeline, self.clause = pipeline, clause


class TransformNotUsable(EngineError):
    """The transform named in WITH TRANSFORM cannot be run; raised at CREATE/ALTER like
    SingleStore, which downloads the transform when the statement runs."""

    def __init__(self, uri: str, path: str, reason: str) -> None:
        super().__init__(f"transform {uri!r} ({path}): {reason}")
        self.uri, self.path, self.reason = uri, path, reason


class BatchPartitionError(EngineError):
    """One batch partition failed; everything it did was rolled back.

    ``kind`` is PIPELINES_ERRORS.ERROR_KIND (``Extract``, ``Transform`` or ``Load``);
    ``line``/``line_number`` name the offending input line when one is known; ``stderr`` is what
    the transform wrote to stderr.
    """

    kind = "Load"

    def __init__(
        self,
        reason: str,
        *,
        pipeline: str,
        topic: str,
        partition: int,
        start: int,
        end: int,
        code: int | None = None,
        line: bytes | None = None,
        line_number: int | None = None,
        stderr: str = "",
    ) -> None:
        self.reason = reason
        self.pipeline, self.topic, self.partition = pipeline, topic, partition
        self.start, self.end = start, end
        self.code = code if code is not None else type(self).code
        self.line, self.line_number, self.stderr = line, line_number, stderr
        super().__init__(self.describe())

    @property
    def location(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.start}..{self.end}"

    def describe(self) -> str:
        where = f"pipeline '{self.pipeline}', {self.location}"
        if self.line_number is not None:
            where += f", line {self.line_number}"
        return f"{self.reason} ({where})"


class ExtractError(BatchPartitionError):
    kind = "Extract"
    code = CODE_EXTRACT


class CursorBeyondEndError(ExtractError):
    """The stored cursor lies past the end of the partition: the broker lost data (Tansu keeps
    topics in memory, so a broker restart empties them). Retrying cannot help."""

    code = CODE_CURSOR_BEYOND_END


class TransformError(BatchPartitionError):
    kind = "Transform"
    code = CODE_TRANSFORM_EXIT


class LoadError(BatchPartitionError):
    kind = "Load"
    code = CODE_LOAD
