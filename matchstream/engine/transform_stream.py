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

Faults are contained: more output than ``max_output_bytes`` kills the process group at once and
removes the work files not handed over (a transform writing without end would fill the disk);
an exit 0 that left part of stdin unread is a failure, not a success that loses those rows. To
see what was left unread the engine holds a read end of the stdin pipe of its own
(``/proc/self/fd``), which it drains once the process has exited; a write blocked on a full
pipe ends when that read end is closed. When the process exits, whatever is left of its group
(children that outlived it) is killed, before the exit is reaped, while its pid, and so the
group id, cannot be reused.

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
    DEFAULT_OUTPUT_MAX_BYTES,
    STDERR_TAIL_BYTES,
    STDIN_CHUNK_BYTES,
    ResolvedTransform,
    TransformOutcome,
    die_with_parent,
    drain_tail,
    transform_environment,
)
from matchstream.framing import encode_frames

__all__ = ["DEFAULT_TARGET_BYTES", "OutputFile", "TransformAborted", "TransformStream"]

# Big enough that LOAD DATA's per-statement cost (a round trip, the warnings check) is amortised,
# small enough that the first load starts while the transform is still early in a large range
# (1 MiB is about 20,000 prediction rows).
DEFAULT_TARGET_BYTES = 1024 * 1024
_READ_BYTES = 1024 * 1024
_POLL_S = 0.05
# After the exit: how long to wait for the feeder to stop (it may be waiting for the next chunk).
_SETTLE_S = 5.0
_HAS_WAITID = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")


@dataclass(frozen=True)
class OutputFile:
    """A work file of whole lines of the transform's output, and how many lines it holds."""

    path: Path
    lines: int


class TransformAborted(Exception):  # noqa: N818 - a signal to the batch, not an error row
    """The process was killed (timeout, STOP, output cap); :meth:`TransformStream.finish` says
    which."""


