"""Running a transform for one batch partition.

The protocol, as SingleStore runs it (docs/singlestore-pipelines.md §2):

1. Start a fresh process: argv = the program + the arguments string split on spaces, CWD = the
   directory the program lives in, its own process group (a timeout kills its children too).
2. Write each message value to stdin behind an 8-byte little-endian length
   (:mod:`matchstream.framing`), then close stdin.
3. stdout is data: cut into the files ``LOAD DATA LOCAL INFILE`` reads; stderr is captured.
4. Exit status 0 within the timeout is success; a non-zero status, a signal or the timeout fails
   the batch partition with the tail of stderr attached. So does output beyond
   ``transform_output_max_bytes`` (the process group is killed at once) and an exit 0 that left
   part of stdin unread (those rows would be lost).

Resolving ``WITH TRANSFORM`` URIs also lives here: ``file:///abs``, ``file://localhost/abs``, a
plain path (relative paths resolve against the directory of the SQL file that created the
pipeline) and ``.tar.gz``/``.tgz`` archives, which are unpacked under the state directory.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tarfile
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from matchstream.ddl.ast import TransformSpec
from matchstream.engine.errors import TransformNotUsable

__all__ = ["DEFAULT_OUTPUT_MAX_BYTES", "ResolvedTransform", "TransformOutcome",
           "resolve_transform", "run_transform"]

# What a failed transform's stderr contributes to PIPELINES_ERRORS.STD_ERROR. The tail is kept
# because a Python traceback ends with the line that matters; the whole stream could be
# gigabytes from a chatty transform and would not fit a row.
STDERR_TAIL_BYTES = 64 * 1024
# Writes to stdin go in chunks of this size so the timeout and STOP are checked between them.
STDIN_CHUNK_BYTES = 1024 * 1024
# A transform writing more than this for one batch partition is killed and the partition fails
# (EngineSettings.transform_output_max_bytes): one writing without end filled the disk at about
# 20 MiB/s while the pipeline still showed Running.
DEFAULT_OUTPUT_MAX_BYTES = 1024 * 1024 * 1024
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    """libc's ``prctl``, resolved once at import, or None where there is none (not Linux).

    It must be resolved here, in the parent: the child of a fork of this multi-threaded process
    may only call async-signal-safe functions, and dlopen/dlsym (what ``ctypes.CDLL`` and its
    attribute lookup do) take loader locks another thread may have held at the fork.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _load_prctl()
_SIGKILL = int(signal.SIGKILL)


@dataclass(frozen=True)
class ResolvedTransform:
    """An executable on this machine and the argv tail to run it with."""

    uri: str
    executable: Path
    args: tuple[str, ...]

    @property
    def argv(self) -> list[str]:
        return [str(self.executable), *self.args]


@dataclass(frozen=True)
class TransformOutcome:
    returncode: int | None  # None: killed by the engine (timeout or stop)
    timed_out: bool
    cancelled: bool
    stderr_tail: str
    seconds: float
    # What the engine found wrong besides the exit status (output cap, input left unread).
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and not self.timed_out and not self.cancelled
                and self.failure is None)

    def failure_reason(self, timeout_s: float) -> str:
        if self.cancelled:
            return "transform cancelled because the pipeline is stopping"
        if self.timed_out:
            return f"transform did not finish within {timeout_s:g} s and was killed"
        if self.failure is not None:
            return self.failure
        rc = self.returncode
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"transform was killed by {name}"
        return f"transform exited with status {rc}"


