"""A transform process fed as its range is read, its output loaded as it is written.

Reading, transforming and loading a batch partition one after the other reaches only about
``1 / (1/read + 1/transform + 1/load)``; here the three overlap. The protocol is the one of
:mod:`matchstream.engine.transform_runner` (fresh process, framed stdin closed after the last
message, stdout is data, exit status 0 within the timeout is success), run by three threads:

1. The feeder writes each chunk of the range into the transform's stdin as the reader hands it
   over (:class:`~matchstream.engine.batch.ChunkFeed`), then closes stdin.
2. The cutter reads stdout into work files and closes a file at the first line end after
   ``target_bytes``, so the loader can take it while the transform goes on writing. A line end
   is a ``LINES TERMINATED BY`` not preceded by the escape character; with ``ENCLOSED BY`` or
   ``IGNORE n LINES`` the output is never cut (a quoted field may hold a line end, and the lines
   to ignore are those at the start of the whole output).
3. The caller (the batch thread) loads each file in the batch's transaction as it comes, and
   only after the process has exited with 0 may it commit. Timeout and STOP kill the process
   group, like in the runner.

Work files are the caller's once handed over; the stream removes those it still holds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from matchstream.engine.transform_runner import (
    STDERR_TAIL_BYTES,
    STDIN_CHUNK_BYTES,
    ResolvedTransform,
    TransformOutcome,
    die_with_parent,
    drain_tail,
)
from matchstream.framing import encode_frames

__all__ = ["DEFAULT_TARGET_BYTES", "OutputFile", "TransformAborted", "TransformStream"]

# Big enough that LOAD DATA's per-statement cost (a round trip, the warnings check) is amortised,
# small enough that the first load starts while the transform is still early in a large range
# (1 MiB is about 20,000 prediction rows).
DEFAULT_TARGET_BYTES = 1024 * 1024
_READ_BYTES = 1024 * 1024
_POLL_S = 0.05


@dataclass(frozen=True)
class OutputFile:
    """A work file of whole lines of the transform's output, and how many lines it holds."""

    path: Path
    lines: int


class TransformAborted(Exception):  # noqa: N818 - a signal to the batch, not an error row
    """The process was killed (timeout or STOP); :meth:`TransformStream.finish` says which."""