class TransformStream:
    """One transform run over chunks of messages; see the module docstring."""

    def __init__(self, transform: ResolvedTransform, *, work_dir: Path, prefix: str,
                 terminator: bytes, escape: bytes, splittable: bool, timeout_s: float,
                 cancelled: threading.Event | None = None,
                 extra_env: Mapping[str, str] | None = None,
                 target_bytes: int = DEFAULT_TARGET_BYTES,
                 max_output_bytes: int = DEFAULT_OUTPUT_MAX_BYTES) -> None:
        self.transform, self.work_dir, self.prefix = transform, work_dir, prefix
        self.terminator, self.escape, self.splittable = terminator, escape, splittable
        self.timeout_s, self.cancelled, self.extra_env = timeout_s, cancelled, extra_env
        self.target_bytes, self.max_output_bytes = target_bytes, max_output_bytes
        self._files: queue.SimpleQueue[OutputFile | BaseException | None] = queue.SimpleQueue()
        self._held: list[Path] = []  # files written and not yet handed to the caller
        self._lock = threading.Lock()
        self._err = bytearray()
        self.source_error: BaseException | None = None  # what the feeder's chunks raised
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.timed_out = self.was_cancelled = False
        self.output_bytes = 0  # read from stdout so far
        self.output_exceeded = False  # more than max_output_bytes: killed, its files removed
        # stdin: bytes of the chunks taken, bytes written, whether the chunks ran out; the
        # engine's own read end of the pipe and what was still in it after the exit.
        self._offered = self._written = self._unread = 0
        self._fed_all = False
        self._stop_feeding = threading.Event()
        self._probe: int | None = None
        self._threads_joined = self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, chunks: Iterable[Iterable[bytes]]) -> TransformOutcome | None:
        """Start the process and the feeder and cutter threads; an outcome if it cannot start."""
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.transform.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=self.transform.executable.parent,
                start_new_session=True, preexec_fn=die_with_parent, close_fds=True,
                env=transform_environment(self.extra_env))
        except OSError as exc:
            return TransformOutcome(127, False, False,
                                    f"cannot start {self.transform.executable}: {exc}",
                                    time.monotonic() - self._started)
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self._probe = _open_read_end(proc.stdin.fileno())
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
        Raises :class:`TransformAborted` if the process had to be killed (timeout, STOP, more
        output than ``max_output_bytes``)."""
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
                if self.output_exceeded:  # the file is gone already
                    raise TransformAborted("output cap")
                self._held.remove(item.path)
            yield item

    def finish(self) -> TransformOutcome:
        """Wait for the exit (the timeout and STOP still apply) and say how it went. Called once
        :meth:`outputs` has ended: what is left of the process group is killed then."""
        proc = self._proc
        assert proc is not None
        delay = 0.0005
        while not self._exited():
            self._check_limits(raise_=False)
            time.sleep(delay)
            delay = min(delay * 2, _POLL_S)
        self.kill()  # children that outlived it; the exit is not reaped yet, see _exited
        proc.wait()
        killed = self.timed_out or self.was_cancelled or self.output_exceeded
        if killed or proc.returncode != 0:
            self._stop_feeding.set()
            self._close_read_end()  # failed anyway: nothing to count, unblock the feeder
        else:
            self._settle_input()
        self._join_threads()
        if proc.stderr is not None and not self._threads[2].is_alive():
            # Else a process that left the group (setsid) still holds stderr: closing it would
            # wait for the blocked read, as long as that process lives.
            proc.stderr.close()
        tail = bytes(self._err[-STDERR_TAIL_BYTES:]).decode("utf-8", errors="backslashreplace")
        failure = None
        if self.output_exceeded:
            failure = (f"transform output exceeded {self.max_output_bytes} bytes "
                       "(transform_output_max_bytes); is it writing without end?")
        elif not killed and proc.returncode == 0:
            failure = self._input_failure()
        return TransformOutcome(None if killed else proc.returncode, self.timed_out,
                                self.was_cancelled, tail, time.monotonic() - self._started,
                                failure)

    def close(self) -> None:
        """Kill the process if it still runs and remove every work file not handed over."""
        self.kill()
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=10)
        self._close_read_end()  # a feeder blocked on a full pipe gets EPIPE
        self._join_threads()
        with self._lock:
            held, self._held = self._held, []
            self._closed = True
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
        """SIGKILL the process group, children included, as long as the process is not reaped
        (its pid, the group id, cannot be reused before): also after it exited, for children
        that outlived it. Never reaps, unlike ``poll()``."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def _join_threads(self) -> None:
        """Join the threads, 5 s for all of them, once (finish, then close): one still alive
        then is stuck on a pipe a process outside the group holds, and stays so."""
        if self._threads_joined:
            return
        deadline = time.monotonic() + 5
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
        self._threads_joined = True

    def _exited(self) -> bool:
        """Whether the process has exited, leaving the exit unreaped where ``waitid`` can."""
        proc = self._proc
        assert proc is not None
        if proc.returncode is not None:
            return True
        if _HAS_WAITID:
            try:
                return os.waitid(os.P_PID, proc.pid,
                                 os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                pass  # reaped already: poll() below says so
        return proc.poll() is not None

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
        fd = stdin.fileno()  # unbuffered writes: _written counts what entered the pipe
        try:
            for chunk in chunks:
                # One encoding per chunk: a write per message cost more than the transform itself
                # for small messages (the engine's threads share one interpreter lock).
                view = memoryview(encode_frames(chunk))
                self._offered += len(view)
                done = 0
                while done < len(view):
                    if self._stop_feeding.is_set():
                        return  # the process has exited: nobody reads the rest
                    written = os.write(fd, view[done:done + STDIN_CHUNK_BYTES])
                    done += written
                    self._written += written
            self._fed_all = True
        except (BrokenPipeError, OSError, ValueError):
            pass  # the transform stopped reading; its exit status says why
        except BaseException as exc:  # noqa: BLE001 - the source failed (extract error, STOP)
            self.source_error = exc
            self.kill()
        finally:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.close()

    def _settle_input(self) -> None:
        """After the exit: stop the feeder and count what the process left unread in its stdin
        (draining the engine's read end also frees a write blocked on a full pipe)."""
        self._stop_feeding.set()
        feeder = self._threads[0] if self._threads else None
        deadline = time.monotonic() + _SETTLE_S
        while True:
            self._drain_read_end()
            if feeder is None or not feeder.is_alive() or time.monotonic() > deadline:
                break
            feeder.join(timeout=0.01)
        self._drain_read_end()
        self._close_read_end()

    def _drain_read_end(self) -> None:
        while self._probe is not None:
            try:
                block = os.read(self._probe, _READ_BYTES)
            except OSError:  # BlockingIOError: empty for now
                return
            if not block:
                return
            self._unread += len(block)

    def _close_read_end(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(OSError):
                os.close(probe)

    def _input_failure(self) -> str | None:
        """Why an exit 0 is a failure all the same: stdin was not read to its end."""
        read = self._written - self._unread
        if self._fed_all and not self._unread:
            return None
        if self._fed_all:
            total = f"{self._offered}"
        elif self._offered > read:
            total = f"at least {self._offered}"
        else:  # the feeder still waits for the next chunk
            return f"transform exited before the end of its input, after reading {read} bytes"
        return f"transform exited without reading all of its input: {read} of {total} bytes read"

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
                self.output_bytes += len(block)
                if self._closed:  # a process out of the group still writes: no more files
                    handle.close()
                    path.unlink(missing_ok=True)
                    return
                if self.output_bytes > self.max_output_bytes:
                    handle.close()
                    self._exceeded()
                    return
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

    def _exceeded(self) -> None:
        """More output than max_output_bytes: kill the group and remove every file not handed
        over, at once (the disk is what fills up)."""
        with self._lock:
            self.output_exceeded = True
            held, self._held = self._held, []
        self.kill()
        for path in held:
            path.unlink(missing_ok=True)
        self._files.put(TransformAborted("output cap"))

    def _new_file(self) -> tuple[Any, Path, int, int]:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by _cut, removed by the caller
            prefix=self.prefix, suffix=".load", dir=self.work_dir, delete=False)
        path = Path(handle.name)
        with self._lock:
            self._held.append(path)
        return handle, path, 0, 0

    def _escaped(self, data: bytes, at: int) -> bool:
        """Whether the terminator at ``at`` is escaped: an odd run of escape bytes before it
        (``\\\\`` then a line end is an escaped backslash, and the line ends). ``data``
        starts at a line start, so no run begins before it."""
        esc = self.escape
        if not esc:
            return False
        run = 0
        while at - (run + 1) * len(esc) >= 0 and \
                data[at - (run + 1) * len(esc):at - run * len(esc)] == esc:
            run += 1
        return run % 2 == 1

    def _line_end_from(self, data: bytes, start: int) -> int:
        """Index just after the first terminator at or after ``start`` that ends a line."""
        term = self.terminator
        at = data.find(term, start)
        while at >= 0:
            if not self._escaped(data, at):
                return at + len(term)
            at = data.find(term, at + len(term))
        return -1

    def _last_line_end(self, data: bytes) -> int:
        """Index just after the last terminator in ``data`` that ends a line, -1 if none."""
        term = self.terminator
        at = data.rfind(term)
        while at >= 0:
            if not self._escaped(data, at):
                return at + len(term)
            at = data.rfind(term, 0, at)
        return -1

    def _count_lines(self, data: bytes) -> int:
        count = data.count(self.terminator)
        if self.escape and self.escape + self.terminator in data:
            at = data.find(self.escape + self.terminator)
            while at >= 0:
                at += len(self.escape)
                count -= self._escaped(data, at)
                at = data.find(self.escape + self.terminator, at + len(self.terminator))
        return count


def _open_read_end(write_fd: int) -> int | None:
    """A read end of the pipe behind ``write_fd``, opened anew (an open file description of its
    own, non-blocking without making the child's stdin so); None where there is no /proc."""
    try:
        return os.open(f"/proc/self/fd/{write_fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
