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

Installing ``WITH TRANSFORM`` also lives here, as on a SingleStore leaf: at CREATE (and
``ALTER PIPELINE ... SET TRANSFORM`` / ``RELOAD TRANSFORM``) the file named by ``file:///abs`` or
``file://localhost/abs`` (the URIs SingleStore documents besides ``http://``) is copied into the
pipeline's own directory under the engine's state dir, a ``.tar.gz``/``.tgz`` archive unpacked
there; batches run the copy, so edits to the original need ``RELOAD TRANSFORM`` and files next to
a single-file transform are not reachable. Plain and relative paths are refused with the
``file://`` URI to write instead. The process gets a minimal environment
(:func:`transform_environment`), not the engine's.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import sys
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

__all__ = ["DEFAULT_OUTPUT_MAX_BYTES", "PASSED_VARIABLES", "ResolvedTransform",
           "TransformOutcome", "install_transform", "remove_transform", "resolve_transform",
           "run_transform", "transform_environment"]

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


# What a transform gets of the engine's environment. SingleStore documents none for a leaf (the
# transform runs as the database's user with the node's environment); a test that passes because
# the engine's variables leaked in (credentials, the venv's activation, a PYTHONHOME) would fail
# there, and secrets (MATCHSTREAM_DB_PASSWORD) have no business in a transform. Passed on: the
# locale and time zone, HOME and TMPDIR, PYTHONPATH (a development checkout is imported through
# it; the container path installs the project into the system interpreter instead), the
# variables the demo's transforms document as their own knobs (matchstream/ml/transform.py), and
# the local fault points (matchstream/faults.py: tests arm them in the trainer a transform starts).
PASSED_VARIABLES = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH",
                    "MATCHSTREAM_MODEL", "MATCHSTREAM_TRAINER", "MATCHSTREAM_TRAINER_IDLE_SECONDS",
                    "MATCHSTREAM_FAULT", "MATCHSTREAM_FAULT_ONCE")