class TransformStream:
    """One transform run over chunks of messages; see the module docstring."""

    def __init__(self, transform: ResolvedTransform, *, work_dir: Path, prefix: str,
                 terminator: bytes, escape: bytes, splittable: bool, timeout_s: float,
                 cancelled: threading.Event | None = None,
                 extra_env: Mapping[str, str] | None = None,
                 target_bytes: int = DEFAULT_TARGET_BYTES) -> None:
        self.transform, self.work_dir, self.prefix = transform, work_dir, prefix
        self.terminator, self.escape, self.splittable = terminator, escape, splittable
        self.timeout_s, self.cancelled, self.extra_env = timeout_s, cancelled, extra_env
        self.target_bytes = target_bytes
        self._files: queue.SimpleQueue[OutputFile | BaseException | None] = queue.SimpleQueue()
        self._held: list[Path] = []  # files written and not yet handed to the caller
        self._lock = threading.Lock()
        self._err = bytearray()
        self.source_error: BaseException | None = None  # what the feeder's chunks raised
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.timed_out = self.was_cancelled = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, chunks: Iterable[Iterable[bytes]]) -> TransformOutcome | None:
        """Start the process and the feeder and cutter threads; an outcome if it cannot start."""
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.transform.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=self.transform.executable.parent,
                start_new_session=True, preexec_fn=die_with_parent, close_fds=True,
                env={**os.environ, **self.extra_env} if self.extra_env else None)
        except OSError as exc:
            return TransformOutcome(127, False, False,
                                    f"cannot start {self.transform.executable}: {exc}",
                                    time.monotonic() - self._started)
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._feed, args=(proc.stdin, chunks), daemon=True),
            threading.Thread(target=self._cut, args=(proc.stdout,), daemon=True),
            threading.Thread(target=drain_tail, args=(proc.stderr, self._err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return None

    def outputs(self) -> Iterator[OutputFile]:
        """Step 3: each work file as soon as it is complete; ends when stdout is at its end.
        Raises :class:`TransformAborted` if the process had to be killed (timeout, STOP)."""
        while True:
            try:
                item = self._files.get(timeout=_POLL_S)
            except queue.Empty:
                self._check_limits()
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            with self._lock:
                self._held.remove(item.path)
            yield item

    def finish(self) -> TransformOutcome:
        """Wait for the exit (the timeout and STOP still apply) and say how it went."""
        proc = self._proc
        assert proc is not None
        while True:
            try:
                proc.wait(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                self._check_limits(raise_=False)
                if self.timed_out or self.was_cancelled:
                    proc.wait()
                    break
        for thread in self._threads:
            thread.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
        tail = bytes(self._err[-STDERR_TAIL_BYTES:]).decode("utf-8", errors="backslashreplace")
        killed = self.timed_out or self.was_cancelled
        return TransformOutcome(None if killed else proc.returncode, self.timed_out,
                                self.was_cancelled, tail, time.monotonic() - self._started)

    def close(self) -> None:
        """Kill the process if it still runs and remove every work file not handed over."""
        self.kill()
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            held, self._held = self._held, []
        for path in held:
            path.unlink(missing_ok=True)
        while True:  # files queued after the caller stopped taking them
            try:
                item = self._files.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, OutputFile):
                item.path.unlink(missing_ok=True)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _check_limits(self, *, raise_: bool = True) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            self.was_cancelled = True
        elif time.monotonic() - self._started > self.timeout_s:
            self.timed_out = True
        if self.timed_out or self.was_cancelled:
            self.kill()
            if raise_:
                raise TransformAborted("killed")

    # -- step 1: the feeder ----------------------------------------------------------------------

    def _feed(self, stdin: IO[bytes], chunks: Iterable[Iterable[bytes]]) -> None:
        try:
            for chunk in chunks:
                # One write per chunk: a write per message cost more than the transform itself
                # for small messages (the engine's threads share one interpreter lock).
                view = memoryview(encode_frames(chunk))
                for i in range(0, len(view), STDIN_CHUNK_BYTES):
                    stdin.write(view[i:i + STDIN_CHUNK_BYTES])
        except (BrokenPipeError, OSError, ValueError):
            pass  # the transform stopped reading; its exit status says why
        except BaseException as exc:  # noqa: BLE001 - the source failed (extract error, STOP)
            self.source_error = exc
            self.kill()
        finally:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.close()

    # -- step 2: the cutter ----------------------------------------------------------------------

    def _cut(self, stdout: IO[bytes]) -> None:
        fd = stdout.fileno()
        pending = b""  # output after the last line end, not yet in a file
        handle, path, size, lines = self._new_file()
        try:
            while True:
                block = os.read(fd, _READ_BYTES)
                if not block:
                    break
                data = pending + block
                if not self.splittable:
                    handle.write(data)
                    size += len(data)
                    lines += self._count_lines(data)
                    pending = b""
                    continue
                # Close a file at the first line end past target_bytes, however much one read
                # brought: files stay near the target size whatever the pipe hands over.
                while (cut := self._line_end_from(data, max(self.target_bytes - size, 0))) > 0:
                    handle.write(data[:cut])
                    lines += self._count_lines(data[:cut])
                    handle.close()
                    self._files.put(OutputFile(path, lines))
                    handle, path, size, lines = self._new_file()
                    data = data[cut:]
                end = self._last_line_end(data)
                whole, pending = (data[:end], data[end:]) if end > 0 else (b"", data)
                handle.write(whole)
                size += len(whole)
                lines += self._count_lines(whole)
            if pending:
                handle.write(pending)
                lines += self._count_lines(pending)
                size += len(pending)
            handle.close()
            if size:
                self._files.put(OutputFile(path, lines))
            else:
                path.unlink(missing_ok=True)
                with self._lock:
                    self._held.remove(path)
            self._files.put(None)
        except BaseException as exc:  # noqa: BLE001 - disk full...: the caller raises it
            with contextlib.suppress(Exception):
                handle.close()
            self.kill()
            self._files.put(exc)
        finally:
            stdout.close()

    def _new_file(self) -> tuple[Any, Path, int, int]:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by _cut, removed by the caller
            prefix=self.prefix, suffix=".load", dir=self.work_dir, delete=False)
        path = Path(handle.name)
        with self._lock:
            self._held.append(path)
        return handle, path, 0, 0

    def _line_end_from(self, data: bytes, start: int) -> int:
        """Index just after the first terminator at or after ``start`` that ends a line."""
        term, esc = self.terminator, self.escape
        at = data.find(term, start)
        while at >= 0:
            if not esc or at == 0 or data[at - 1:at] != esc:
                return at + len(term)
            at = data.find(term, at + len(term))
        return -1

    def _last_line_end(self, data: bytes) -> int:
        """Index just after the last terminator in ``data`` that ends a line, -1 if none."""
        term, esc = self.terminator, self.escape
        at = data.rfind(term)
        while at >= 0:
            if not esc or at == 0 or data[at - 1:at] != esc:
                return at + len(term)
            at = data.rfind(term, 0, at)
        return -1

    def _count_lines(self, data: bytes) -> int:
        count = data.count(self.terminator)
        if self.escape and self.escape + self.terminator in data:
            count -= data.count(self.escape + self.terminator)
        return count