def _uri_path(uri: str, sql_dir: Path) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise TransformNotUsable(
                uri, parsed.netloc + parsed.path,
                "file URIs name a local path: use file:///abs/path or file://localhost/abs/path",
            )
        path = unquote(parsed.path)
        # file:relative/path (no slashes) has no authority and a relative path.
        return Path(path) if path.startswith("/") else (sql_dir / path)
    if parsed.scheme in ("http", "https"):
        raise TransformNotUsable(
            uri, uri, "http(s) transforms are not supported by the local engine; use a file:// URI"
        )
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme would be a drive letter
        raise TransformNotUsable(uri, uri, f"unsupported URI scheme {parsed.scheme!r}")
    path_obj = Path(uri).expanduser()
    return path_obj if path_obj.is_absolute() else sql_dir / path_obj


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def resolve_transform(spec: TransformSpec, *, sql_dir: Path, unpack_dir: Path) -> ResolvedTransform:
    """Check that the transform can run, as SingleStore does at CREATE time.

    Raises :class:`TransformNotUsable` when the file is missing, not executable, or an archive
    without the named program.
    """
    path = _uri_path(spec.uri, sql_dir).resolve()
    if not path.exists():
        raise TransformNotUsable(spec.uri, str(path), "no such file")
    if _is_archive(path):
        if not spec.program:
            raise TransformNotUsable(
                spec.uri, str(path), "an archive needs the program to run inside it"
            )
        target = unpack_dir / path.name.rsplit(".t", 1)[0]
        target.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(path, "r:gz") as archive:
                archive.extractall(target, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise TransformNotUsable(spec.uri, str(path), f"cannot unpack: {exc}") from exc
        executable = (target / spec.program).resolve()
        if not executable.is_file():
            raise TransformNotUsable(spec.uri, str(executable), "program not found in the archive")
    else:
        executable = path
        if spec.program and Path(spec.program).name != path.name:
            raise TransformNotUsable(
                spec.uri, str(path),
                f"program {spec.program!r} only applies to .tar.gz/.tgz archives; leave it ''",
            )
    if not executable.is_file():
        raise TransformNotUsable(spec.uri, str(executable), "not a regular file")
    if not os.access(executable, os.X_OK):
        raise TransformNotUsable(
            spec.uri, str(executable),
            "not executable (chmod +x it and start it with a #! line, as SingleStore requires)",
        )
    return ResolvedTransform(spec.uri, executable, spec.argv_tail())


def die_with_parent() -> None:
    """In the child: get SIGKILL when the engine thread that started us dies (kill -9 included),
    so a killed engine never leaves transforms running against a closed pipe.

    Only the prctl system call, through the function pointer resolved at import: no dlopen, no
    import, no lock another thread could have held at the fork.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


def drain_tail(stream: IO[bytes], sink: bytearray) -> None:
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return
        sink.extend(chunk)
        if len(sink) > 2 * STDERR_TAIL_BYTES:
            del sink[: len(sink) - STDERR_TAIL_BYTES]


def run_transform(
    transform: ResolvedTransform,
    payloads: Sequence[bytes],
    stdout: IO[bytes],
    *,
    timeout_s: float,
    cancelled: threading.Event | None = None,
    extra_env: Mapping[str, str] | None = None,
    max_output_bytes: int = DEFAULT_OUTPUT_MAX_BYTES,
) -> TransformOutcome:
    """Run one transform process over ``payloads``; its whole stdout goes to ``stdout``.

    The protocol of the module docstring, carried out by the one implementation the batches
    use (:class:`~matchstream.engine.transform_stream.TransformStream`), with its output in one
    piece: for TEST PIPELINE, which parses it into a temporary table. ``cancelled`` (the
    pipeline is stopping) kills the process like a timeout does. ``extra_env`` is added to the
    engine's environment (TEST PIPELINE sets ``MATCHSTREAM_DRY_RUN=1``). More output than
    ``max_output_bytes`` kills the process and fails the run.
    """
    from matchstream.engine.transform_stream import TransformAborted, TransformStream

    with tempfile.TemporaryDirectory(prefix="transform-") as work:
        stream = TransformStream(transform, work_dir=Path(work), prefix="out-",
                                 terminator=b"\n", escape=b"", splittable=False,
                                 timeout_s=timeout_s, cancelled=cancelled, extra_env=extra_env,
                                 max_output_bytes=max_output_bytes)
        try:
            outcome = stream.start([payloads])
            if outcome is not None:
                return outcome
            try:
                for output in stream.outputs():
                    with output.path.open("rb") as produced:
                        shutil.copyfileobj(produced, stdout)
                    output.path.unlink()
            except TransformAborted:
                pass  # finish() says why
            return stream.finish()
        finally:
            stream.close()