# PATH: this interpreter's directory first (so "#!/usr/bin/env python3" finds the one with the
# project's packages, as the image's only python3 is), then the system's.
_SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
# The copy's record of what it was made from; a definition naming something else is reinstalled.
_SOURCE_FILE = ".source.json"
_UNSAFE_IN_A_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def transform_environment(extra: Mapping[str, str] | None = None,
                          environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a transform process starts with: :data:`PASSED_VARIABLES` from
    ``environ`` (the engine's), PATH, then ``extra``.

    >>> env = transform_environment({"X": "1"}, {"LANG": "C.UTF-8", "MATCHSTREAM_DB_PASSWORD": "s"})
    >>> sorted(env), env["PATH"].split(":")[-1]
    (['LANG', 'PATH', 'X'], '/bin')
    """
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in PASSED_VARIABLES if name in source}
    env["PATH"] = os.pathsep.join(dict.fromkeys((os.path.dirname(sys.executable),
                                                 *_SYSTEM_PATH)))
    env.update(extra or {})
    return env


def _safe_name(name: str) -> str:
    """A file name with only ``A-Z a-z 0-9 _ . -``, never hidden or a path step.

    >>> _safe_name("my transform.py"), _safe_name(".."), _safe_name(".x")
    ('my_transform.py', '_..', '_.x')
    """
    cleaned = _UNSAFE_IN_A_FILE_NAME.sub("_", name) or "transform"
    return "_" + cleaned if cleaned.startswith(".") else cleaned


def _uri_path(uri: str, sql_dir: Path) -> Path:
    """The local file a documented transform URI names; anything else is refused with the
    ``file://`` URI to write (a relative path resolved against ``sql_dir`` for the hint)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if not uri.lower().startswith("file://"):
            hint = Path(unquote(parsed.path))
            hint = hint if hint.is_absolute() else (sql_dir / hint)
            raise TransformNotUsable(
                uri, unquote(parsed.path),
                f"SingleStore takes file:// URIs with an absolute path: write "
                f"'file://{hint.resolve()}'")
        if parsed.netloc not in ("", "localhost"):
            raise TransformNotUsable(
                uri, parsed.netloc + parsed.path,
                "file URIs name a local path: use file:///abs/path or file://localhost/abs/path",
            )
        return Path(unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        raise TransformNotUsable(
            uri, uri, "http(s) transforms are not supported by the local engine (it downloads "
            "nothing); use a file:// URI")
    if parsed.scheme and len(parsed.scheme) > 1:  # a one-letter scheme would be a drive letter
        raise TransformNotUsable(uri, uri, f"unsupported URI scheme {parsed.scheme!r}: "
                                 "SingleStore documents http:// and file://")
    path_obj = Path(uri).expanduser()
    absolute = path_obj if path_obj.is_absolute() else (sql_dir / path_obj)
    kind = "an absolute path" if path_obj.is_absolute() else "a relative path"
    raise TransformNotUsable(
        uri, str(absolute),
        f"{kind} is not a transform URI on SingleStore (the aggregator downloads it when the "
        f"statement runs): write 'file://{absolute.resolve()}'")


def _is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def _archive_dir(name: str) -> str:
    return _safe_name(name.rsplit(".t", 1)[0])


def _record(spec: TransformSpec) -> dict[str, str]:
    return {"uri": spec.uri, "program": spec.program}


def _copy_of(spec: TransformSpec, unpack_dir: Path) -> Path:
    """Where the installed copy's executable is (it may not exist)."""
    name = urlparse(spec.uri).path.rsplit("/", 1)[-1]
    if _is_archive(Path(name)):
        return unpack_dir / _archive_dir(unquote(name)) / spec.program
    return unpack_dir / _safe_name(unquote(name))


def _check_runnable(spec: TransformSpec, executable: Path, what: str) -> None:
    if not executable.is_file():
        raise TransformNotUsable(spec.uri, str(executable), f"{what} is not a regular file")
    if not os.access(executable, os.X_OK):
        raise TransformNotUsable(
            spec.uri, str(executable),
            "not executable (chmod +x it and start it with a #! line, as SingleStore requires)",
        )


def install_transform(spec: TransformSpec, *, sql_dir: Path,
                      unpack_dir: Path) -> ResolvedTransform:
    """Copy (or unpack) the transform into ``unpack_dir``, the pipeline's own directory, as
    SingleStore copies it to every leaf at CREATE; the previous copy is replaced in one rename.

    Raises :class:`TransformNotUsable` when the URI is not a documented one, the file is missing
    or not executable, or an archive lacks the named program.
    """
    source = _uri_path(spec.uri, sql_dir)
    if not source.exists():
        raise TransformNotUsable(spec.uri, str(source), "no such file")
    unpack_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{unpack_dir.name}.new-", dir=unpack_dir.parent))
    try:
        if _is_archive(source):
            if not spec.program:
                raise TransformNotUsable(
                    spec.uri, str(source), "an archive needs the program to run inside it")
            target = staging / _archive_dir(source.name)
            target.mkdir()
            try:
                with tarfile.open(source, "r:gz") as archive:
                    archive.extractall(target, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise TransformNotUsable(spec.uri, str(source), f"cannot unpack: {exc}") from exc
            program = (target / spec.program).resolve()
            if not program.is_relative_to(target.resolve()) or not program.exists():
                raise TransformNotUsable(spec.uri, spec.program, "program not found in the archive")
            _check_runnable(spec, program, "the program")
        else:
            if spec.program and Path(spec.program).name != source.name:
                raise TransformNotUsable(
                    spec.uri, str(source),
                    f"program {spec.program!r} only applies to .tar.gz/.tgz archives; leave it ''",
                )
            _check_runnable(spec, source, "the transform")
            shutil.copy2(source, staging / _safe_name(source.name))
        (staging / _SOURCE_FILE).write_text(json.dumps(_record(spec)))
        _swap(staging, unpack_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ResolvedTransform(spec.uri, _copy_of(spec, unpack_dir).resolve(), spec.argv_tail())


def _swap(new: Path, current: Path) -> None:
    """``new`` becomes ``current``; a process still running the old copy keeps its files."""
    old = None
    if current.exists():
        old = current.with_name(f".{current.name}.old-{os.getpid()}-{threading.get_ident()}")
        os.rename(current, old)
    os.rename(new, current)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_transform(unpack_dir: Path) -> None:
    """Remove a pipeline's copy (DROP PIPELINE)."""
    shutil.rmtree(unpack_dir, ignore_errors=True)


def resolve_transform(spec: TransformSpec, *, sql_dir: Path, unpack_dir: Path) -> ResolvedTransform:
    """The installed copy to run (batches, TEST PIPELINE, START). A pipeline without one for this
    definition (created by an engine that ran transforms in place, or its state dir cleared)
    gets it installed now; once installed, only CREATE, SET TRANSFORM and RELOAD TRANSFORM copy
    again."""
    executable = _copy_of(spec, unpack_dir)
    try:
        recorded = json.loads((unpack_dir / _SOURCE_FILE).read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded != _record(spec) or not executable.exists():
        return install_transform(spec, sql_dir=sql_dir, unpack_dir=unpack_dir)
    _check_runnable(spec, executable, "the engine's copy")
    return ResolvedTransform(spec.uri, executable.resolve(), spec.argv_tail())


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
    transform's minimal environment (TEST PIPELINE sets ``MATCHSTREAM_DRY_RUN=1``). More output than
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
